"""Facilities (issue 15): `facility register` and per-facility `emissions verify`, through the CLI on both
stores; a firm's verified emissions are the sum over its facilities, and a firm without facilities keeps its
firm-level verification. Every store built here passes the re-execution audit."""

from __future__ import annotations

import json

from ledgerkit import export_lines, invoke, invoke_json, run_main


def ok(store: str, *args: str) -> str:
    r = invoke(store, *args)
    assert r.exit_code == 0, f"{args}: exit {r.exit_code}: {r.exception!r} {r.stderr}"
    return r.stdout


def refused(store: str, code: int, needle: str, *args: str) -> None:
    before = len(export_lines(store))
    r = run_main(store, *args)
    assert r.code == code, (args, r)
    assert needle in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err, r.err
    assert len(export_lines(store)) == before  # nothing appended


def audit_ok(store: str) -> None:
    r = run_main(store, "audit", "verify")
    assert r.code == 0, r.err
    assert "re-executed" in r.out


def _firm(store: str) -> None:
    ok(store, "firm", "register", "P1", "--name", "Plant", "--sector", "power", "--region", "Hubei")
    ok(store, "firm", "register", "S1", "--name", "Steel", "--sector", "steel", "--region", "Hebei")
    ok(store, "year", "open", "2023")


def test_facilities_register_and_verified_emissions_are_their_sum(store_url: str) -> None:
    s = store_url
    _firm(s)
    out = invoke_json(s, "facility", "register", "P1-U1", "--firm", "P1", "--kind", "coal", "--rated-mw", "600.0")
    assert out["events"] == ["FacilityRegistered"] and out["facility_id"] == "P1-U1"
    ok(s, "facility", "register", "P1-U2", "--firm", "P1", "--kind", "coal", "--rated-mw", "350")
    ok(s, "facility", "register", "P1-G1", "--firm", "P1", "--kind", "gas")
    ok(s, "facility", "register", "S1-BF", "--firm", "S1", "--kind", "steel")
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--facility", "P1-U1", "--tonnes", "2400000",
       "--generated-mwh", "2628000", "--heat-gj", "1000000", "--load-factor", "0.50")
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--facility", "P1-U2", "--tonnes", "1500000",
       "--generated-mwh", "1800000", "--load-factor", "0.70")
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--facility", "P1-G1", "--tonnes", "400000",
       "--generated-mwh", "1000000")
    ok(s, "emissions", "verify", "S1", "--year", "2023", "--facility", "S1-BF", "--tonnes", "900000",
       "--intensity", "1.530")
    rows = {r["firm_id"]: r for r in invoke_json(s, "compliance", "--year", "2023")["rows"]}
    assert rows["P1"]["verified"] == 2_400_000 + 1_500_000 + 400_000
    assert rows["S1"]["verified"] == 900_000
    # A facility verified again replaces its own figure only.
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--facility", "P1-G1", "--tonnes", "450000",
       "--generated-mwh", "1100000")
    rows = {r["firm_id"]: r for r in invoke_json(s, "compliance", "--year", "2023")["rows"]}
    assert rows["P1"]["verified"] == 2_400_000 + 1_500_000 + 450_000
    events = export_lines(s)
    reg = [e["data"] for e in events if e["type"] == "FacilityRegistered"]
    assert reg[0] == {"facility_id": "P1-U1", "firm_id": "P1", "kind": "coal", "rated_mw": "600"}
    assert reg[2] == {"facility_id": "P1-G1", "firm_id": "P1", "kind": "gas"}
    v = [e["data"] for e in events if e["type"] == "EmissionsVerified"][0]
    assert v == {"firm_id": "P1", "year": 2023, "facility_id": "P1-U1", "tonnes": 2400000,
                 "generated_mwh": 2628000, "heat_gj": 1000000, "load_factor": "0.5"}
    audit_ok(s)


def test_firm_level_verification_stays_for_a_firm_without_facilities(store_url: str) -> None:
    s = store_url
    _firm(s)
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--tonnes", "950", "--output", "1200", "--output-unit", "MWh")
    ev = [e for e in export_lines(s) if e["type"] == "EmissionsVerified"][0]["data"]
    assert ev == {"firm_id": "P1", "year": 2023, "tonnes": 950, "output": 1200, "output_unit": "MWh"}  # as before
    # ...and its facilities cannot come after firm-level figures.
    refused(s, 1, "firm-level verified emissions", "facility", "register", "P1-U1", "--firm", "P1", "--kind", "gas")
    audit_ok(s)


def test_facility_refusals_and_bad_input(store_url: str) -> None:
    s = store_url
    _firm(s)
    ok(s, "facility", "register", "P1-U1", "--firm", "P1", "--kind", "coal", "--rated-mw", "600")
    refused(s, 1, "already registered", "facility", "register", "P1-U1", "--firm", "P1", "--kind", "gas")
    refused(s, 1, "belongs to the steel sector", "facility", "register", "X", "--firm", "P1", "--kind", "steel")
    refused(s, 1, "not registered", "facility", "register", "X", "--firm", "NOPE", "--kind", "gas")
    refused(s, 2, "needs --rated-mw", "facility", "register", "X", "--firm", "P1", "--kind", "coal")
    refused(s, 2, "--rated-mw applies only", "facility", "register", "X", "--firm", "S1", "--kind", "steel",
            "--rated-mw", "10")
    refused(s, 2, "kind 'oil' must be one of", "facility", "register", "X", "--firm", "P1", "--kind", "oil")
    refused(s, 2, "rated MW must be a positive number", "facility", "register", "X", "--firm", "P1", "--kind",
            "coal", "--rated-mw", "-5")
    refused(s, 1, "verify each one with --facility", "emissions", "verify", "P1", "--year", "2023", "--tonnes", "5")
    refused(s, 1, "facility NOPE is not registered", "emissions", "verify", "P1", "--year", "2023", "--facility",
            "NOPE", "--tonnes", "5")
    ok(s, "facility", "register", "S1-BF", "--firm", "S1", "--kind", "steel")
    refused(s, 1, "belongs to S1, not P1", "emissions", "verify", "P1", "--year", "2023", "--facility", "S1-BF",
            "--tonnes", "5")
    refused(s, 2, "load factor must be a fraction from 0 to 1", "emissions", "verify", "P1", "--year", "2023",
            "--facility", "P1-U1", "--tonnes", "5", "--load-factor", "50")
    refused(s, 2, "name it with --facility", "emissions", "verify", "S1", "--year", "2023", "--tonnes", "5",
            "--heat-gj", "3")
    refused(s, 2, "--output is a firm-level figure", "emissions", "verify", "P1", "--year", "2023", "--facility",
            "P1-U1", "--tonnes", "5", "--output", "3", "--output-unit", "MWh")
    audit_ok(s)


def test_facility_register_is_the_regulators(tmp_path) -> None:
    s = str(tmp_path / "roles.db")
    assert run_main(s, "init", "--regulator", "MEE").code == 0
    assert run_main(s, "--as", "MEE", "actor", "add", "V", "--role", "verifier").code == 0
    assert run_main(s, "--as", "MEE", "firm", "register", "P1", "--name", "P", "--sector", "power",
                    "--region", "Hubei").code == 0
    r = run_main(s, "--as", "V", "facility", "register", "U1", "--firm", "P1", "--kind", "gas")
    assert r.code == 1 and "lacks the right to facility register" in r.err
    r = run_main(s, "--as", "MEE", "facility", "register", "U1", "--firm", "P1", "--kind", "gas", "--json")
    assert r.code == 0 and json.loads(r.out)["events"] == ["FacilityRegistered"]
    r = run_main(s, "--as", "V", "emissions", "verify", "P1", "--year", "2023", "--facility", "U1", "--tonnes", "7")
    assert r.code == 0, r.err
