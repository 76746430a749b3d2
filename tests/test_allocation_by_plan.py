"""Allocation per facility by the plan of each year (issue 15), recomputed here by hand from the plans' formulas,
through the CLI on SQLite and PostgreSQL; and plans as data: `rules publish`, `rules show`.

The firm P1: a 600 MW coal unit U1 at 50% load supplying heat (CHP), a 350 MW coal unit U2 at 70% load, and a
gas unit G1 whose allocation is below its verified emissions. P23 (annex 1): U1 is category I (>= 400 MW), U2
category II, G1 IV. P23 annexes 3 and 4: A = Qe x Be x Ff + Qh x Bh with Qe the electricity generated,
Ff = 1.015^(16 - 20F) for conventional coal at F < 0.65, else 1 (rounded to 6 places); gas A = Qe x Be + Qh x Bh;
each unit floored, then summed. P23 5(1): pre-allocation 70% of each unit's previous-year verified emissions.
P23 5(3): a gas unit is topped up to its verified emissions, then the firm to 80% of its verified emissions.
"""

from __future__ import annotations

import json
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path

from ledgerkit import export_lines, invoke, invoke_json, run_main

D = Decimal
# P23 annex 2: 2023 and 2024 benchmarks (tCO2/MWh by category; tCO2/GJ of heat, coal and gas)
BENCH = {2023: {"I": D("0.7950"), "II": D("0.8090"), "IV": D("0.3305"), "heat": D("0.1038")},
         2024: {"I": D("0.7910"), "II": D("0.8049"), "IV": D("0.3288"), "heat": D("0.1033")}}
GEN_U1, HEAT_U1 = 2_628_000, 1_000_000  # 600 MW x 8,760 h x 0.50; GJ of heat supplied
GEN_U2 = 2_146_200  # 350 MW x 8,760 h x 0.70
GEN_G1 = 1_000_000
VERIFIED = {2022: {"U1": 3_000_000, "U2": 2_200_000, "G1": 380_000},
            2023: {"U1": 3_200_000, "U2": 2_300_000, "G1": 400_000},
            2024: {"U1": 3_300_000, "U2": 2_350_000, "G1": 420_000}}


def floor(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_FLOOR))


def ok(store: str, *args: str) -> str:
    r = invoke(store, *args)
    assert r.exit_code == 0, f"{args}: exit {r.exit_code}: {r.exception!r} {r.stderr}"
    return r.stdout


def one_line_refusal(store: str, code: int, needle: str, *args: str) -> None:
    before = len(export_lines(store))
    r = run_main(store, *args)
    assert r.code == code and needle in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err, (r, needle)
    assert len(export_lines(store)) == before


def audit_ok(store: str) -> None:
    r = run_main(store, "audit", "verify")
    assert r.code == 0 and "re-executed" in r.out, r.err


def chp_firm(s: str) -> None:
    ok(s, "firm", "register", "P1", "--name", "CHP plant", "--sector", "power", "--region", "Shanxi")
    ok(s, "facility", "register", "U1", "--firm", "P1", "--kind", "coal", "--rated-mw", "600")
    ok(s, "facility", "register", "U2", "--firm", "P1", "--kind", "coal", "--rated-mw", "350")
    ok(s, "facility", "register", "G1", "--firm", "P1", "--kind", "gas")
    for y in (2022, 2023, 2024):
        ok(s, "year", "open", str(y))


def verify_year(s: str, year: int) -> None:
    v = VERIFIED[year]
    ok(s, "emissions", "verify", "P1", "--year", str(year), "--facility", "U1", "--tonnes", str(v["U1"]),
       "--generated-mwh", str(GEN_U1), "--heat-gj", str(HEAT_U1), "--load-factor", "0.50")
    ok(s, "emissions", "verify", "P1", "--year", str(year), "--facility", "U2", "--tonnes", str(v["U2"]),
       "--generated-mwh", str(GEN_U2), "--load-factor", "0.70")
    ok(s, "emissions", "verify", "P1", "--year", str(year), "--facility", "G1", "--tonnes", str(v["G1"]),
       "--generated-mwh", str(GEN_G1))


def by_hand(year: int) -> dict[str, int]:
    """Each unit's allocation, from the plan's formula."""
    b = BENCH[year]
    ff = (D("1.015") ** 6).quantize(D("0.000001"), rounding=ROUND_HALF_UP)  # F = 0.50: 16 - 20 x 0.50 = 6
    assert ff == D("1.093443")
    return {"U1": floor(GEN_U1 * b["I"] * ff + HEAT_U1 * b["heat"]),  # U1 at 0.70 would get Ff = 1
            "U2": floor(GEN_U2 * b["II"]),  # F = 0.70 >= 0.65: Ff = 1
            "G1": floor(GEN_G1 * b["IV"])}


def allocation_events(s: str, year: int, step: str, firm: str = "P1") -> list[dict]:
    out = invoke_json(s, "allocate", firm, "--year", str(year), "--step", step)
    return [e["data"] for e in export_lines(s)[out["first_position"] - 1:out["position"]]]


def test_a_chp_firm_is_allocated_unit_by_unit_with_both_exemptions_in_2023_and_2024(store_url: str) -> None:
    s = store_url
    chp_firm(s)
    verify_year(s, 2022)
    for year in (2023, 2024):
        # pre-allocation: 70% of each unit's previous-year verified emissions, floored per unit, summed
        (pre,) = allocation_events(s, year, "pre")
        base = VERIFIED[year - 1]
        assert pre["basis"] == "pre-allocation" and pre["rule_version"] == f"power-{year}-p23"
        assert [(u["facility_id"], u["verified_emissions"], u["share"], u["allocation"]) for u in pre["facilities"]] \
            == [(k, base[k], "0.70", floor(D("0.70") * base[k])) for k in ("U1", "U2", "G1")]
        pre_total = sum(floor(D("0.70") * base[k]) for k in base)
        assert pre["quantity"] == pre_total == {2023: 3_906_000, 2024: 4_130_000}[year]

        verify_year(s, year)
        units = by_hand(year)
        up, gas, gap = allocation_events(s, year, "true-up")
        # the benchmark allocation, each input in the event
        u1, u2, g1 = up["facilities"]
        assert (u1["facility_id"], u1["category"], u1["generated_mwh"], u1["heat_gj"], u1["load_factor"],
                u1["benchmark_electricity"], u1["benchmark_heat"], u1["factors"]) == (
            "U1", "I", GEN_U1, HEAT_U1, "0.5", str(BENCH[year]["I"]), str(BENCH[year]["heat"]),
            {"peak_load": "1.093443"})
        assert (u2["category"], u2["factors"], g1["category"], g1.get("factors")) == ("II", {"peak_load": "1"}, "IV", None)
        assert "A = Qe[generated] x Be x Ff[p23] + Qh x Bh" in u1["formula"]
        assert {u["facility_id"]: u["allocation"] for u in up["facilities"]} == units
        benchmark_total = sum(units.values())
        assert (up["basis"], up["computed"], up["previously_allocated"], up["quantity"]) == (
            "true-up", benchmark_total, pre_total, benchmark_total - pre_total)
        # the gas unit is topped up to its verified emissions
        e_g1 = VERIFIED[year]["G1"]
        assert gas["basis"] == "gas-unit exemption"
        assert gas["facilities"] == [{"facility_id": "G1", "verified_emissions": e_g1, "allocation": units["G1"],
                                      "top_up": e_g1 - units["G1"]}]
        assert gas["quantity"] == e_g1 - units["G1"]
        # then the firm to 80% of its verified emissions
        verified = sum(VERIFIED[year].values())
        after_gas = benchmark_total + gas["quantity"]
        target = floor(D("0.80") * verified)
        assert (gap["basis"], gap["verified_emissions"], gap["share"], gap["computed"], gap["previously_allocated"],
                gap["quantity"]) == ("gap-cap exemption", verified, "0.80", target, after_gas, target - after_gas)
        (row,) = invoke_json(s, "compliance", "--year", str(year), "--firm", "P1")["rows"]
        assert (row["verified"], row["obligation"], row["free_allocation"]) == (verified, verified, target)
        assert row["exemptions"] == gas["quantity"] + gap["quantity"]  # published apart, part of the allocation
        assert (row["region"], row["name"]) == ("Shanxi", "CHP plant")
        assert invoke_json(s, "balances", "P1")["balances"][-1]["quantity"] == target
    # the numbers, written out for 2023: U1 floor(2,628,000 x 0.7950 x 1.093443 + 1,000,000 x 0.1038)
    assert by_hand(2023) == {"U1": 2_388_286, "U2": 1_736_275, "G1": 330_500}
    assert by_hand(2024) == {"U1": 2_376_292, "U2": 1_727_476, "G1": 328_800}
    audit_ok(s)


def test_a_second_true_up_settles_each_basis_by_its_difference(store_url: str) -> None:
    s = store_url
    chp_firm(s)
    verify_year(s, 2023)
    _up, gas0, gap0 = allocation_events(s, 2023, "true-up")
    gas_before, gap_before = gas0["quantity"], gap0["quantity"]
    # the gas unit's emissions are corrected down: its exemption shrinks, the gap-cap top-up grows to match
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--facility", "G1", "--tonnes", "350000",
       "--generated-mwh", str(GEN_G1))
    claw, gap = allocation_events(s, 2023, "true-up")
    assert (claw["reason"], claw["basis"], claw["quantity"]) == ("true-up clawback", "gas-unit exemption", 50_000)
    target = floor(D("0.80") * (3_200_000 + 2_300_000 + 350_000))
    assert gap["basis"] == "gap-cap exemption" and gap["computed"] == target
    (row,) = invoke_json(s, "compliance", "--year", "2023", "--firm", "P1")["rows"]
    assert row["free_allocation"] == target
    assert row["exemptions"] == (gas_before - 50_000) + gap_before + gap["quantity"]  # the clawback counts too
    one_line_refusal(s, 1, "already equals the computed", "allocate", "P1", "--year", "2023", "--step", "true-up")
    audit_ok(s)


def test_allocation_refuses_missing_activity_data_and_factors_for_facilities(store_url: str) -> None:
    s = store_url
    chp_firm(s)
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--facility", "U1", "--tonnes", "5", "--generated-mwh", "9")
    one_line_refusal(s, 1, "no verified load factor", "allocate", "P1", "--year", "2023", "--step", "true-up")
    ok(s, "emissions", "verify", "P1", "--year", "2023", "--facility", "U1", "--tonnes", "5", "--supplied-mwh", "9",
       "--load-factor", "0.8")
    one_line_refusal(s, 1, "no verified electricity generated", "allocate", "P1", "--year", "2023", "--step",
                     "true-up")
    one_line_refusal(s, 1, "factors come from the plan", "allocate", "P1", "--year", "2023", "--step", "true-up",
                     "--factor", "cooling=1.05")
    audit_ok(s)


def test_before_2023_supplied_electricity_and_the_p19_factors(store_url: str) -> None:
    s = store_url
    ok(s, "firm", "register", "P1", "--name", "Coal", "--sector", "power", "--region", "Shanxi")
    ok(s, "facility", "register", "U1", "--firm", "P1", "--kind", "coal", "--rated-mw", "300")
    ok(s, "year", "open", "2021-2022")
    ok(s, "emissions", "verify", "P1", "--year", "2022", "--facility", "U1", "--tonnes", "1000000",
       "--supplied-mwh", "1000000", "--generated-mwh", "1100000", "--heat-gj", "360000", "--load-factor", "0.70")
    (up, *_rest) = allocation_events(s, 2022, "true-up")
    (u,) = up["facilities"]
    # P21, 2022: category II (300 MW) 0.8729 on electricity supplied; a CHP unit has no load factor in P21
    # (pure-condensing units only); heat-share factor 1 - 0.22 x 360,000 / (360,000 + 3.6 x 1,000,000)
    fr = (1 - D("0.22") * D(360_000) / (D(360_000) + D("3.6") * 1_000_000)).quantize(D("0.000001"),
                                                                                    rounding=ROUND_HALF_UP)
    assert fr == D("0.98")
    assert (u["category"], u["supplied_mwh"], u["factors"]) == ("II", 1_000_000, {"heat_share": "0.98"})
    assert u["allocation"] == floor(1_000_000 * D("0.8729") * fr + 360_000 * D("0.1105")) == 895_222
    audit_ok(s)


def plan_file(tmp_path: Path, name: str, plan: dict) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(plan))
    return str(p)


def test_a_new_sector_is_refused_until_its_balance_value_is_published(store_url: str, tmp_path: Path) -> None:
    s = store_url
    ok(s, "firm", "register", "S1", "--name", "Steel", "--sector", "steel", "--region", "Hebei")
    ok(s, "facility", "register", "S1-BF", "--firm", "S1", "--kind", "steel")
    ok(s, "year", "open", "2024")
    ok(s, "year", "open", "2025")
    ok(s, "emissions", "verify", "S1", "--year", "2024", "--facility", "S1-BF", "--tonnes", "50000")
    (first,) = allocation_events(s, 2024, "true-up", "S1")
    assert first["quantity"] == 50_000 and first["facilities"][0]["formula"].endswith("A = E")  # 2024: A = E
    ok(s, "emissions", "verify", "S1", "--year", "2025", "--facility", "S1-BF", "--tonnes", "60000",
       "--intensity", "1.53")
    shown = invoke_json(s, "rules", "show", "--year", "2025")["plans"]["new_sectors"]
    assert shown["balance_values"]["steel"] is None and "not public" in shown["sources"]["balance_values"]
    one_line_refusal(s, 1, "balance value for steel is not public", "allocate", "S1", "--year", "2025", "--step",
                     "true-up")
    plan = {"version": "bp-2025", "years": [2025], "source": "the final 2025-2026 plan (as a regulator enters it)",
            "new_sectors": {"balance_values": {"steel": "1.50"}}}
    out = invoke_json(s, "rules", "publish", plan_file(tmp_path, "bp.json", plan))
    assert out["events"] == ["PlanPublished"] and out["years"] == [2025]
    shown = invoke_json(s, "rules", "show", "--year", "2025")["plans"]["new_sectors"]
    assert (shown["balance_values"]["steel"], shown["version"], shown["slope"]) == ("1.5", "bp-2025", "0.15")
    (d,) = allocation_events(s, 2025, "true-up", "S1")
    (u,) = d["facilities"]
    # X = (1.50 - 1.53) / 1.50 = -0.02, inside +-0.20: a = 0.15 x -0.02 = -0.003; A = 60,000 x 0.997
    assert (u["x"], u["a"], u["allocation"], d["quantity"], d["rule_version"]) == (
        "-0.020000", "-0.003000", 59_820, 59_820, "bp-2025")
    audit_ok(s)


def test_a_published_plan_for_a_year_the_code_does_not_ship(store_url: str, tmp_path: Path) -> None:
    s = store_url
    ok(s, "firm", "register", "G", "--name", "Gas", "--sector", "power", "--region", "Jiangsu")
    ok(s, "facility", "register", "G-1", "--firm", "G", "--kind", "gas")
    ok(s, "year", "open", "2027")
    plan = {"version": "power-2027-test", "years": [2027], "source": "a 2027 plan, entered by the regulator",
            "power": {"draft": False, "electricity_t_per_mwh": {"IV": "0.3200"}, "gap_cap_share": "0.10",
                      "sources": {"benchmarks": "the 2027 plan, annex 2"}}}
    ok(s, "rules", "publish", plan_file(tmp_path, "p27.json", plan))
    r27 = invoke_json(s, "rules", "show", "--year", "2027")
    assert (r27["rule_version"], r27["draft"], r27["plans"]["power"]["electricity_t_per_mwh"]["IV"]) == (
        "power-2027-test", False, "0.32")
    assert r27["plans"]["power"]["electricity_t_per_mwh"]["I"] == "0.7894"  # the rest from the 2026 draft
    ok(s, "emissions", "verify", "G", "--year", "2027", "--facility", "G-1", "--tonnes", "300000",
       "--generated-mwh", "1000000")
    (up,) = allocation_events(s, 2027, "true-up", "G")
    # 1,000,000 MWh x 0.3200 = 320,000 >= the 300,000 verified: no exemption (the gap cap, 10% here, binds not)
    assert (up["quantity"], up["rule_version"], up["facilities"][0]["benchmark_electricity"]) == (
        320_000, "power-2027-test", "0.32")
    audit_ok(s)


def test_rules_publish_refusals(store_url: str, tmp_path: Path) -> None:
    s = store_url
    ok(s, "year", "open", "2024")
    one_line_refusal(s, 1, "would lack", "rules", "publish", plan_file(tmp_path, "a.json", {
        "version": "old", "years": [2018], "source": "s", "power": {"draft": False}}))
    one_line_refusal(s, 2, "unknown key 'benchmarks'", "rules", "publish", plan_file(tmp_path, "b.json", {
        "version": "x", "years": [2024], "source": "s", "power": {"benchmarks": {}}}))
    one_line_refusal(s, 2, "power or new_sectors", "rules", "publish", plan_file(tmp_path, "c.json", {
        "version": "x", "years": [2024], "source": "s"}))
    (tmp_path / "d.json").write_text("{not json")
    one_line_refusal(s, 2, "not JSON", "rules", "publish", str(tmp_path / "d.json"))
    ok(s, "year", "close", "2024")
    one_line_refusal(s, 1, "is closed", "rules", "publish", plan_file(tmp_path, "e.json", {
        "version": "late", "years": [2024], "source": "s", "power": {"gap_cap_share": "0.10"}}))
    audit_ok(s)
