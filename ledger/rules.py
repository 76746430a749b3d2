"""Market rules as versioned reference data (docs/domain.md): nothing here is a code path.

Each table is keyed by the compliance year it applies to; `rules_for(year)` picks
the entry in force (the latest entry not after the year). Allocation events record
`rule_version` so an auditor knows which table produced a number.

Sources (named per rule in docs/domain.md): the 2019-2020 plan gives the power benchmarks of 2019-2020. The
2021-2024 coal benchmarks follow the published tightening (2021-2022 plan); the
2023-2024 values are approximations of the MEE 2023-2024 plan, marked as such in
`BENCHMARK_NOTES`: check them against the official table before a real allocation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

D = Decimal

# --- exchange rules -----------------------------------------------------------
LISTED_MAX_QUANTITY_T = 99_999  # listed agreement: under 100,000 t an order
BLOCK_MIN_QUANTITY_T = 100_000  # block agreement: at least 100,000 t
PRICE_BAND = {"listed": D("0.10"), "block": D("0.30"), "auction": None}  # vs previous close; auction: none

# --- compliance rules ---------------------------------------------------------
CCER_LIMIT_SHARE = D("0.05")  # CCER may cover at most 5% of verified emissions
GAP_CAP_SHARE = D("0.20")  # power: obligation <= free allocation + 20% of verified emissions
PRE_ALLOCATION_SHARE = D("0.70")  # pre-allocation = 70% x base-year output x benchmark
NEW_SECTORS = ("steel", "cement", "aluminium")

# Sectors covered from their first compliance year.
COVERAGE_START = {"power": 2019, "steel": 2024, "cement": 2024, "aluminium": 2024}

# Penalty regimes by deadline: the Interim Regulations (in force 1 May 2024) fine 5-10 x
# the shortfall's market value at the average price of the month before the deadline.
PENALTY_MARKET_MULTIPLE_FROM = dt.date(2024, 5, 1)
PENALTY_MULTIPLE_DEFAULT = D("5")
PENALTY_MULTIPLE_RANGE = (D("5"), D("10"))
PENALTY_FIXED_FINE_BEFORE = D("20000.00")  # before 2024: 20,000-30,000 yuan plus the deduction

UNIT_TYPES = ("coal-above-300mw", "coal-300mw-or-less", "coal-unconventional", "gas")
DEFAULT_UNIT_TYPE = {"power": "coal-above-300mw"}


@dataclass(frozen=True)
class Benchmarks:
    """tCO2 per MWh of electricity and per GJ of heat, by unit type, for one rule version."""

    version: str
    electricity: dict[str, Decimal]
    heat: dict[str, Decimal]
    gas_capped_at_allocation: bool = True
    notes: str = ""


BENCHMARKS: dict[int, Benchmarks] = {
    2019: Benchmarks(
        version="power-2019-2020",
        electricity={
            "coal-above-300mw": D("0.877"),
            "coal-300mw-or-less": D("0.979"),
            "coal-unconventional": D("1.146"),
            "gas": D("0.392"),
        },
        heat={"coal-above-300mw": D("0.126"), "coal-300mw-or-less": D("0.126"),
              "coal-unconventional": D("0.126"), "gas": D("0.059")},
        notes="2019-2020 plan: 2019-2020 power benchmarks",
    ),
    2021: Benchmarks(
        version="power-2021",
        electricity={
            "coal-above-300mw": D("0.8218"),
            "coal-300mw-or-less": D("0.8773"),
            "coal-unconventional": D("0.9350"),
            "gas": D("0.3920"),
        },
        heat={"coal-above-300mw": D("0.1111"), "coal-300mw-or-less": D("0.1111"),
              "coal-unconventional": D("0.1111"), "gas": D("0.0560")},
        notes="2021-2022 plan, 2021 values (coal tightened by 6.29%-18.41% from 2019-2020)",
    ),
    2022: Benchmarks(
        version="power-2022",
        electricity={
            "coal-above-300mw": D("0.8177"),
            "coal-300mw-or-less": D("0.8729"),
            "coal-unconventional": D("0.9303"),
            "gas": D("0.3901"),
        },
        heat={"coal-above-300mw": D("0.1105"), "coal-300mw-or-less": D("0.1105"),
              "coal-unconventional": D("0.1105"), "gas": D("0.0557")},
        notes="2021-2022 plan, 2022 values",
    ),
    2023: Benchmarks(
        version="power-2023-approx",
        electricity={
            "coal-above-300mw": D("0.7950"),
            "coal-300mw-or-less": D("0.8485"),
            "coal-unconventional": D("0.9044"),
            "gas": D("0.3792"),
        },
        heat={"coal-above-300mw": D("0.1081"), "coal-300mw-or-less": D("0.1081"),
              "coal-unconventional": D("0.1081"), "gas": D("0.0546")},
        notes="approximation of the 2023-2024 plan (further tightening); verify before real use",
    ),
    2024: Benchmarks(
        version="power-2024-approx",
        electricity={
            "coal-above-300mw": D("0.7921"),
            "coal-300mw-or-less": D("0.8455"),
            "coal-unconventional": D("0.9012"),
            "gas": D("0.3779"),
        },
        heat={"coal-above-300mw": D("0.1077"), "coal-300mw-or-less": D("0.1077"),
              "coal-unconventional": D("0.1077"), "gas": D("0.0544")},
        notes="approximation of the 2023-2024 plan; verify before real use",
    ),
}

# Correction factors applied at true-up (cooling, heat supply, load): the product
# multiplies the benchmark. Users may pass measured values within these bounds.
FACTOR_BOUNDS = {"cooling": (D("1.00"), D("1.05")), "heat_supply": (D("0.90"), D("1.00")),
                 "load": (D("1.00"), D("1.15"))}

# New sectors: 2024 allocation equals verified emissions; from 2025 intensity-based
# with a narrow surplus or shortfall, modelled as a share of verified emissions.
NEW_SECTOR_ALLOCATION_SHARE = {2024: D("1.000"), 2025: D("0.990")}


def obligation(sector: str, unit_type: str | None, verified: int, free_allocation: int) -> int:
    """What a firm must surrender: verified emissions, capped for power by the gap cap
    (free allocation + 20% of verified emissions; gas units: at most their free allocation)."""
    if sector != "power":
        return verified
    cap = free_allocation if unit_type == "gas" else free_allocation + int(GAP_CAP_SHARE * verified)
    return min(verified, cap)


@dataclass(frozen=True)
class RulesInForce:
    year: int
    benchmarks: Benchmarks
    new_sector_share: Decimal
    covered_sectors: tuple[str, ...] = field(default_factory=tuple)


def _latest_key(table: dict[int, object], year: int) -> int:
    keys = [k for k in table if k <= year]
    return max(keys) if keys else min(table)


def benchmarks_for(year: int) -> Benchmarks:
    return BENCHMARKS[_latest_key(BENCHMARKS, year)]


def new_sector_share(year: int) -> Decimal:
    return NEW_SECTOR_ALLOCATION_SHARE[_latest_key(NEW_SECTOR_ALLOCATION_SHARE, year)]


def is_covered(sector: str, year: int) -> bool:
    start = COVERAGE_START.get(sector)
    return start is not None and year >= start


def penalty_regime(deadline: dt.date | None) -> str:
    if deadline is not None and deadline < PENALTY_MARKET_MULTIPLE_FROM:
        return "fixed"
    return "market-multiple"


def rules_for(year: int) -> RulesInForce:
    return RulesInForce(
        year=year,
        benchmarks=benchmarks_for(year),
        new_sector_share=new_sector_share(year),
        covered_sectors=tuple(s for s in COVERAGE_START if is_covered(s, year)),
    )


def describe(year: int) -> dict[str, object]:
    """The rules in force for a year, as plain JSON-able data (for `rules show`)."""
    r = rules_for(year)
    b = r.benchmarks
    return {
        "year": year,
        "rule_version": b.version,
        "benchmarks": {
            "electricity_t_per_mwh": {k: str(v) for k, v in b.electricity.items()},
            "heat_t_per_gj": {k: str(v) for k, v in b.heat.items()},
            "notes": b.notes,
        },
        "pre_allocation_share": str(PRE_ALLOCATION_SHARE),
        "correction_factor_bounds": {k: [str(lo), str(hi)] for k, (lo, hi) in FACTOR_BOUNDS.items()},
        "new_sectors": list(NEW_SECTORS),
        "new_sector_allocation_share_of_verified": str(r.new_sector_share),
        "covered_sectors": list(r.covered_sectors),
        "gap_cap_share_of_verified": str(GAP_CAP_SHARE),
        "gas_obligation_capped_at_allocation": b.gas_capped_at_allocation,
        "ccer_limit_share_of_verified": str(CCER_LIMIT_SHARE),
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
