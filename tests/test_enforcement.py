"""Enforcement (Interim Regulations art. 24, 21, 22) through the CLI, on SQLite and PostgreSQL: `year close`
fines and orders correction by a time limit, a late surrender is taken until then (status `*`), `year enforce`
after it orders the deduction that the next allocation takes; the regulator records art. 21/22 fines and an
art. 22 allocation cut. Every store built here passes the re-execution audit."""

from __future__ import annotations

import datetime as dt
import json

from ledgerkit import Clock, export_lines, invoke_json, refusal, run_main

from ledger.registry import Registry


def ok(store: str, *args: str) -> str:
    r = run_main(store, *args)
    assert r.code == 0, f"{args}: exit {r.code}: {r.err}"
    return r.out


def setup(store: str) -> None:
    """P1 and P2 verified 1,000 t each for 2024, each holds 1,000 t; P1 surrenders 600, P2 400; a CEA price."""
    for f in ("P1", "P2"):
        ok(store, "firm", "register", f, "--name", f, "--sector", "steel", "--region", "Hebei")
        ok(store, "facility", "register", f"{f}-BF", "--firm", f, "--kind", "steel")
        ok(store, "issue", f, "--unit", "CEA", "--vintage", "2024", "--quantity", "1000", "--basis", "auction")
        ok(store, "issue", f, "--unit", "CEA", "--vintage", "2025", "--quantity", "1000", "--basis", "auction")
    ok(store, "year", "open", "2024", "--deadline", "2025-12-31")
    ok(store, "trade", "--buyer", "P2", "--seller", "P1", "--unit", "CEA", "--vintage", "2025", "--quantity", "10",
       "--price", "80.00", "--mode", "listed", "--date", "2025-11-03")
    for f, q in (("P1", "600"), ("P2", "400")):
        ok(store, "emissions", "verify", f, "--year", "2024", "--facility", f"{f}-BF", "--tonnes", "1000")
        ok(store, "surrender", f, "--year", "2024", "--unit", "CEA", "--vintage", "2024", "--quantity", q)


def allocate_2025(store: str, tmp_path, firm: str, tonnes: int) -> None:
    """2025's steel balance value is not public: the regulator enters one (1.50, the facility's own intensity, so
    A = E); then the firm's 2025 true-up."""
    ok(store, "emissions", "verify", firm, "--year", "2025", "--facility", f"{firm}-BF", "--tonnes", str(tonnes),
       "--intensity", "1.50")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": "bp-2025", "years": [2025], "source": "a test plan",
                                "new_sectors": {"balance_values": {"steel": "1.50"}}}))
    ok(store, "rules", "publish", str(plan))
    ok(store, "allocate", firm, "--year", "2025", "--step", "true-up")


def test_close_orders_correction_a_late_surrender_counts_and_enforce_deducts_after_the_time_limit(
        store_url: str, tmp_path) -> None:
    setup(store_url)
    limit = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    assert run_main(store_url, "year", "close", "2024", "--correct-by", "2024-13-01").code == 2
    r = run_main(store_url, "year", "close", "2024", "--correct-by", "2020-01-01")
    assert (r.code, r.err.strip()) == (1, f"error: --correct-by 2020-01-01 is before today ({dt.date.today()})")
    out = ok(store_url, "year", "close", "2024", "--correct-by", limit)
    assert f"penalties=2 fines=400000.00 correct_by={limit}" in out  # 5 x (400 + 600) t x 80.00
    pens = {e["data"]["firm_id"]: e["data"] for e in export_lines(store_url) if e["type"] == "PenaltyAssessed"}
    assert {f: (p["shortfall"], p["fine"], p["deduction"], p["correct_by"]) for f, p in pens.items()} == {
        "P1": (400, "160000.00", 0, limit), "P2": (600, "240000.00", 0, limit)}
    # P1 corrects, late; P2 does not
    assert "late=True" in ok(store_url, "surrender", "P1", "--year", "2024", "--unit", "CEA", "--vintage", "2024",
                             "--quantity", "400")
    rows = {r["firm_id"]: r for r in invoke_json(store_url, "compliance", "--year", "2024")["rows"]}
    assert {f: (r["status"], r["shortfall"], r["fine"], r["correct_by"]) for f, r in rows.items()} == {
        "P1": ("A*", 0, "160000.00", limit), "P2": ("B", 600, "240000.00", limit)}
    r = run_main(store_url, "year", "enforce", "2024")
    assert (r.code, r.err.strip()) == (1, f"error: firms may correct 2024 until {limit}; enforce after that day")
    # the day after the time limit (a clock the CLI does not have)
    reg = Registry(store_url, clock=Clock(f"{dt.date.fromisoformat(limit) + dt.timedelta(days=1)}T09:00:00"))
    try:
        late = run_main(store_url, "surrender", "P2", "--year", "2024", "--unit", "CEA", "--vintage", "2024",
                        "--quantity", "1")
        assert late.code == 0  # still within the limit for the CLI's clock: one tonne late
        e = None
        try:
            reg.surrender("P2", 2024, "CEA", 2024, 1)
        except Exception as exc:  # noqa: BLE001 - the refusal is the point
            e = exc
        assert e is not None and getattr(e, "code", None) == "year_closed"
        out = reg.year_enforce(2024)
        assert [x["type"] for x in out.events] == ["DeductionOrdered", "ComplianceYearEnforced"]
        assert out.events[0]["data"] == {"firm_id": "P2", "year": 2024, "shortfall": 599, "deduction": 599,
                                         "correct_by": limit, "article": "IR art. 24"}
    finally:
        reg.close()
    assert run_main(store_url, "year", "enforce", "2024").code == 1  # once
    assert run_main(store_url, "surrender", "P2", "--year", "2024", "--unit", "CEA", "--vintage", "2024",
                    "--quantity", "1").code == 1  # enforced: no more surrenders
    rows = {r["firm_id"]: r for r in invoke_json(store_url, "compliance", "--year", "2024")["rows"]}
    assert (rows["P2"]["deduction"], rows["P2"]["enforced"], rows["P1"]["deduction"]) == (599, True, 0)
    ok(store_url, "year", "open", "2025")
    allocate_2025(store_url, tmp_path, "P2", 2000)  # steel 2025: issued, then deducted
    ded = [e["data"] for e in export_lines(store_url) if e["type"] == "AllowancesWithdrawn"]
    assert [(d["reason"], d["quantity"], d["penalty_year"]) for d in ded] == [("penalty deduction", 599, 2024)]
    assert run_main(store_url, "audit", "verify").code == 0


def test_the_regulator_records_article_21_and_22_penalties_and_an_allocation_cut(store_url: str, tmp_path) -> None:
    setup(store_url)
    for bad in (["--article", "21", "--fine", "40000"], ["--article", "21", "--fine", "600000"],
                ["--article", "22", "--fine", "400000"], ["--article", "22", "--fine", "400000", "--illegal-gains",
                                                          "100000"], ["--article", "23", "--fine", "60000"]):
        r = run_main(store_url, "penalty", "record", "P1", *bad)
        assert r.code == 2 and r.err.count("\n") == 1, (bad, r.err)
    assert "an article 21 fine must be from 50000.00 to 500000.00 yuan" in run_main(
        store_url, "penalty", "record", "P1", "--article", "21", "--fine", "40000").err
    ok(store_url, "penalty", "record", "P1", "--article", "21", "--fine", "50000", "--year", "2024",
       "--reason", "late emissions report")
    ok(store_url, "penalty", "record", "P1", "--article", "22", "--fine", "700000", "--illegal-gains", "100000")
    recs = [e["data"] for e in export_lines(store_url) if e["type"] == "PenaltyRecorded"]
    assert recs == [{"firm_id": "P1", "article": "21", "fine": "50000.00", "year": 2024,
                     "reason": "late emissions report"},
                    {"firm_id": "P1", "article": "22", "fine": "700000.00", "illegal_gains": "100000.00"}]
    # art. 22 cut: nothing allocated for 2026 yet; a share outside 50-100% is bad input
    assert run_main(store_url, "penalty", "cut", "P1", "--year", "2026", "--share", "0.5").code == 1
    assert run_main(store_url, "penalty", "cut", "P1", "--year", "2024", "--share", "0.4").code == 2
    ok(store_url, "year", "open", "2025")
    allocate_2025(store_url, tmp_path, "P1", 1500)
    held = invoke_json(store_url, "balances", "P1")["balances"]
    before = {(b["unit"], b["vintage"]): b["quantity"] for b in held}
    out = ok(store_url, "penalty", "cut", "P1", "--year", "2025", "--share", "0.75")
    allocated = [e["data"] for e in export_lines(store_url) if e["type"] == "AllocationCutOrdered"][0]
    cut = allocated["cut"]
    assert cut == int(allocated["allocated"] * 3 // 4) and f"cut={cut}" in out
    held = {(b["unit"], b["vintage"]): b["quantity"] for b in invoke_json(store_url, "balances", "P1")["balances"]}
    assert held.get(("CEA", 2025), 0) == before[("CEA", 2025)] - min(cut, before[("CEA", 2025)])
    assert run_main(store_url, "audit", "verify").code == 0


def test_the_default_time_limit_runs_from_the_surrender_deadline(store_url: str) -> None:
    """Without --correct-by the limit is 30 days after the deadline (2025-12-31: 2026-01-30): closed on time, late
    surrenders are taken until then; closed long after it (a replay of history), `year enforce` may follow at once."""
    setup(store_url)
    reg = Registry(store_url, clock=Clock("2026-01-05T09:00:00"))
    try:
        out = reg.close_year(2024)
        assert out.result["correct_by"] == "2026-01-30"
        reg.surrender("P1", 2024, "CEA", 2024, 400)  # late, within the limit
        assert getattr(refusal(reg.year_enforce, 2024), "code", None) == "correction_pending"
        reg.clock = Clock("2026-01-31T09:00:00")
        assert getattr(refusal(reg.surrender, "P2", 2024, "CEA", 2024, 1), "code", None) == "year_closed"
        assert [e["type"] for e in reg.year_enforce(2024).events] == ["DeductionOrdered", "ComplianceYearEnforced"]
    finally:
        reg.close()
    assert run_main(store_url, "audit", "verify").code == 0


def test_a_year_closed_long_after_its_deadline_is_enforced_at_once(store_url: str) -> None:
    setup(store_url)
    out = invoke_json(store_url, "year", "close", "2024")  # today is long after 2026-01-30
    assert out["correct_by"] == "2026-01-30"
    assert run_main(store_url, "surrender", "P2", "--year", "2024", "--unit", "CEA", "--vintage", "2024",
                    "--quantity", "1").code == 1
    enforced = invoke_json(store_url, "year", "enforce", "2024")
    assert enforced["deductions"] == 2 and enforced["deducted"] == 1000
