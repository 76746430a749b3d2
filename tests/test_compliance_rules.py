"""China ETS compliance rules (issue 4, issue 15): a worked example per rule, with the numbers worked out by
hand here, for a firm without facilities (allocated as one unit of its unit type; the per-facility rules are in
tests/test_allocation_by_plan.py).

Benchmarks (ledger.plans): 2024 (P23 annex 2, "power-2024-p23"): category I (coal-above-300mw) 0.7910
tCO2/MWh, II 0.8049, gas 0.3288; heat (coal) 0.1033 tCO2/GJ. 2022 (P21, "power-2022"): I 0.8177, II 0.8729,
gas 0.3901, heat 0.1105. Pre-allocation: 2023-2024, 70% of the previous year's verified emissions (P23 5(1));
2025-2026 draft, 50%; before 2023, 70% x base-year output x benchmark. True-up = actual output x benchmark x
factors, minus what was allocated; then a power firm below 80% of its verified emissions is topped up to 80%
(gap-cap exemption) and a gas unit to its verified emissions (gas-unit exemption), each its own issuance. The
obligation is all of the verified emissions. Fractions of a tonne are dropped (floor).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from ledgerkit import Clock, events, export_lines, invoke, invoke_json, refusal, run_main

from ledger import rules
from ledger.errors import BadInput, Refused
from ledger.registry import Registry

D = Decimal


def test_the_benchmarks_used_below_are_the_rules_tables() -> None:
    b = rules.benchmarks_for(2024)
    assert b.version == "power-2024-p23"
    assert b.electricity["coal-above-300mw"] == D("0.7910")
    assert b.electricity["coal-300mw-or-less"] == D("0.8049")
    assert b.electricity["coal-unconventional"] == D("0.8244")
    assert b.electricity["gas"] == D("0.3288")
    assert b.heat["coal-above-300mw"] == D("0.1033") and b.heat["gas"] == D("0.0533")
    assert rules.benchmarks_for(2023).electricity["coal-unconventional"] == D("0.8285")  # P23 annex 2
    assert rules.benchmarks_for(2023).electricity["gas"] == D("0.3305")
    assert rules.benchmarks_for(2025).version == "power-2025-p25d-draft"  # the draft, marked as such
    assert rules.benchmarks_for(2027).version == "power-2026-p25d-draft"  # the latest plan not after the year
    assert rules.benchmarks_for(2019).electricity["coal-above-300mw"] == D("0.877")  # the 2019-2020 plan
    assert rules.benchmarks_for(2020).electricity["gas"] == D("0.392")
    assert rules.benchmarks_for(2022).electricity["coal-300mw-or-less"] == D("0.8729")
    assert rules.PRE_ALLOCATION_SHARE == D("0.70")


def power_firm(
    reg: Registry,
    fid: str = "P1",
    unit_type: str | None = None,
    *,
    base_output: int = 1_000_000,
    output_unit: str = "MWh",
    base_year: int = 2023,
) -> None:
    """A power firm with verified base-year (2023) emissions of 850,000 t and output; base year and next open."""
    reg.register_firm(fid, f"Power {fid}", "power", "Shanxi", unit_type)
    if base_year not in reg.state.year_period:
        reg.open_year(base_year, f"{base_year + 1}-12-31")
        reg.open_year(base_year + 1, f"{base_year + 2}-12-31")
    reg.verify_emissions(fid, base_year, 850_000, base_output, output_unit)


def issued(out: Any, etype: str = "AllowancesIssued") -> list[dict[str, Any]]:
    return [e["data"] for e in out.events if e["type"] == etype]


# ---- allocation ------------------------------------------------------------------------------------


def test_pre_allocation_is_70_percent_of_the_previous_years_verified_emissions(registry: Registry) -> None:
    power_firm(registry)
    out = registry.allocate("P1", 2024, "pre")
    (d,) = issued(out)
    assert d["quantity"] == 595_000  # P23 5(1): 0.70 x 850,000 t verified in 2023
    assert d["basis"] == "pre-allocation" and d["vintage"] == 2024
    assert (d["verified_emissions"], d["base_year"], d["share"], d["rule_version"], d["computed"]) == (
        850_000, 2023, "0.70", "power-2024-p23", 595_000)
    assert "benchmark" not in d  # no benchmark enters a P23 pre-allocation
    assert registry.state.holding("P1", "CEA", 2024) == 595_000


def test_pre_allocation_before_2023_uses_the_benchmark_of_the_unit_type(registry: Registry) -> None:
    power_firm(registry, "P2", "coal-300mw-or-less", base_output=500_000, base_year=2021)
    power_firm(registry, "G1", "gas", base_output=1_000_000, base_year=2021)
    (d,) = issued(registry.allocate("P2", 2022, "pre"))
    assert d["quantity"] == 305_515  # 0.7 x 500,000 x 0.8729 (P21, 2022)
    assert (d["benchmark"], d["output"], d["rule_version"]) == ("0.8729", 500_000, "power-2022")
    assert issued(registry.allocate("G1", 2022, "pre"))[0]["quantity"] == 273_070  # 0.7 x 1,000,000 x 0.3901


def test_pre_allocation_for_heat_uses_the_heat_benchmark(registry: Registry) -> None:
    power_firm(registry, base_output=2_000_000, output_unit="GJ", base_year=2021)
    (d,) = issued(registry.allocate("P1", 2022, "pre"))
    assert d["quantity"] == 154_700  # 0.7 x 2,000,000 GJ x 0.1105
    assert d["benchmark_unit"] == "tCO2/GJ"


def test_pre_allocation_drops_the_fraction_of_a_tonne(registry: Registry) -> None:
    power_firm(registry, base_output=1_001, base_year=2021)
    assert issued(registry.allocate("P1", 2022, "pre"))[0]["quantity"] == 572  # 0.7 x 1,001 x 0.8177 = 572.96
    registry.register_firm("P9", "Small", "power", "Hubei")
    registry.verify_emissions("P9", 2023, 1_001)
    registry.open_year(2024)
    assert issued(registry.allocate("P9", 2024, "pre"))[0]["quantity"] == 700  # 0.7 x 1,001 = 700.7


def test_pre_allocation_of_the_first_cycle_uses_the_2019_2020_benchmarks(registry: Registry) -> None:
    registry.register_firm("G1", "Gas", "power", "Jiangsu", "gas")
    registry.open_year("2019-2020", "2021-12-31")
    registry.verify_emissions("G1", 2019, 300_000, 1_000_000, "MWh")
    (d,) = issued(registry.allocate("G1", 2020, "pre"))
    assert d["quantity"] == 274_400  # 0.7 x 1,000,000 x 0.392
    assert d["rule_version"] == "power-2019-2020"


def test_pre_allocation_twice_for_a_year_is_refused(registry: Registry) -> None:
    power_firm(registry)
    registry.allocate("P1", 2024, "pre")
    assert refusal(registry.allocate, "P1", 2024, "pre").code == "already_allocated"


def test_pre_allocation_without_base_year_output_is_refused(registry: Registry) -> None:
    registry.register_firm("P1", "Coal", "power", "Shanxi")
    registry.open_year(2024)
    assert refusal(registry.allocate, "P1", 2024, "pre").code == "no_base_year"


def test_true_up_issues_the_difference_when_actual_output_is_higher(registry: Registry) -> None:
    power_firm(registry)
    registry.allocate("P1", 2024, "pre")  # 595,000
    registry.verify_emissions("P1", 2024, 900_000, 1_100_000, "MWh")
    out = registry.allocate("P1", 2024, "true-up")
    (d,) = issued(out)  # 870,100 >= 80% of 900,000 = 720,000: no gap-cap exemption
    assert d["computed"] == 870_100  # 1,100,000 x 0.7910
    assert d["previously_allocated"] == 595_000
    assert d["quantity"] == 275_100 and d["basis"] == "true-up"  # 870,100 - 595,000
    assert registry.state.holding("P1", "CEA", 2024) == 870_100


def test_true_up_claws_back_the_excess_when_actual_output_is_lower(registry: Registry) -> None:
    power_firm(registry)
    registry.allocate("P1", 2024, "pre")  # 595,000
    registry.verify_emissions("P1", 2024, 500_000, 600_000, "MWh")
    out = registry.allocate("P1", 2024, "true-up")
    assert [e["type"] for e in out.events] == ["AllowancesWithdrawn"]  # 474,600 >= 80% of 500,000
    (d,) = issued(out, "AllowancesWithdrawn")
    assert d["computed"] == 474_600  # 600,000 x 0.7910
    assert d["quantity"] == 120_400  # 595,000 - 474,600
    assert d["reason"] == "true-up clawback" and d["previously_allocated"] == 595_000
    assert registry.state.holding("P1", "CEA", 2024) == 474_600


def test_true_up_applies_the_correction_factors(registry: Registry) -> None:
    power_firm(registry)
    registry.allocate("P1", 2024, "pre")
    registry.verify_emissions("P1", 2024, 900_000, 1_000_000, "MWh")
    (d,) = issued(registry.allocate("P1", 2024, "true-up", {"cooling": "1.05", "load": "1.10"}))
    assert d["computed"] == 913_605  # floor(1,000,000 x 0.7910 x 1.05 x 1.10) = 913,605
    assert d["quantity"] == 318_605  # 913,605 - 595,000
    assert d["factors"] == {"cooling": "1.05", "load": "1.10"}


@pytest.mark.parametrize("factors", [{"cooling": "1.06"}, {"heat_supply": "0.89"}, {"luck": "1.00"}])
def test_correction_factors_outside_their_bounds_are_bad_input(registry: Registry, factors: dict) -> None:
    power_firm(registry)
    registry.verify_emissions("P1", 2024, 900_000, 1_000_000, "MWh")
    assert isinstance(refusal(registry.allocate, "P1", 2024, "true-up", factors), BadInput)


def test_a_true_up_that_changes_nothing_is_refused(registry: Registry) -> None:
    power_firm(registry)
    registry.allocate("P1", 2024, "pre")
    registry.verify_emissions("P1", 2024, 700_000, 752_213, "MWh")  # floor(752,213 x 0.7910) = 595,000 exactly
    assert refusal(registry.allocate, "P1", 2024, "true-up").code == "nothing_to_allocate"


def test_a_clawback_beyond_holdings_takes_what_is_held_and_deducts_the_rest_next_year(
    registry: Registry,
) -> None:
    power_firm(registry)
    registry.register_firm("B1", "Buyer", "steel", "Hebei")
    registry.allocate("P1", 2024, "pre")  # 595,000
    registry.transfer("P1", "B1", "CEA", 2024, 585_000)  # P1 keeps 10,000
    registry.verify_emissions("P1", 2024, 500_000, 600_000, "MWh")  # excess 595,000 - 474,600 = 120,400
    (d,) = issued(registry.allocate("P1", 2024, "true-up"), "AllowancesWithdrawn")
    assert (d["quantity"], d["outstanding"]) == (10_000, 110_400)
    registry.open_year(2025, "2026-12-31")
    out = registry.allocate("P1", 2025, "pre")  # P25d (draft): 0.50 x 500,000 = 250,000
    (pre,) = issued(out)
    assert pre["quantity"] == 250_000 and pre["share"] == "0.50"
    (ded,) = issued(out, "AllowancesWithdrawn")
    assert (ded["quantity"], ded["vintage"], ded.get("outstanding")) == (110_400, 2025, None)
    assert registry.state.holding("P1", "CEA", 2025) == 250_000 - 110_400


def test_allocate_all_allocates_every_covered_firm_and_lists_the_skipped(store_url: str) -> None:
    reg = Registry(store_url)
    try:
        power_firm(reg, "P1")
        reg.register_firm("P2", "Smaller", "power", "Shanxi")
        reg.verify_emissions("P2", 2023, 400_001)
        reg.register_firm("S1", "Steel", "steel", "Hebei")
        reg.register_firm("V1", "Voluntary", "other", "Hubei")
        reg.register_firm("P3", "No output", "power", "Hubei")
    finally:
        reg.close()
    commits = []
    from ledger import registry as registry_module

    original = registry_module.Registry._commit

    def counted(self, st, blobs, rows):  # noqa: ANN001, ANN202 - the transactions the command commits
        commits.append(len(rows))
        return original(self, st, blobs, rows)

    registry_module.Registry._commit = counted
    try:
        out = invoke_json(store_url, "allocate", "--all", "--year", "2024", "--step", "pre")
    finally:
        registry_module.Registry._commit = original
    assert {a["firm_id"]: a["issued"] for a in out["allocated"]} == {"P1": 595_000, "P2": 280_000}  # 0.7 x 400,001
    assert sorted(s["firm_id"] for s in out["skipped"]) == ["P3", "S1"]  # V1 is not covered at all
    assert commits == [2]  # the year's allocation is one transaction: each firm its own command, the refused skipped
    assert run_main(store_url, "allocate", "P1", "--all", "--year", "2024", "--step", "pre").code == 2
    assert run_main(store_url, "allocate", "--all", "--year", "2024", "--step", "pre", "--factor", "load=9").code == 2
    assert run_main(store_url, "audit", "head").out.split()[0] == str(out["allocated"][-1]["position"])  # nothing more


# ---- new sectors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sector", ["steel", "cement", "aluminium"])
def test_new_sectors_are_allocated_their_verified_2024_emissions(registry: Registry, sector: str) -> None:
    registry.register_firm("N1", "New", sector, "Hebei")
    registry.open_year(2024, "2025-12-31")
    assert refusal(registry.allocate, "N1", 2024, "pre").code == "no_pre_allocation"
    registry.verify_emissions("N1", 2024, 50_000, 40_000, "t")
    (d,) = issued(registry.allocate("N1", 2024, "true-up"))
    assert (d["quantity"], d["verified_emissions"], d["share"]) == (50_000, 50_000, "1.000")
    registry.surrender("N1", 2024, "CEA", 2024, 50_000)  # no gap cap: the obligation is all of it


def test_new_sectors_are_pre_allocated_70_percent_of_last_years_emissions_from_2025(
    registry: Registry,
) -> None:
    registry.register_firm("S1", "Steel", "steel", "Hebei")
    registry.open_year(2024, "2025-12-31")
    registry.open_year(2025, "2026-12-31")
    registry.verify_emissions("S1", 2024, 50_000)
    assert issued(registry.allocate("S1", 2025, "pre"))[0]["quantity"] == 35_000  # 0.7 x 50,000
    registry.verify_emissions("S1", 2025, 60_000)
    # from 2025 the allocation is per facility, A = E x (1 + a) by its intensity (P25d): not for a firm alone
    e = refusal(registry.allocate, "S1", 2025, "true-up")
    assert e.code == "needs_facilities" and "register S1's facilities" in str(e)


def test_sectors_not_covered_in_a_year_are_not_allocated(registry: Registry) -> None:
    registry.register_firm("S1", "Steel", "steel", "Hebei")
    registry.open_year(2023, "2024-12-31")
    registry.verify_emissions("S1", 2023, 50_000)
    assert refusal(registry.allocate, "S1", 2023, "true-up").code == "not_covered"


# ---- obligation: all verified emissions; the exemptions are issued ---------------------------------------


def test_gap_cap_exemption_tops_a_coal_firm_up_to_80_percent_and_it_owes_all_its_emissions(
    registry: Registry, store_url: str
) -> None:
    power_firm(registry)
    registry.allocate("P1", 2024, "pre")  # 595,000
    registry.verify_emissions("P1", 2024, 1_000_000, 800_000, "MWh")
    out = registry.allocate("P1", 2024, "true-up")
    up, gap = issued(out)
    assert (up["basis"], up["computed"], up["quantity"]) == ("true-up", 632_800, 37_800)  # 800,000 x 0.7910
    assert (gap["basis"], gap["quantity"], gap["computed"], gap["previously_allocated"], gap["share"],
            gap["verified_emissions"]) == ("gap-cap exemption", 167_200, 800_000, 632_800, "0.80", 1_000_000)
    assert registry.state.holding("P1", "CEA", 2024) == 800_000  # 80% of 1,000,000
    e = refusal(registry.surrender, "P1", 2024, "CEA", 2024, 800_001)
    assert e.code == "insufficient_holding"
    registry.issue("P1", "CEA", 2024, 200_001, "auction")
    e = refusal(registry.surrender, "P1", 2024, "CEA", 2024, 1_000_001)
    assert e.code == "beyond_obligation" and "1000000" in str(e)
    registry.surrender("P1", 2024, "CEA", 2024, 1_000_000)
    (row,) = invoke_json(store_url, "compliance", "--year", "2024", "--firm", "P1")["rows"]
    assert (row["verified"], row["free_allocation"], row["obligation"], row["shortfall"], row["status"]) == (
        1_000_000, 800_000, 1_000_000, 0, "A")


def test_gap_cap_does_not_bind_a_firm_close_to_its_allocation(registry: Registry) -> None:
    power_firm(registry)
    registry.allocate("P1", 2024, "pre")  # 595,000
    registry.verify_emissions("P1", 2024, 600_000, 760_000, "MWh")  # 601,160 >= 480,000: no exemption
    assert [e["data"]["basis"] for e in registry.allocate("P1", 2024, "true-up").events] == ["true-up"]
    assert registry.state.obligation("P1", registry.state.period_of(2024)) == 600_000


def test_gas_unit_exemption_tops_a_gas_unit_up_to_its_verified_emissions(registry: Registry, store_url: str) -> None:
    power_firm(registry, "G1", "gas")
    registry.allocate("G1", 2024, "pre")  # 0.7 x 850,000 = 595,000
    registry.verify_emissions("G1", 2024, 400_000, 1_000_000, "MWh")
    out = registry.allocate("G1", 2024, "true-up")
    assert [e["type"] for e in out.events] == ["AllowancesWithdrawn", "AllowancesIssued"]
    (claw,) = issued(out, "AllowancesWithdrawn")
    assert (claw["computed"], claw["quantity"]) == (328_800, 266_200)  # 1,000,000 x 0.3288; 595,000 - 328,800
    (gas,) = issued(out)
    assert (gas["basis"], gas["quantity"]) == ("gas-unit exemption", 71_200)  # 400,000 - 328,800
    assert registry.state.holding("G1", "CEA", 2024) == 400_000
    registry.surrender("G1", 2024, "CEA", 2024, 400_000)
    (row,) = invoke_json(store_url, "compliance", "--year", "2024", "--firm", "G1")["rows"]
    assert (row["obligation"], row["free_allocation"], row["status"]) == (400_000, 400_000, "A")


def test_ccer_limit_is_5_percent_of_verified_emissions_rounded_down(
    registry: Registry, store_url: str
) -> None:
    registry.register_firm("S1", "Steel", "steel", "Hebei")
    registry.open_year(2024, "2025-12-31")
    registry.issue("S1", "CCER", 2024, 5_000, "offset", project_registered="2024-03-01")
    registry.issue("S1", "CEA", 2024, 20_000, "auction")
    registry.verify_emissions("S1", 2024, 12_345)  # 5% = 617.25: at most 617 t
    e = refusal(registry.surrender, "S1", 2024, "CCER", 2024, 618)
    assert e.code == "ccer_limit" and "617" in str(e)
    registry.surrender("S1", 2024, "CCER", 2024, 600)
    assert refusal(registry.surrender, "S1", 2024, "CCER", 2024, 18).code == "ccer_limit"
    registry.surrender("S1", 2024, "CCER", 2024, 17)
    registry.surrender("S1", 2024, "CEA", 2024, 12_345 - 617)
    (row,) = invoke_json(store_url, "compliance", "--year", "2024")["rows"]
    assert (row["surrendered_ccer"], row["surrendered_cea"], row["status"]) == (617, 11_728, "A")


# ---- closing a year: penalties at the month-before-deadline price, deductions next year ------------------


def penalty_setup(reg: Registry, deadline: str = "2025-12-31", november: bool = True) -> None:
    """S1 (steel): verified 50,000 t for 2024, allocated 50,000, sells 5,500; surrenders 40,000: 10,000 short.

    CEA trades: Oct 1,000 t at 66.00; Nov 1,000 t at 70.00 and 3,000 t at 72.00; Dec 500 t at 78.00 (auction).
    November's volume-weighted average: (70,000 + 216,000) / 4,000 = 71.50.
    """
    reg.register_firm("S1", "Steel", "steel", "Hebei")
    reg.register_firm("B1", "Buyer", "power", "Hubei")
    reg.open_year(2024, deadline)
    reg.verify_emissions("S1", 2024, 50_000, 40_000, "t")
    reg.allocate("S1", 2024, "true-up")
    trades = [
        ("2025-10-15", 1000, "66.00", "listed"),
        ("2025-11-10", 1000, "70.00", "listed"),
        ("2025-11-20", 3000, "72.00", "listed"),
        ("2025-12-01", 500, "78.00", "auction"),
    ]
    for date, q, price, mode in trades:
        if november or not date.startswith("2025-11"):
            reg.trade("B1", "S1", "CEA", 2024, q, price, mode, date)
    reg.surrender("S1", 2024, "CEA", 2024, 40_000)


def penalty_of(out: Any) -> dict[str, Any]:
    (d,) = [e["data"] for e in out.events if e["type"] == "PenaltyAssessed"]
    return d


def test_penalty_is_five_times_the_shortfall_at_the_average_price_of_the_month_before_the_deadline(
    registry: Registry,
) -> None:
    penalty_setup(registry)
    out = registry.close_year(2024)
    assert [e["type"] for e in out.events] == ["PenaltyAssessed", "ComplianceYearClosed"]
    p = penalty_of(out)
    assert (p["firm_id"], p["shortfall"], p["deduction"]) == ("S1", 10_000, 0)  # deducted only if not corrected
    assert (p["price"], p["price_month"], p["multiple"]) == ("71.50", "2025-11", "5")
    assert p["fine"] == "3575000.00"  # 5 x 10,000 t x 71.50
    assert (p["obligation"], p["surrendered"], p["regime"]) == (50_000, 40_000, "market-multiple")
    assert out.result["fines"] == "3575000.00" and out.result["penalties"] == 1


def test_penalty_with_a_fine_multiple(store_url: str) -> None:
    reg = Registry(store_url)
    try:
        penalty_setup(reg)
    finally:
        reg.close()
    assert run_main(store_url, "year", "close", "2024", "--fine-multiple", "4").code == 2  # 5 to 10 only
    assert run_main(store_url, "year", "close", "2024", "--fine-multiple", "10.5").code == 2
    invoke_json(store_url, "year", "close", "2024", "--fine-multiple", "7.5")
    (pen,) = [e["data"] for e in export_lines(store_url) if e["type"] == "PenaltyAssessed"]
    assert (pen["fine"], pen["multiple"]) == ("5362500.00", "7.5")  # 7.5 x 10,000 x 71.50


def test_without_trades_in_the_month_before_the_deadline_the_latest_earlier_month_prices_it(
    registry: Registry,
) -> None:
    penalty_setup(registry, november=False)
    p = penalty_of(registry.close_year(2024))
    assert (p["price"], p["price_month"], p["fine"]) == (
        "66.00",
        "2025-10",
        "3300000.00",
    )  # 5 x 10,000 x 66.00


def test_before_the_interim_regulations_the_fine_is_fixed(registry: Registry) -> None:
    penalty_setup(registry, deadline="2024-04-30")
    p = penalty_of(registry.close_year(2024))
    assert (p["fine"], p["regime"], p["multiple"], p["deduction"]) == ("20000.00", "fixed", None, 0)


def test_a_firm_that_met_its_obligation_or_owes_nothing_is_not_penalized(registry: Registry) -> None:
    penalty_setup(registry)
    registry.register_firm("S2", "Steel 2", "steel", "Hebei")  # covered, never verified: status C, no fine
    registry.surrender("S1", 2024, "CEA", 2024, 4_500)  # S1 still 5,500 short
    out = registry.close_year(2024)
    assert [penalty_of(out)["firm_id"]] == ["S1"] and penalty_of(out)["shortfall"] == 5_500


def test_the_penalty_is_deducted_from_next_years_allocation_as_its_own_event(
    registry: Registry, store_url: str
) -> None:
    penalty_setup(registry)
    close_and_enforce(registry)
    registry.open_year(2025, "2026-12-31")
    out = registry.allocate("S1", 2025, "pre")
    assert [e["type"] for e in out.events] == ["AllowancesIssued", "AllowancesWithdrawn"]
    pre, ded = (e["data"] for e in out.events)
    assert pre["quantity"] == 35_000  # 0.7 x 50,000 verified in 2024
    assert (ded["reason"], ded["quantity"], ded["vintage"], ded["penalty_year"]) == (
        "penalty deduction",
        10_000,
        2025,
        2024,
    )
    assert registry.state.holding("S1", "CEA", 2025) == 25_000
    # the deduction is taken once: the next issuance is whole
    assert "S1" not in registry.state.deductions
    registry.open_year(2026, "2027-12-31")
    registry.verify_emissions("S1", 2025, 60_000)
    out = registry.allocate("S1", 2026, "pre")
    assert [e["type"] for e in out.events] == ["AllowancesIssued"]
    rows = {(r["firm_id"], r["year"]): r for r in invoke_json(store_url, "compliance")["rows"]}
    assert (rows[("S1", 2024)]["fine"], rows[("S1", 2024)]["deduction"], rows[("S1", 2024)]["status"]) == (
        "3575000.00",
        10_000,
        "B",
    )


def test_a_deduction_larger_than_the_next_allocation_is_carried_on(registry: Registry) -> None:
    penalty_setup(registry)
    registry.transfer("S1", "B1", "CEA", 2024, 4_500)  # S1 gives away what it had left
    close_and_enforce(registry)  # short 10,000
    registry.open_year(2025, "2026-12-31")
    registry.verify_emissions("S1", 2024, 12_000)  # a late correction: pre-allocation 8,400
    out = registry.allocate("S1", 2025, "pre")
    ded = issued(out, "AllowancesWithdrawn")[0]
    assert (ded["quantity"], ded["outstanding"]) == (8_400, 1_600)
    registry.verify_emissions("S1", 2025, 60_000)
    registry.open_year(2026, "2027-12-31")
    out = registry.allocate("S1", 2026, "pre")  # 0.7 x 60,000 = 42,000 issued, then the 1,600 deducted
    assert issued(out)[0]["quantity"] == 42_000
    ded = issued(out, "AllowancesWithdrawn")[0]
    assert (ded["quantity"], ded.get("outstanding"), ded["vintage"]) == (1_600, None, 2026)


def test_closing_a_year_twice_is_refused(registry: Registry) -> None:
    penalty_setup(registry)
    registry.close_year(2024)
    before = registry.head()
    e = refusal(registry.close_year, 2024)
    assert e.code == "year_closed"
    assert registry.head() == before


def close_and_enforce(reg: Registry, correct_by: str = "2026-01-31") -> None:
    """Close 2024 on 5 January 2026 with a time limit to correct, then enforce it the day after the limit."""
    reg.clock = Clock("2026-01-05T09:00:00")
    reg.close_year(2024, correct_by=correct_by)
    reg.clock.set(f"{dt.date.fromisoformat(correct_by) + dt.timedelta(days=1)}T09:00:00")
    reg.year_enforce(2024)


def test_a_surrender_after_the_time_limit_to_correct_is_refused(registry: Registry) -> None:
    penalty_setup(registry)
    registry.clock = Clock("2026-01-05T09:00:00")
    registry.close_year(2024, correct_by="2026-01-31")
    registry.clock.set("2026-02-01T00:00:00")
    e = refusal(registry.surrender, "S1", 2024, "CEA", 2024, 100)
    assert isinstance(e, Refused) and e.code == "year_closed" and "ran until 2026-01-31" in e.message


def test_closing_a_year_that_was_never_opened_is_refused(registry: Registry) -> None:
    assert refusal(registry.close_year, 2030).code == "year_not_open"


# ---- multi-year cycles ---------------------------------------------------------------------------------


def test_a_2021_2022_cycle_is_one_obligation(store_url: str) -> None:
    reg = Registry(store_url)
    try:
        reg.register_firm("P1", "Coal", "power", "Shanxi")
        reg.open_year("2021-2022", "2023-12-31")
        assert refusal(reg.open_year, 2022).code == "year_exists"
        reg.issue("P1", "CEA", 2021, 120_000, "pre-allocation")
        reg.issue("P1", "CEA", 2022, 120_000, "pre-allocation")
        reg.verify_emissions("P1", 2021, 100_000)
        reg.verify_emissions("P1", 2022, 130_000)
        # pooled: verified 230,000; cap 240,000 + 46,000; so the obligation is 230,000 for the cycle
        reg.surrender("P1", 2021, "CEA", 2021, 110_000)  # more than 2021's own 100,000: allowed in a cycle
        reg.surrender("P1", 2021, "CEA", 2022, 10_000)  # a 2022 vintage counts for the cycle
        reg.surrender("P1", 2022, "CEA", 2022, 110_000)
        assert refusal(reg.surrender, "P1", 2022, "CEA", 2021, 1).code in (
            "beyond_obligation",
            "insufficient_holding",
        )
    finally:
        reg.close()
    rows = invoke_json(store_url, "compliance")["rows"]
    assert [
        (r["period"], r["verified"], r["obligation"], r["surrendered_cea"], r["status"]) for r in rows
    ] == [("2021-2022", 230_000, 230_000, 230_000, "A")]
    assert invoke_json(store_url, "compliance", "--year", "2022")["rows"] == rows
    invoke_json(store_url, "year", "close", "2021-2022")
    assert run_main(store_url, "year", "close", "2022").code == 1  # the cycle is closed as a whole
    exported = export_lines(store_url)
    assert exported[-1]["type"] == "ComplianceYearClosed" and exported[-1]["data"]["year"] == 2021


def test_a_cycle_shortfall_is_one_penalty_at_the_fixed_pre_2024_fine(registry: Registry) -> None:
    registry.register_firm("S1", "Steel", "steel", "Hebei")
    registry.open_year("2021-2022", "2023-12-31")
    registry.issue("S1", "CEA", 2022, 10_000, "auction")
    registry.verify_emissions("S1", 2021, 4_000)
    registry.verify_emissions("S1", 2022, 5_000)
    registry.surrender("S1", 2022, "CEA", 2022, 8_000)
    p = penalty_of(registry.close_year(2022))
    assert (p["year"], p["shortfall"], p["fine"], p["obligation"]) == (2021, 1_000, "20000.00", 9_000)


# ---- T+1 -----------------------------------------------------------------------------------------------


def test_allowances_bought_today_cannot_be_sold_today_but_can_tomorrow(registry: Registry) -> None:
    for f in ("F1", "F2", "F3"):
        registry.register_firm(f, f, "power", "Hubei")
    registry.issue("F1", "CEA", 2024, 1000, "auction")
    registry.issue("F2", "CEA", 2024, 30, "auction")  # F2's own, sellable any day
    registry.issue("F2", "CEA", 2023, 10, "auction")
    registry.trade("F2", "F1", "CEA", 2024, 100, "80.00", "listed", "2024-06-03")
    e = refusal(registry.trade, "F3", "F2", "CEA", 2024, 31, "80.00", "listed", "2024-06-03")
    assert e.code == "insufficient_holding" and "not sellable until the next day" in str(e)
    registry.trade("F3", "F2", "CEA", 2024, 30, "80.00", "listed", "2024-06-03")
    registry.trade("F3", "F2", "CEA", 2023, 10, "80.00", "listed", "2024-06-03")  # another vintage
    registry.trade("F3", "F2", "CEA", 2024, 100, "80.00", "listed", "2024-06-04")
    assert registry.state.holding("F3", "CEA", 2024) == 130


# ---- rules show --------------------------------------------------------------------------------------


def test_rules_show_prints_the_rules_in_force_for_a_year(tmp_path: Any) -> None:
    store = str(tmp_path / "unused.db")
    r24 = invoke_json(store, "rules", "show", "--year", "2024")
    assert r24["rule_version"] == "power-2024-p23" and r24["draft"] is False
    assert r24["benchmarks"]["electricity_t_per_mwh"]["coal-above-300mw"] == "0.7910"
    p24 = r24["plans"]["power"]
    assert p24["electricity_t_per_mwh"] == {"I": "0.7910", "II": "0.8049", "III": "0.8244", "IV": "0.3288"}
    assert p24["heat_t_per_gj"] == {"coal": "0.1033", "gas": "0.0533"} and p24["output_basis"] == "generated"
    assert "annex 2" in p24["sources"]["benchmarks"] and "5(3)" in p24["sources"]["exemptions"]
    assert r24["plans"]["new_sectors"]["formula"] == "verified"
    r25 = invoke_json(store, "rules", "show", "--year", "2025")
    assert r25["draft"] is True and r25["rule_version"] == "power-2025-p25d-draft"
    assert r25["pre_allocation_share"] == "0.50"
    assert r25["plans"]["new_sectors"]["balance_values"] == {"steel": None, "clinker": None, "aluminium": None}
    assert "not public" in r25["plans"]["new_sectors"]["sources"]["balance_values"]
    assert (
        r24["pre_allocation_share"],
        r24["gap_cap_share_of_verified"],
        r24["ccer_limit_share_of_verified"],
    ) == ("0.70", "0.20", "0.05")
    assert r24["price_band"] == {"listed": "0.10", "block": "0.30", "auction": None}
    assert (r24["listed_max_quantity_t"], r24["block_min_quantity_t"]) == (99_999, 100_000)
    assert r24["penalty"]["multiple_default"] == "5"
    assert set(r24["covered_sectors"]) == {"power", "steel", "cement", "aluminium"}
    r19 = invoke_json(store, "rules", "show", "--year", "2019")
    assert r19["benchmarks"]["electricity_t_per_mwh"]["coal-above-300mw"] == "0.877"
    assert r19["covered_sectors"] == ["power"]
    text = invoke(store, "rules", "show", "--year", "2019")  # for people: a table of rules and values
    assert text.exit_code == 0 and "Rules in force for 2019" in text.stdout and r19["rule_version"] in text.stdout


# ---- an auditor recomputes every number from the export alone -------------------------------------------


def _floor(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_FLOOR))


def _full_cycle(reg: Registry) -> None:
    power_firm(reg, "P1")
    power_firm(reg, "P2", "coal-300mw-or-less", base_output=400_000)
    power_firm(reg, "G1", "gas", base_output=300_000)
    reg.register_firm("S1", "Steel", "steel", "Hebei")
    for f in ("P1", "P2", "G1"):
        reg.allocate(f, 2024, "pre")
    reg.verify_emissions("P1", 2024, 900_000, 1_100_000, "MWh")
    reg.verify_emissions("P2", 2024, 300_000, 250_000, "MWh")
    reg.verify_emissions("G1", 2024, 120_000, 310_000, "MWh")
    reg.verify_emissions("S1", 2024, 50_000, 40_000, "t")
    reg.allocate("P1", 2024, "true-up", {"cooling": "1.02"})
    reg.allocate("P2", 2024, "true-up")  # a clawback
    reg.allocate("G1", 2024, "true-up", {"load": "1.15", "heat_supply": "0.95"})
    reg.allocate("S1", 2024, "true-up")
    reg.trade("S1", "P1", "CEA", 2024, 20_000, "70.00", "listed", "2025-11-10")
    reg.trade("S1", "P2", "CEA", 2024, 30_000, "72.00", "listed", "2025-11-20")
    for f, q in (("P1", 850_000), ("P2", 200_000), ("G1", 100_000), ("S1", 40_000)):
        reg.surrender(f, 2024, "CEA", 2024, min(q, reg.state.holding(f, "CEA", 2024)))
    close_and_enforce(reg)
    reg.open_year(2025, "2026-12-31")
    for f in ("P1", "P2", "G1", "S1"):
        reg.allocate(f, 2025, "pre")


def test_every_allocation_and_penalty_is_recomputed_from_the_exported_event_alone(store_url: str) -> None:
    reg = Registry(store_url)
    try:
        _full_cycle(reg)
    finally:
        reg.close()
    lines = export_lines(store_url)
    checked = defaultdict(int)
    for line in lines:
        t, d = line["type"], line["data"]
        factor = math.prod((D(v) for v in (d.get("factors") or {}).values()), start=D(1))
        if t == "AllowancesIssued" and d["basis"] == "pre-allocation":
            if "benchmark" in d:
                assert (
                    d["quantity"] == d["computed"] == _floor(D(d["share"]) * d["output"] * D(d["benchmark"]))
                )
            else:
                assert d["quantity"] == d["computed"] == _floor(D(d["share"]) * d["verified_emissions"])
            checked["pre"] += 1
        elif t == "AllowancesIssued" and d["basis"] == "true-up":
            if "benchmark" in d:
                assert d["computed"] == _floor(d["output"] * D(d["benchmark"]) * factor)
            else:
                assert d["computed"] == _floor(D(d["share"]) * d["verified_emissions"] * factor)
            assert d["quantity"] == d["computed"] - d["previously_allocated"] > 0
            checked["true-up"] += 1
        elif t == "AllowancesWithdrawn" and d["reason"] == "true-up clawback":
            assert d["computed"] == _floor(d["output"] * D(d["benchmark"]) * factor)
            assert d["quantity"] + (d.get("outstanding") or 0) == d["previously_allocated"] - d["computed"]
            checked["clawback"] += 1
        elif t == "PenaltyAssessed":
            assert d["shortfall"] == d["obligation"] - d["surrendered"] and d["deduction"] == 0
            assert D(d["fine"]) == (D(d["multiple"]) * d["shortfall"] * D(d["price"])).quantize(D("0.01"))
            month = [
                x["data"]
                for x in lines
                if x["type"] == "TradeExecuted"
                and x["data"]["unit"] == "CEA"
                and x["data"]["trade_date"].startswith(d["price_month"])
            ]
            vwap = sum(m["quantity"] * D(m["price"]) for m in month) / sum(m["quantity"] for m in month)
            assert D(d["price"]) == vwap.quantize(D("0.01"))
            checked["penalty"] += 1
        elif t == "AllowancesWithdrawn" and d["reason"] == "penalty deduction":
            pen = [
                x["data"]
                for x in lines
                if x["type"] == "DeductionOrdered"
                and x["data"]["firm_id"] == d["firm_id"]
                and x["data"]["year"] == d["penalty_year"]
            ]
            assert pen and d["quantity"] + (d.get("outstanding") or 0) == pen[0]["deduction"]
            checked["deduction"] += 1
        elif t == "AllowancesIssued" and d["basis"] == "gas-unit exemption":
            (u,) = d["facilities"]
            assert d["quantity"] == u["top_up"] == u["verified_emissions"] - u["allocation"] > 0
            checked["gas"] += 1
        elif t == "AllowancesIssued" and d["basis"] == "gap-cap exemption":
            assert d["computed"] == _floor(D(d["share"]) * d["verified_emissions"])
            assert d["quantity"] == d["computed"] - d["previously_allocated"] > 0
            checked["gap"] += 1
        if t == "AllowancesIssued" and d.get("benchmark"):  # the benchmark is the plan's, by version
            table = rules.benchmarks_for(d["year"])
            assert table.version == d["rule_version"]
            per = table.electricity if d["benchmark_unit"] == "tCO2/MWh" else table.heat
            assert D(d["benchmark"]) == per[d["unit_type"]]
    assert checked["pre"] == 7 and checked["true-up"] == 2 and checked["clawback"] == 2
    assert checked["gas"] == 1 and checked["gap"] == 1
    assert checked["penalty"] >= 2 and checked["deduction"] >= 2
    # and the ledger's own numbers agree with the events: what compliance shows is in the export
    rows = {r["firm_id"]: r for r in invoke_json(store_url, "compliance", "--year", "2024")["rows"]}
    pens = {x["data"]["firm_id"]: x["data"] for x in lines if x["type"] == "PenaltyAssessed"}
    deds = {x["data"]["firm_id"]: x["data"] for x in lines if x["type"] == "DeductionOrdered"}
    for f, p in pens.items():
        assert (rows[f]["fine"], rows[f]["deduction"], rows[f]["shortfall"]) == (
            p["fine"],
            deds[f]["deduction"],
            p["shortfall"],
        )


def test_every_event_of_a_full_cycle_fits_the_catalogue(registry: Registry) -> None:
    from ledger.events import validate_event

    _full_cycle(registry)
    for env in events(registry):
        validate_event(env)


def test_a_year_opened_without_a_deadline_is_due_at_the_end_of_the_following_year(registry: Registry) -> None:
    out = registry.open_year(2024)
    assert out.events[0]["data"]["surrender_deadline"] == "2025-12-31"
    out = registry.open_year("2021-2022")
    assert out.events[0]["data"] == {
        "year": 2021,
        "last_year": 2022,
        "period": "2021-2022",
        "surrender_deadline": "2023-12-31",
    }
