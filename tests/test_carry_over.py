"""Carry-over of the 2019-2024 vintages into 2025 (P23 annex 5), through the CLI on SQLite and PostgreSQL, with
the application window on a Registry with a Clock (the CLI runs on the machine's clock): net sales from trades of
old vintages by trade date, the limit T = 10,000 + 1.5 x NS at most the holding, the conversion, the ineligible
firm, and surrenders for 2025 refusing vintages not carried over. Every store built here passes `audit verify`.

The figures, by hand (CEA; trade dates):
- F1 is issued 40,000 of 2023 and surrenders 1,000 of them for 2023. It sells F2 500 on 2023-12-29 (before the
  net-sales dates: not counted), 6,001 on 2024-05-06, buys 1,000 of 2022 from F2 on 2025-03-03, and sells F2
  2,000 on 2026-01-05 (after them: not counted). NS = 6,001 - 1,000 = 5,001; T = 10,000 + 1.5 x 5,001 =
  17,501.5, floored 17,501; it holds 30,499 of 2023 and 1,000 of 2022 (31,499), so the limit is 17,501.
- F2: NS = -6,001 + 1,000 < 0, so 0; T = 10,000 (it holds 37,501 of 2022-2023).
- F4 holds 4,000 of 2021 and trades nothing: T = min(10,000, 4,000) = 4,000.
- F3 surrendered 500 of its 2,000 t for 2023: short at close (a PenaltyAssessed), so it may not apply.
"""

from __future__ import annotations

import json

from ledgerkit import Clock, export_lines, invoke_json, refusal, run_main

from ledger.registry import Registry

IN_WINDOW = "2026-03-02T09:00:00"


def ok(store: str, *args: str) -> str:
    r = run_main(store, *args)
    assert r.code == 0, f"{args}: exit {r.code}: {r.err}"
    return r.out


def refused(store: str, *args: str) -> str:
    r = run_main(store, *args, "--json")
    assert r.code == 1 and r.out == "" and r.err.count("\n") == 1, (args, r)
    return json.loads(r.err)["error"]["code"]


def show(store: str, firm: str) -> dict:
    return invoke_json(store, "carry-over", "show", firm)


def setup(store: str) -> None:
    for f in ("F1", "F2", "F3", "F4"):
        ok(store, "firm", "register", f, "--name", f, "--sector", "power", "--region", "Hubei")
    ok(store, "year", "open", "2023", "--deadline", "2024-12-31")
    ok(store, "year", "open", "2024", "--deadline", "2025-12-31")
    for f, v, q in (("F1", "2023", "40000"), ("F2", "2022", "30000"), ("F3", "2023", "2000"), ("F4", "2021", "4000")):
        ok(store, "issue", f, "--unit", "CEA", "--vintage", v, "--quantity", q, "--basis", "auction")
    for f, t, s in (("F1", "1000", "1000"), ("F3", "2000", "500")):
        ok(store, "emissions", "verify", f, "--year", "2023", "--tonnes", t)
        ok(store, "surrender", f, "--year", "2023", "--unit", "CEA", "--vintage", "2023", "--quantity", s)
    for buyer, seller, v, q, price, date in (("F2", "F1", "2023", "500", "80.00", "2023-12-29"),
                                             ("F2", "F1", "2023", "6001", "80.00", "2024-05-06"),
                                             ("F1", "F2", "2022", "1000", "70.00", "2025-03-03"),
                                             ("F2", "F1", "2023", "2000", "81.00", "2026-01-05")):
        ok(store, "trade", "--buyer", buyer, "--seller", seller, "--unit", "CEA", "--vintage", v, "--quantity", q,
           "--price", price, "--mode", "listed", "--date", date)
    ok(store, "year", "close", "2023", "--correct-by", "2099-12-31")  # F3 short: fined, ordered to correct


def test_net_sales_the_limit_the_conversion_and_the_cap_at_holding(store_url: str) -> None:
    setup(store_url)
    assert show(store_url, "F1") == {"firm_id": "F1", "eligible": True, "reason": None, "net_sales": 5001,
                                     "limit": 17501, "converted": 0, "remaining": 17501}
    assert show(store_url, "F2") == {"firm_id": "F2", "eligible": True, "reason": None, "net_sales": 0,
                                     "limit": 10000, "converted": 0, "remaining": 10000}
    assert show(store_url, "F4")["limit"] == 4000  # its holding caps T
    r = run_main(store_url, "carry-over", "show", "F9")
    assert (r.code, r.out, r.err.strip()) == (2, "", "error: firm F9 does not exist (at position 24)")
    assert refused(store_url, "carry-over", "apply", "F1", "--vintage", "2018", "--quantity", "1") == \
        "carry_over_vintage"
    assert refused(store_url, "carry-over", "apply", "F1", "--vintage", "2025", "--quantity", "1") == \
        "carry_over_vintage"
    assert run_main(store_url, "carry-over", "apply", "F1", "--vintage", "2023", "--quantity", "0").code == 2
    reg = Registry(store_url, clock=Clock(IN_WINDOW))
    try:
        out = reg.carry_over("F1", 2023, 10_000)
        assert [(e["type"], e["data"]) for e in out.events] == [("AllowancesCarriedOver", {
            "firm_id": "F1", "unit": "CEA", "from_vintage": 2023, "to_vintage": 2025, "quantity": 10_000,
            "limit": 17501, "net_sales": 5001, "converted": 0})]
        assert out.result["remaining"] == 7501
        reg.carry_over("F1", 2022, 1000)
        assert refusal(reg.carry_over, "F1", 2023, 6502).code == "carry_over_limit"  # 17,501 - 11,000 = 6,501
        assert refusal(reg.carry_over, "F4", 2021, 4001).code == "insufficient_holding"
        reg.carry_over("F4", 2021, 2500)
        reg.carry_over("F1", 2023, 6501)
        assert refusal(reg.carry_over, "F1", 2023, 1).code == "carry_over_limit"
    finally:
        reg.close()
    assert show(store_url, "F1") == {"firm_id": "F1", "eligible": True, "reason": None, "net_sales": 5001,
                                     "limit": 17501, "converted": 17501, "remaining": 0}
    # what F4 converted still counts in its cap: 1,500 held + 2,500 converted = 4,000
    assert show(store_url, "F4") == {"firm_id": "F4", "eligible": True, "reason": None, "net_sales": 0,
                                     "limit": 4000, "converted": 2500, "remaining": 1500}
    held = {(b["unit"], b["vintage"]): b["quantity"] for b in invoke_json(store_url, "balances", "F1")["balances"]}
    assert held == {("CEA", 2023): 30499 - 16501, ("CEA", 2025): 17501}  # 2022: 1,000 all carried over
    totals = {(t["unit"], t["vintage"]): t for t in invoke_json(store_url, "balances", "--totals")["totals"]}
    assert (totals[("CEA", 2023)]["carried_out"], totals[("CEA", 2025)]["carried_in"],
            totals[("CEA", 2025)]["held"], totals[("CEA", 2025)]["issued"]) == (16501, 20001, 20001, 0)
    for t in totals.values():
        assert t["issued"] + t["carried_in"] == (t["held"] + t["surrendered"] + t["cancelled"] + t["withdrawn"]
                                                 + t["carried_out"])
    hist = invoke_json(store_url, "history", "F1")["rows"]
    assert [(h["type"], h["vintage"], h["quantity"]) for h in hist if h["type"] == "AllowancesCarriedOver"] == [
        ("AllowancesCarriedOver", 2023, -10000), ("AllowancesCarriedOver", 2025, 10000),
        ("AllowancesCarriedOver", 2022, -1000), ("AllowancesCarriedOver", 2025, 1000),
        ("AllowancesCarriedOver", 2023, -6501), ("AllowancesCarriedOver", 2025, 6501)]
    assert run_main(store_url, "audit", "verify").code == 0
    assert run_main(store_url, "audit", "replay").code == 0


def test_the_ineligible_firm_and_the_window(store_url: str) -> None:
    setup(store_url)
    s = show(store_url, "F3")
    assert (s["eligible"], s["limit"], s["remaining"]) == (False, 0, 0)
    assert "did not complete its 2023 compliance" in s["reason"]
    reg = Registry(store_url, clock=Clock(IN_WINDOW))
    try:
        assert refusal(reg.carry_over, "F3", 2023, 1).code == "not_eligible"
        assert refusal(reg.carry_over, "F9", 2023, 1).code == "unknown_firm"
        for outside in ("2025-12-31T23:59:59", "2026-06-11T00:00:00"):
            reg.clock.set(outside)
            assert refusal(reg.carry_over, "F2", 2022, 100).code == "carry_over_window"
        for inside in ("2026-01-01T00:00:00", "2026-06-10T23:59:59"):
            reg.clock.set(inside)
            reg.carry_over("F2", 2022, 100)
        reg.clock.set(IN_WINDOW)
        # a firm short of a year not yet closed has not completed it: F2 owes 800 t for 2024
        reg.verify_emissions("F2", 2024, 800)
        assert refusal(reg.carry_over, "F2", 2022, 1).code == "not_eligible"
        reg.surrender("F2", 2024, "CEA", 2022, 800)
        reg.carry_over("F2", 2022, 1)
        # a frozen account's units stay as they are
        reg.freeze_account("F2", "judicial")
        assert refusal(reg.carry_over, "F2", 2022, 1).code == "account_frozen"
    finally:
        reg.close()
    assert show(store_url, "F2")["converted"] == 201
    assert run_main(store_url, "audit", "verify").code == 0


def test_surrenders_for_2025_take_only_carried_over_units(store_url: str) -> None:
    setup(store_url)
    reg = Registry(store_url, clock=Clock(IN_WINDOW))
    try:
        reg.carry_over("F1", 2023, 5000)
    finally:
        reg.close()
    ok(store_url, "year", "open", "2025")
    ok(store_url, "emissions", "verify", "F1", "--year", "2025", "--tonnes", "6000")
    ok(store_url, "emissions", "verify", "F1", "--year", "2024", "--tonnes", "100")
    assert refused(store_url, "surrender", "F1", "--year", "2025", "--unit", "CEA", "--vintage", "2023",
                   "--quantity", "100") == "vintage_not_carried_over"
    assert refused(store_url, "surrender", "F1", "--year", "2025", "--unit", "CEA", "--vintage", "2022",
                   "--quantity", "100") == "vintage_not_carried_over"
    ok(store_url, "surrender", "F1", "--year", "2025", "--unit", "CEA", "--vintage", "2025", "--quantity", "5000")
    ok(store_url, "surrender", "F1", "--year", "2024", "--unit", "CEA", "--vintage", "2023", "--quantity", "100")
    ok(store_url, "transfer", "F1", "F2", "--unit", "CEA", "--vintage", "2023", "--quantity", "10")  # not blocked
    surrendered = [(e["data"]["year"], e["data"]["vintage"], e["data"]["quantity"]) for e in export_lines(store_url)
                   if e["type"] == "AllowancesSurrendered"]
    assert surrendered[-2:] == [(2025, 2025, 5000), (2024, 2023, 100)]
    assert run_main(store_url, "audit", "verify").code == 0


def test_who_may_apply_on_an_enforced_store(tmp_path) -> None:
    reg = Registry(str(tmp_path / "enforced.db"), clock=Clock(IN_WINDOW))
    try:
        reg.init("MEE")
        for f in ("F1", "F2"):
            reg.register_firm(f, f, "power", "Hubei", actor="MEE")
            reg.add_actor(f"{f}-desk", "firm", f, actor="MEE")
            reg.issue(f, "CEA", 2024, 100, "auction", actor="MEE")
        reg.add_actor("SEEE", "exchange", actor="MEE")
        assert refusal(reg.carry_over, "F2", 2024, 10, actor="F1-desk").code == "not_own_account"
        assert refusal(reg.carry_over, "F1", 2024, 10, actor="SEEE").code == "not_permitted"
        reg.carry_over("F1", 2024, 10, actor="F1-desk")
        reg.carry_over("F2", 2024, 10, actor="MEE")
        assert reg.state.holding("F1", "CEA", 2025) == reg.state.holding("F2", "CEA", 2025) == 10
    finally:
        reg.close()
