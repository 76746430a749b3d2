"""CCER eligibility by the project's registration date (the MEE notice of 25 October 2023), through the CLI on
SQLite and PostgreSQL: CCER of projects registered before 14 March 2017 (or of unknown date) count for compliance
years up to 2023; from 2024 only CCER of projects registered from 22 January 2024 count. A holding keeps how many
of its units are eligible; units leave it ineligible first, except a surrender for 2024 on, which takes eligible
ones (docs/domain.md). Every store built here passes `audit verify` and `audit replay`.

By hand: S1 holds CCER 2016 1,000 (registered 2016) and CCER 2023 500 (300 registered 2024-03-01, 200 undated).
It sends P1 250 of CCER 2023: the 200 undated first, then 50 eligible; S1 keeps 250, all eligible; P1 250, of
which 50 eligible.
"""

from __future__ import annotations

import json

from ledgerkit import export_lines, run_main


def ok(store: str, *args: str) -> dict:
    r = run_main(store, *args, "--json")
    assert r.code == 0, f"{args}: exit {r.code}: {r.err}"
    return json.loads(r.out)


def refused(store: str, *args: str) -> str:
    r = run_main(store, *args, "--json")
    assert r.code == 1 and r.out == "" and r.err.count("\n") == 1, (args, r)
    return json.loads(r.err)["error"]["code"]


def surrender(store: str, firm: str, year: int, vintage: int, q: int) -> list[str]:
    return [firm, "--year", str(year), "--unit", "CCER", "--vintage", str(vintage), "--quantity", str(q)]


def test_old_ccer_count_until_2023_new_ones_from_2024_lots_move_ineligible_first(store_url: str) -> None:
    s = store_url
    ok(s, "firm", "register", "S1", "--name", "Steel", "--sector", "steel", "--region", "Hebei")
    ok(s, "firm", "register", "P1", "--name", "Power", "--sector", "power", "--region", "Hubei")
    ok(s, "year", "open", "2023", "--deadline", "2024-12-31")
    ok(s, "year", "open", "2024", "--deadline", "2025-12-31")
    ccer = ["--unit", "CCER", "--basis", "offset"]
    ok(s, "issue", "S1", *ccer, "--vintage", "2016", "--quantity", "1000", "--project-registered", "2016-05-01")
    ok(s, "issue", "S1", *ccer, "--vintage", "2023", "--quantity", "300", "--project-registered", "2024-03-01")
    ok(s, "issue", "S1", *ccer, "--vintage", "2023", "--quantity", "200")  # no date known: the old scheme's
    assert refused(s, "issue", "S1", "--unit", "CEA", "--vintage", "2024", "--quantity", "1", "--basis", "auction",
                   "--project-registered", "2024-03-01") == "basis_unit"
    r = run_main(s, "issue", "S1", *ccer, "--vintage", "2024", "--quantity", "1", "--project-registered", "2024-13-01")
    assert r.code == 2 and r.err.count("\n") == 1
    issued = [e["data"].get("project_registered") for e in export_lines(s) if e["type"] == "AllowancesIssued"]
    assert issued == ["2016-05-01", "2024-03-01", None]
    for f, y, t in (("S1", "2023", "10000"), ("S1", "2024", "10000"), ("P1", "2023", "5000"), ("P1", "2024", "20000")):
        ok(s, "emissions", "verify", f, "--year", y, "--tonnes", t)
    # the old scheme's CCER: 2023 yes, 2024 no
    assert refused(s, "surrender", *surrender(s, "S1", 2024, 2016, 10)) == "ccer_not_eligible"
    ok(s, "surrender", *surrender(s, "S1", 2023, 2016, 100))
    # S1 sends 250 of CCER 2023: 200 undated, then 50 eligible
    ok(s, "transfer", "S1", "P1", "--unit", "CCER", "--vintage", "2023", "--quantity", "250")
    assert refused(s, "surrender", *surrender(s, "P1", 2024, 2023, 51)) == "ccer_not_eligible"
    out = ok(s, "surrender", *surrender(s, "P1", 2024, 2023, 50))
    ok(s, "surrender", *surrender(s, "P1", 2023, 2023, 200))  # the undated ones still count for 2023
    assert refused(s, "surrender", *surrender(s, "S1", 2024, 2023, 251)) == "insufficient_holding"
    s1 = ok(s, "surrender", *surrender(s, "S1", 2024, 2023, 250))  # all of S1's are eligible
    data = {e["position"]: e["data"] for e in export_lines(s) if e["type"] == "AllowancesSurrendered"}
    assert data[out["position"]] == {"firm_id": "P1", "year": 2024, "unit": "CCER", "vintage": 2023, "quantity": 50,
                                     "eligible": 50}
    assert data[s1["position"]]["eligible"] == 250
    assert [d.get("eligible") for d in data.values()] == [None, 50, None, 250]
    # a reversed surrender gives back eligible units: they count for 2024 again
    ok(s, "reverse", str(s1["position"]), "--reason", "surrendered by mistake")
    ok(s, "surrender", *surrender(s, "S1", 2024, 2023, 200))
    rows = {(r["firm_id"], r["year"]): r for r in ok(s, "compliance")["rows"]}
    assert (rows[("S1", 2024)]["surrendered_ccer"], rows[("P1", 2024)]["surrendered_ccer"],
            rows[("S1", 2023)]["surrendered_ccer"], rows[("P1", 2023)]["surrendered_ccer"]) == (200, 50, 100, 200)
    assert run_main(s, "audit", "verify").code == 0
    assert run_main(s, "audit", "replay").code == 0


def test_a_trade_moves_ineligible_units_first_and_the_import_takes_the_date(store_url: str, tmp_path) -> None:
    s = store_url
    lines = [
        {"command": "firm register", "command_id": "c-1", "firm_id": "S1", "name": "Steel", "sector": "steel",
         "region": "Hebei"},
        {"command": "firm register", "command_id": "c-2", "firm_id": "S2", "name": "Cement", "sector": "cement",
         "region": "Anhui"},
        {"command": "year open", "command_id": "c-3", "year": "2024"},
        {"command": "issue", "command_id": "c-4", "account_id": "S1", "unit": "CCER", "vintage": 2023,
         "quantity": 100, "basis": "offset", "project_registered": "2024-06-30"},
        {"command": "issue", "command_id": "c-5", "account_id": "S1", "unit": "CCER", "vintage": 2023,
         "quantity": 40, "basis": "offset", "project_registered": "2015-01-09"},
        {"command": "trade", "command_id": "c-6", "buyer": "S2", "seller": "S1", "unit": "CCER", "vintage": 2023,
         "quantity": 60, "price": "70.00", "mode": "listed", "date": "2025-06-03"},
        {"command": "emissions verify", "command_id": "c-7", "firm_id": "S2", "year": 2024, "tonnes": 10000},
        {"command": "emissions verify", "command_id": "c-8", "firm_id": "S1", "year": 2024, "tonnes": 10000},
    ]
    f = tmp_path / "ccer.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert run_main(s, "import", str(f)).code == 0
    # S2 bought 40 old and 20 eligible; S1 kept 80 eligible
    assert refused(s, "surrender", *surrender(s, "S2", 2024, 2023, 21)) == "ccer_not_eligible"
    ok(s, "surrender", *surrender(s, "S2", 2024, 2023, 20))
    ok(s, "surrender", *surrender(s, "S1", 2024, 2023, 80))
    assert run_main(s, "audit", "verify").code == 0
