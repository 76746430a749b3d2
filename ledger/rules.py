"""Market rules as versioned reference data (docs/domain.md): nothing here is a code path.

Each table is keyed by the compliance year it applies to; `rules_for(year)` picks
the entry in force (the latest entry not after the year). Allocation events record
`rule_version` so an auditor knows which table produced a number.

The allocation plans of each year (benchmarks, factors, shares, balance values), with their sources, are in
ledger.plans; the formulas that apply them, and the obligation and status, in ledger.formulas. A regulator can
publish a plan the code does not ship (`rules publish`); it is recorded as an event and used from then on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger import formulas, plans

D = Decimal

# --- exchange rules -----------------------------------------------------------
LISTED_MAX_QUANTITY_T = 99_999  # listed agreement: under 100,000 t an order
BLOCK_MIN_QUANTITY_T = 100_000  # block agreement: at least 100,000 t
PRICE_BAND = {"listed": D("0.10"), "block": D("0.30"), "auction": None}  # vs previous close; auction: none

# --- compliance rules ---------------------------------------------------------
CCER_LIMIT_SHARE = D("0.05")  # CCER may cover at most 5% of verified emissions
# CCER eligibility by the project's registration date (CCER 2023: the MEE notice of 25 October 2023; P25d).
# CCERs of projects registered before 14 March 2017 (the old scheme) count only until 31 December 2024, the
# surrender deadline of compliance year 2023: read as compliance years up to 2023 (a late surrender for 2023
# within its time limit to correct included). From compliance year 2024 only CCERs of projects registered from
# 22 January 2024 count; a CCER issued without a registration date counts as the old scheme's.
CCER_OLD_REGISTERED_BEFORE = "2017-03-14"
CCER_OLD_LAST_YEAR = 2023
CCER_NEW_REGISTERED_FROM = "2024-01-22"
CCER_NEW_FROM_YEAR = 2024
GAP_CAP_SHARE = D("0.20")  # power: a firm is topped up to 80% of its verified emissions (gap-cap exemption)
PRE_ALLOCATION_SHARE = D("0.70")  # P19: pre-allocation = 70% x base-year output x benchmark
NEW_SECTORS = ("steel", "cement", "aluminium")

# Sectors covered from their first compliance year.
COVERAGE_START = {"power": 2019, "steel": 2024, "cement": 2024, "aluminium": 2024}

# Penalty regimes by deadline: the Interim Regulations (in force 1 May 2024) fine 5-10 x
# the shortfall's market value at the average price of the month before the deadline.
PENALTY_MARKET_MULTIPLE_FROM = dt.date(2024, 5, 1)
PENALTY_MULTIPLE_DEFAULT = D("5")
PENALTY_MULTIPLE_RANGE = (D("5"), D("10"))
PENALTY_FIXED_FINE_BEFORE = D("20000.00")  # before 2024: 20,000-30,000 yuan plus the deduction

# Enforcement (IR art. 24): the firm is ordered to correct within a time limit the regulator sets; the texts
# fix no length, so without --correct-by the limit is this many days after the surrender deadline (a year closed
# later than that has no time left to correct: `year enforce` may follow at once).
CORRECTION_DAYS_DEFAULT = 30
# Other penalties the regulator records (IR art. 21, art. 22).
ART21_FINE_RANGE = (D("50000.00"), D("500000.00"))  # failing to report, disclose or keep records
ART22_FINE_RANGE = (D("500000.00"), D("2000000.00"))  # data fraud without illegal gains
ART22_GAINS_MULTIPLE_RANGE = (D("5"), D("10"))  # data fraud: 5-10 x the illegal gains
ART22_CUT_SHARE_RANGE = (D("0.50"), D("1.00"))  # refusal to correct: next allocation cut by 50-100%

# --- carry-over of 2019-2024 allowances into 2025 (P23 annex 5) ----------------------------------------------
# The 2019-2020, 2021, 2022, 2023 and 2024 vintages become 2025 allowances only by application, between the
# notice (due by 31 January 2026; its date is not in this repository's sources, so the window opens on
# 1 January 2026, after the holdings date of 31 December 2025) and 10 June 2026. Limit T = B + NS x R, NS the
# firm's sales minus purchases of those vintages by trade date from 1 January 2024 to 31 December 2025 (0 if
# negative), at most its holding of those vintages, rounded down. Firms that did not complete 2023 compliance
# by 31 December 2024 or 2024 compliance by 31 December 2025 may not apply. Vintages not carried over cannot
# be surrendered for 2025 or later (P25d: only for 2019-2024 obligations).
CARRY_OVER_VINTAGES = range(2019, 2025)  # 2019-2020 (recorded as vintage 2019 or 2020), 2021, 2022, 2023, 2024
CARRY_OVER_TO_VINTAGE = 2025
CARRY_OVER_BASE_T = 10_000  # B
CARRY_OVER_RATIO = D("1.5")  # R
CARRY_OVER_NET_SALES_DATES = ("2024-01-01", "2025-12-31")  # trade dates, inclusive
CARRY_OVER_WINDOW = ("2026-01-01", "2026-06-10")  # the registry's date (UTC), inclusive
CARRY_OVER_COMPLIANCE_YEARS = (2023, 2024)  # completed by their deadlines, or no carry-over
CARRY_OVER_SOURCE = ("P23 annex 5 (MEE notice of October 2024): carry-over of the 2019-2024 vintages into 2025 by"
                     " application, T = 10,000 + 1.5 x net sales; P25d: vintages not carried over only for 2019-2024"
                     " obligations")

UNIT_TYPES = ("coal-above-300mw", "coal-300mw-or-less", "coal-unconventional", "gas")
DEFAULT_UNIT_TYPE = {"power": "coal-above-300mw"}

# --- facilities ---------------------------------------------------------------
# A covered firm owns facilities, allocated one by one and summed per firm: for power, generating units
# (P23 annex 1: conventional coal, unconventional coal - gangue, slime, coal-water slurry, CFB - and gas);
# for steel the legal entity's long-process steelmaking, for cement a clinker line, for aluminium an
# electrolysis process (P25d).
FACILITY_KINDS = ("coal", "coal-unconventional", "gas", "steel", "clinker", "aluminium")
FACILITY_SECTOR = {"coal": "power", "coal-unconventional": "power", "gas": "power", "steel": "steel",
                   "clinker": "cement", "aluminium": "aluminium"}
POWER_KINDS = ("coal", "coal-unconventional", "gas")


@dataclass(frozen=True)
class Benchmarks:
    """tCO2 per MWh of electricity and per GJ of heat, by the unit type of a firm without facilities (each a
    view of the plan of the year, ledger.plans: coal-above-300mw is category I, coal-300mw-or-less II,
    coal-unconventional III, gas IV)."""

    version: str
    electricity: dict[str, Decimal]
    heat: dict[str, Decimal]
    notes: str = ""


UNIT_TYPE_CATEGORY = {"coal-above-300mw": "I", "coal-300mw-or-less": "II", "coal-unconventional": "III",
                      "gas": "IV"}
PlanLookup = Callable[[str, int], "dict[str, Any] | None"]


def shipped_plan(part: str, year: int) -> dict[str, Any] | None:
    return plans.plan_for(part, year)


def benchmarks_for(year: int, plan: PlanLookup | None = None) -> Benchmarks:
    p = (plan or shipped_plan)("power", year)
    if p is None:
        p = plans.POWER_PLANS[min(plans.POWER_PLANS)]
    e, h = p["electricity_t_per_mwh"], p["heat_t_per_gj"]
    return Benchmarks(
        version=p["version"],
        electricity={ut: D(e[c]) for ut, c in UNIT_TYPE_CATEGORY.items()},
        heat={ut: D(h["gas" if ut == "gas" else "coal"]) for ut in UNIT_TYPE_CATEGORY},
        notes="; ".join(f"{k}: {v}" for k, v in p.get("sources", {}).items()),
    )


def pre_allocation_rule(sector: str, year: int, plan: PlanLookup | None = None) -> tuple[Decimal, bool]:
    """(share, by verified emissions?) of the pre-allocation of a firm without facilities: power by its plan
    (P19: 70% x output x benchmark; P23: 70% of verified emissions; P25d: 50%); new sectors 70% of verified
    emissions until their plan says otherwise."""
    p = (plan or shipped_plan)("power" if sector == "power" else "new_sectors", year)
    pre = (p or {}).get("pre_allocation")
    if sector == "power":
        if not pre:
            return PRE_ALLOCATION_SHARE, False
        return D(pre["share"]), pre["basis"] == "verified"
    return (D(pre["share"]) if pre else PRE_ALLOCATION_SHARE), True


def rule_version(sector: str, year: int, plan: PlanLookup | None = None) -> str:
    if sector == "power":
        return benchmarks_for(year, plan).version
    return f"{sector}-{year}"


# Correction factors a firm without facilities may pass at true-up (cooling, heat supply, load): the product
# multiplies the benchmark. A firm with facilities gets its factors from the plan and its verified data.
FACTOR_BOUNDS = {"cooling": (D("1.00"), D("1.05")), "heat_supply": (D("0.90"), D("1.00")),
                 "load": (D("1.00"), D("1.15"))}

# New sectors without facilities: 2024 allocation equals verified emissions (MEE 2025). From 2025 the plan is
# per facility (A = E x (1 + a) by the facility's intensity): a firm without facilities is refused.
NEW_SECTOR_ALLOCATION_SHARE = {2024: D("1.000")}


def new_sector_share(year: int) -> Decimal | None:
    """The share of verified emissions a new-sector firm without facilities is allocated; None from 2025."""
    return NEW_SECTOR_ALLOCATION_SHARE.get(year) if year <= max(NEW_SECTOR_ALLOCATION_SHARE) else None


def obligation(verified: int | None) -> int | None:
    """What a firm owes: all of its verified emissions (the exemptions are issued, ledger.formulas)."""
    return formulas.obligation(verified)


@dataclass(frozen=True)
class RulesInForce:
    year: int
    benchmarks: Benchmarks
    new_sector_share: Decimal | None
    covered_sectors: tuple[str, ...] = field(default_factory=tuple)


def is_covered(sector: str, year: int) -> bool:
    start = COVERAGE_START.get(sector)
    return start is not None and year >= start


def penalty_regime(deadline: dt.date | None) -> str:
    if deadline is not None and deadline < PENALTY_MARKET_MULTIPLE_FROM:
        return "fixed"
    return "market-multiple"


def rules_for(year: int, plan: PlanLookup | None = None) -> RulesInForce:
    return RulesInForce(
        year=year,
        benchmarks=benchmarks_for(year, plan),
        new_sector_share=new_sector_share(year),
        covered_sectors=tuple(s for s in COVERAGE_START if is_covered(s, year)),
    )


def describe(year: int, plan: PlanLookup | None = None) -> dict[str, object]:
    """The rules in force for a year, as plain JSON-able data (for `rules show`), with their sources; `plan`
    looks up the plans in force (the shipped ones, or a store's, with the plans published in it)."""
    lookup = plan or shipped_plan
    r = rules_for(year, lookup)
    b = r.benchmarks
    power, new = lookup("power", year), lookup("new_sectors", year)
    share, by_emissions = pre_allocation_rule("power", year, lookup)
    return {
        "year": year,
        "rule_version": b.version,
        "draft": bool(power and power.get("draft")),
        "plans": {"power": power, "new_sectors": new},
        "benchmarks": {
            "electricity_t_per_mwh": {k: str(v) for k, v in b.electricity.items()},
            "heat_t_per_gj": {k: str(v) for k, v in b.heat.items()},
            "notes": b.notes,
        },
        "pre_allocation_share": str(share),
        "pre_allocation_basis": "previous-year verified emissions" if by_emissions else
        "base-year output x benchmark",
        "correction_factor_bounds": {k: [str(lo), str(hi)] for k, (lo, hi) in FACTOR_BOUNDS.items()},
        "new_sectors": list(NEW_SECTORS),
        "new_sector_allocation_share_of_verified": None if r.new_sector_share is None else str(r.new_sector_share),
        "covered_sectors": list(r.covered_sectors),
        "obligation": "verified emissions (IR art. 30; P23 section 6); exemptions are issued as allowances",
        "gap_cap_share_of_verified": (power or {}).get("gap_cap_share", str(GAP_CAP_SHARE)),
        "gas_unit_exemption": bool((power or {}).get("gas_unit_exemption")),
        "ccer_limit_share_of_verified": str(CCER_LIMIT_SHARE),
        "ccer_eligibility": {
            "old_registered_before": CCER_OLD_REGISTERED_BEFORE, "old_last_compliance_year": CCER_OLD_LAST_YEAR,
            "new_registered_from": CCER_NEW_REGISTERED_FROM, "new_only_from_compliance_year": CCER_NEW_FROM_YEAR,
            "source": "MEE notice of 25 October 2023 on the use of CCER for compliance"},
        "carry_over": {
            "vintages": [CARRY_OVER_VINTAGES[0], CARRY_OVER_VINTAGES[-1]], "to_vintage": CARRY_OVER_TO_VINTAGE,
            "base_t": CARRY_OVER_BASE_T, "ratio": str(CARRY_OVER_RATIO),
            "net_sales_trade_dates": list(CARRY_OVER_NET_SALES_DATES), "window": list(CARRY_OVER_WINDOW),
            "compliance_years": list(CARRY_OVER_COMPLIANCE_YEARS), "source": CARRY_OVER_SOURCE},
        "price_band": {k: (str(v) if v is not None else None) for k, v in PRICE_BAND.items()},
        "listed_max_quantity_t": LISTED_MAX_QUANTITY_T,
        "block_min_quantity_t": BLOCK_MIN_QUANTITY_T,
        "penalty": {
            "market_multiple_from": PENALTY_MARKET_MULTIPLE_FROM.isoformat(),
            "multiple_default": str(PENALTY_MULTIPLE_DEFAULT),
            "multiple_range": [str(x) for x in PENALTY_MULTIPLE_RANGE],
            "fixed_fine_before": str(PENALTY_FIXED_FINE_BEFORE),
            "price_basis": "volume-weighted average trade price of the calendar month before the deadline",
            "deduction": "the shortfall, from the firm's next allocation",
        },
    }
