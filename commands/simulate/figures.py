"""The scenario's figures: what is published (yearly volumes and values, price anchors, firm counts, emissions)
and the calendar it plays on, with the small helpers every part of the scenario uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

Progress = Callable[[int, int], None]

SCENARIOS = ("china-2021-2024", "china-2021-2025")
DEMO_SCALE = 0.01
MIN_SCALE, MAX_SCALE = 0.0001, 10.0
BATCH_SIZE = 2000  # commands per registry transaction
CENT = Decimal("0.01")
UTC = dt.UTC
D = Decimal

# ---- the market in figures (docs/domain.md) ----------------------------------------------------------
TRADING_START = dt.date(2021, 7, 16)
TRADING_END = dt.date(2024, 12, 31)


@dataclass(frozen=True)
class YearFigures:
    """One calendar year of CEA trading: the published totals and the shape we give them."""

    volume_t: int
    value_yuan: Decimal
    block_share: float  # of the volume, traded as block agreements (>= 100,000 t)
    month_weights: tuple[float, ...]  # share of the year's volume by month, Jan..Dec
    knots: tuple[tuple[str, tuple[float, float]], ...]  # close path: (date, (a, b)) is a + b * level


X = (0.0, 1.0)  # a knot at the solved level
YEARS: dict[int, YearFigures] = {
    2021: YearFigures(
        179_000_000,
        D("7661000000"),
        0.83,
        (0, 0, 0, 0, 0, 0, 0.035, 0.015, 0.045, 0.045, 0.12, 0.74),
        (
            ("2021-07-16", (51.23, 0)),
            ("2021-07-23", (55.5, 0)),
            ("2021-08-20", (51.0, 0)),
            ("2021-09-17", (45.0, 0)),
            ("2021-10-22", (43.0, 0)),
            ("2021-11-19", X),
            ("2021-12-17", X),
            ("2021-12-24", (47.5, 0)),
            ("2021-12-31", (54.22, 0)),
        ),
    ),
    2022: YearFigures(
        50_890_000,
        D("2814000000"),
        0.88,
        (0.12, 0.03, 0.04, 0.03, 0.04, 0.04, 0.05, 0.09, 0.07, 0.07, 0.15, 0.27),
        (
            ("2022-01-04", (54.0, 0)),
            ("2022-02-15", (-2.0, 1)),
            ("2022-05-16", X),
            ("2022-08-15", (2.0, 1)),
            ("2022-11-15", (58.0, 0)),
            ("2022-12-30", (55.0, 0)),
        ),
    ),
    2023: YearFigures(
        212_000_000,
        D("14444000000"),
        0.84,
        (0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.09, 0.13, 0.28, 0.22, 0.16),
        (
            ("2023-01-03", (55.5, 0)),
            ("2023-04-14", (56.0, 0)),
            ("2023-07-14", (60.0, 0)),
            ("2023-09-15", (-3.0, 1)),
            ("2023-10-20", (4.0, 1)),
            ("2023-11-24", (-2.0, 1)),
            ("2023-12-20", (73.0, 0)),
            ("2023-12-29", (79.42, 0)),
        ),
    ),
    2024: YearFigures(
        189_000_000,
        D("18114000000"),
        0.80,
        (0.05, 0.04, 0.06, 0.07, 0.06, 0.05, 0.05, 0.06, 0.08, 0.11, 0.17, 0.20),
        (
            ("2024-01-02", (80.0, 0)),
            ("2024-02-20", (-8.0, 1)),
            ("2024-04-24", (6.0, 1)),
            ("2024-06-14", X),
            ("2024-08-15", (-3.0, 1)),
            ("2024-10-15", (100.0, 0)),
            ("2024-11-13", (105.66, 0)),
            ("2024-11-29", (102.5, 0)),
            ("2024-12-16", (100.0, 0)),
            ("2024-12-31", (97.49, 0)),
        ),
    ),
    # 2025: 235 Mt, 14.630 bn yuan (average 62.36 as published; 62.26 from these totals), closed the year at
    # 74.63, 243 trading days. The path: down from 97.49 through the spring (67.51 on 3 June), lower still in
    # the autumn (57.97 on 30 September, unconfirmed: a knot, not an anchor), back up in December.
    2025: YearFigures(
        235_000_000,
        D("14630000000"),
        0.80,
        (0.03, 0.02, 0.03, 0.03, 0.03, 0.04, 0.05, 0.07, 0.10, 0.16, 0.20, 0.24),
        (
            ("2025-01-02", (95.0, 0)),
            ("2025-02-14", (84.0, 0)),
            ("2025-04-15", (76.0, 0)),
            ("2025-06-03", (67.51, 0)),
            ("2025-07-15", (72.0, 0)),
            ("2025-08-29", (64.0, 0)),
            ("2025-09-30", (57.97, 0)),
            ("2025-10-31", X),
            ("2025-11-28", (2.0, 1)),
            ("2025-12-19", (66.0, 0)),
            ("2025-12-31", (74.63, 0)),
        ),
    ),
}
# The calendar years each scenario trades, and its last trading day.
SCENARIO_YEARS = {"china-2021-2024": (2021, 2022, 2023, 2024), "china-2021-2025": (2021, 2022, 2023, 2024, 2025)}
SCENARIO_END = {"china-2021-2024": dt.date(2024, 12, 31), "china-2021-2025": dt.date(2025, 12, 31)}
OPEN_PRICE = D("48.00")  # first trade on 16 July 2021
ANCHOR_CLOSES = {  # every trade of these days is at the anchor, so the day's VWAP close is exact
    dt.date(2021, 12, 31): D("54.22"),
    dt.date(2023, 12, 29): D("79.42"),
    dt.date(2024, 11, 13): D("105.66"),
    dt.date(2024, 12, 31): D("97.49"),
    dt.date(2025, 12, 31): D("74.63"),
}
PEAK_DATE = dt.date(2024, 11, 13)
PEAK_PRICE = ANCHOR_CLOSES[PEAK_DATE]
OPENING_DAY_SHARE = 0.023  # 4.1 Mt of 2021's 179 Mt changed hands on the first day

# Exchange closures (national holidays) on weekdays; weekends are closed too.
HOLIDAYS = frozenset(
    dt.date.fromisoformat(f"{year}-{md}")
    for line in """
    2021: 09-20 09-21 10-01 10-04 10-05 10-06 10-07
    2022: 01-03 01-31 02-01 02-02 02-03 02-04 04-04 04-05 05-02 05-03 05-04 06-03 09-12 10-03 10-04 10-05 10-06 10-07
    2023: 01-02 01-23 01-24 01-25 01-26 01-27 04-05 05-01 05-02 05-03 06-22 06-23 09-29 10-02 10-03 10-04 10-05 10-06
    2024: 01-01 02-09 02-12 02-13 02-14 02-15 02-16 04-04 04-05 05-01 05-02 05-03 06-10 09-16 09-17 10-01 10-02 10-03 10-04 10-07
    2025: 01-01 01-28 01-29 01-30 01-31 02-03 02-04 04-04 05-01 05-02 05-05 06-02 10-01 10-02 10-03 10-06 10-07 10-08
""".strip().splitlines()
    for year, days in [line.strip().split(": ")]
    for md in days.split()
)

# Trade sizes: listed orders are small (lognormal, median 1,200 t); blocks start at 100,000 t.
LISTED_MEDIAN_T, LISTED_SIGMA = 1200, 1.4
BLOCK_EXTRA_MEDIAN_T, BLOCK_SIGMA, BLOCK_MAX_T = 150_000, 0.9, 2_500_000
LISTED_SPREAD = 0.006  # sd of a listed trade's price around the day's close
BLOCK_DISCOUNT_MAX = 0.03  # blocks trade up to 3% under the day's close
BAND_MARGIN = D("0.095")  # we keep every price within +/-9.5% of the previous close (the rule: 10%)
PATH_NOISE = 0.012  # daily sd of the close around the knot path
# Short firms pace their buying to be done when 60% of the volume before the deadline has traded.
NEED_DONE_SHARE = 0.6

# ---- the firms (docs/domain.md) ----------------------------------------------------------------------
POWER_FIRMS_FIRST_CYCLE = 2162
POWER_FIRMS_MIN = 10  # below this a market cannot clear its volume (too few sellers, T+1), whatever the scale
POWER_ENTRANTS_2021 = 95  # 2,257 firms in the 2021-2022 cycle
NEW_SECTOR_FIRMS = {"steel": 550, "cement": 850, "aluminium": 100}  # about 1,500 from 2024
POWER_EMISSIONS_T = {
    2018: 4.85e9,
    2019: 4.95e9,
    2020: 5.0e9,
    2021: 5.1e9,
    2022: 5.05e9,
    2023: 5.15e9,
    2024: 5.1e9,
    2025: 5.15e9,
}
NEW_SECTOR_EMISSIONS_T = {"steel": 1.75e9, "cement": 1.15e9, "aluminium": 0.10e9}  # 2024, about 3 Gt
NEW_SECTOR_INTENSITY = {"steel": 1.9, "cement": 0.86, "aluminium": 2.3}  # t CO2 per t of product
NEW_SECTOR_KIND = {"steel": "steel", "cement": "clinker", "aluminium": "aluminium"}  # the facility each firm owns
# A power firm's fleet, by its main unit type (its `unit_type` in the register): (share of firms, facility kind,
# rated MW to draw from, units per firm to draw from). Category I is conventional coal of 400 MW or more (P23
# annex 1), so "coal-above-300mw" fleets are 600-1000 MW units and "coal-300mw-or-less" ones 135-350 MW.
UNIT_MIX = {
    "coal-above-300mw": (0.62, "coal", (600, 630, 660, 1000), (1, 1, 2, 2, 3)),
    "coal-300mw-or-less": (0.25, "coal", (135, 150, 200, 300, 330, 350), (1, 1, 2, 2, 3)),
    "coal-unconventional": (0.05, "coal-unconventional", (135, 150, 300, 350), (1, 2)),
    "gas": (0.08, "gas", (180, 390, 460), (1, 2, 3)),
}
GAS_PEAKER_SHARE = 0.08  # coal fleets that also run a gas unit
CHP_SHARE = {"coal": 0.35, "coal-unconventional": 0.5, "gas": 0.3}  # units that also supply heat
HEAT_GJ_PER_MWH = (0.8, 3.0)  # a CHP unit's heat supplied per MWh generated (uniform)
OWN_USE = {"coal": (0.045, 0.07), "coal-unconventional": (0.07, 0.095), "gas": (0.02, 0.03)}  # generated - supplied
LOAD_FACTOR = (0.66, 0.09, 0.40, 0.92)  # coal units' load (output) factor: mean, sd, clipped to [lo, hi]
HOURS = (6000, 7800)  # operating hours a year (uniform): generated = rated MW x hours x load factor
OUTPUT_GROWTH = {2019: 0.02, 2020: 0.02, 2021: 0.08, 2022: 0.01, 2023: 0.06, 2024: 0.015, 2025: 0.01}
OUTPUT_DROP_CHANCE = 0.004  # a unit-year whose output collapses (true-up claws back)
INTENSITY_SPREAD = 0.05  # sd of a firm's emissions around its allocation at the benchmarks
HIGH_INTENSITY_SHARE, HIGH_INTENSITY_EXTRA = 0.01, 0.22  # firms far above the benchmarks (the gap cap's)
UNIT_SPREAD = 0.01  # sd of a unit's emissions around its firm's
CCER_USER_SHARE = 0.10  # firms surrendering CCER (up to 5%) in the first cycle
DEFAULTER_SHARE = {"power": 0.025, "new": 0.01}  # firms surrendering less than they owe, per period
# fmt: off
REGIONS = ("Shandong", "Jiangsu", "Inner Mongolia", "Guangdong", "Henan", "Shanxi", "Hebei", "Anhui", "Zhejiang",
           "Xinjiang", "Liaoning", "Shaanxi", "Hubei", "Ningxia", "Guizhou", "Heilongjiang", "Jilin", "Hunan",
           "Fujian", "Sichuan", "Gansu", "Jiangxi", "Guangxi", "Yunnan", "Tianjin", "Shanghai", "Chongqing")
GROUPS = ("Huaneng", "Datang", "Huadian", "CHN Energy", "SPIC", "China Resources", "Guangdong Energy",
          "Zhejiang Energy", "Shenergy", "Jingneng", "Local")
# fmt: on


@dataclass(frozen=True)
class PeriodPlan:
    """A compliance period of the scenario and the stretch of trading in which firms buy for it."""

    label: str
    first: int
    last: int
    deadline: dt.date
    buy_from: dt.date  # short firms buy from this day to the deadline (or the last trading day)
    gap_share: float  # short firms' total gap, as a share of the volume traded in that stretch
    mean_deviation: float | None = None  # instead: the firms' mean emissions over their allocation (no trading)

    @property
    def years(self) -> range:
        return range(self.first, self.last + 1)


PERIODS = (
    PeriodPlan("2019-2020", 2019, 2020, dt.date(2021, 12, 31), TRADING_START, 0.65),
    PeriodPlan("2021-2022", 2021, 2022, dt.date(2023, 12, 31), dt.date(2022, 1, 1), 0.55),
    PeriodPlan("2023", 2023, 2023, dt.date(2024, 12, 31), dt.date(2024, 1, 1), 0.2),
    PeriodPlan("2024", 2024, 2024, dt.date(2025, 12, 31), dt.date(2024, 1, 1), 0.2),  # bought in 2024 too
)
# china-2021-2025 adds the 2025 compliance year (the 2025-2026 draft plan): pre-allocated in 2025, verified and
# trued up in 2026, after the carry-over window; its surrender (by 31 Dec 2026) is after the scenario's end, so
# nobody trades for it and its emissions are set a little above the allocation ("slightly short overall").
PERIOD_2025 = PeriodPlan("2025", 2025, 2025, dt.date(2026, 12, 31), dt.date(2026, 1, 1), 0.0, 0.015)
SCENARIO_PERIODS = {"china-2021-2024": PERIODS, "china-2021-2025": (*PERIODS, PERIOD_2025)}


# ---- calendar -------------------------------------------------------------------------------------
def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Exchange days from start to end inclusive: weekdays that are not national holidays."""
    out, d = [], start
    while d <= end:
        if d.weekday() < 5 and d not in HOLIDAYS:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def _at(day: dt.date, hour_utc: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour_utc, tzinfo=UTC)


def _cents_down(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_FLOOR)


def _cents_up(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_CEILING)


def _spread(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split `total` into integers proportional to weights (largest remainder), each >= minimum."""
    n = len(weights)
    rest = total - minimum * n
    assert rest >= 0, "total below the minimum"
    s = sum(weights)
    raw = [rest * w / s for w in weights]
    out = [int(r) for r in raw]
    order = sorted(range(n), key=lambda i: (out[i] - raw[i], i))
    for i in order[: rest - sum(out)]:
        out[i] += 1
    return [o + minimum for o in out]


# ---- the market plan: orders per day, with sizes and prices ---------------------------------------
