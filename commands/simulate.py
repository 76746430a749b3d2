"""Scenario engine (issue 6): a whole market generated from a seed and run through the registry.

`simulate(registry, "china-2021-2024", scale, seed)` builds China's national ETS from its first
compliance cycle to the 2024 expansion (docs/domain.md): power firms with unit types and outputs,
the steel, cement and aluminium firms of 2024, compliance periods opened with `year open`,
benchmark allocation with `allocate` (pre-allocation, then true-up), verified emissions, CCER
offsets, every trading day from 16 July 2021 to 31 December 2024, surrenders by each deadline
and, at `year close`, the penalties of the few firms that fall short.

Every decision comes from `random.Random(seed)`, and every event is recorded by
`Registry.execute_batch` running the same commands as the CLI and `import`: the simulator has
no side door into the store. It plays the participants, not the ledger: it reads the
registry's state (what a firm holds, what it owes) only to decide what the firm does next.
The trades are calibrated so that each calendar year's volume and value match the published figures (docs/domain.md) and
the daily closes (VWAP) pass through its price anchors.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from statistics import NormalDist
from typing import Any

from ledger import formulas, rules
from ledger.errors import BadInput, LedgerError, Refused
from ledger.model import LedgerState
from ledger.registry import Command, Outcome, Registry
from ledger.units import money

Progress = Callable[[int, int], None]

SCENARIOS = ("china-2021-2024",)
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
}
OPEN_PRICE = D("48.00")  # first trade on 16 July 2021
ANCHOR_CLOSES = {  # every trade of these days is at the anchor, so the day's VWAP close is exact
    dt.date(2021, 12, 31): D("54.22"),
    dt.date(2023, 12, 29): D("79.42"),
    dt.date(2024, 11, 13): D("105.66"),
    dt.date(2024, 12, 31): D("97.49"),
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
}
NEW_SECTOR_EMISSIONS_T = {"steel": 1.75e9, "cement": 1.15e9, "aluminium": 0.10e9}  # 2024, about 3 Gt
NEW_SECTOR_INTENSITY = {"steel": 1.9, "cement": 0.86, "aluminium": 2.3}  # t CO2 per t of product
# unit type: (share of firms, median output MWh, lognormal sigma)
UNIT_MIX = {
    "coal-above-300mw": (0.62, 3.2e6, 0.6),
    "coal-300mw-or-less": (0.25, 1.0e6, 0.6),
    "coal-unconventional": (0.05, 1.2e6, 0.5),
    "gas": (0.08, 0.9e6, 0.7),
}
OUTPUT_GROWTH = {2019: 0.02, 2020: 0.02, 2021: 0.08, 2022: 0.01, 2023: 0.06, 2024: 0.015}
OUTPUT_DROP_CHANCE = 0.004  # a firm-year whose output collapses (true-up claws back)
INTENSITY_SPREAD = 0.05  # sd of a firm's emissions intensity around its allocation benchmark
AIR_COOLED_SHARE, LOW_LOAD_SHARE = 0.2, 0.15
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

    @property
    def years(self) -> range:
        return range(self.first, self.last + 1)


PERIODS = (
    PeriodPlan("2019-2020", 2019, 2020, dt.date(2021, 12, 31), TRADING_START, 0.65),
    PeriodPlan("2021-2022", 2021, 2022, dt.date(2023, 12, 31), dt.date(2022, 1, 1), 0.55),
    PeriodPlan("2023", 2023, 2023, dt.date(2024, 12, 31), dt.date(2024, 1, 1), 0.2),
    PeriodPlan("2024", 2024, 2024, dt.date(2025, 12, 31), dt.date(2024, 1, 1), 0.2),  # bought in 2024 too
)


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


def _floor(x: Decimal) -> int:
    return int(x.to_integral_value(rounding=ROUND_FLOOR))


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
@dataclass
class Order:
    """A planned trade: its size and price; buyer, seller, vintage and mode are settled when it runs."""

    quantity: int
    price: Decimal


class MarketPlan:
    """Each calendar year's orders: sizes that sum to the year's volume, prices whose value matches.

    The close path runs through the year's knots; its free level is solved on the expected daily
    volumes, so the path's shape does not depend on where a few big blocks fall. The realised
    orders are then priced along the path, shifted by a small factor (`tilt`, zero on anchor days
    and fading near them) solved so the year's value matches to about 0.01%.
    """

    def __init__(self, rnd: random.Random, scale: float) -> None:
        self.days = trading_days(TRADING_START, TRADING_END)
        self.orders: dict[dt.date, list[Order]] = {}
        close: Decimal | None = None
        for year, fig in YEARS.items():
            days = [d for d in self.days if d.year == year]
            weights = self._weights(rnd, days, fig)
            fade = self._fade(days)
            sizes = self._sizes(rnd, days, weights, fade, round(fig.volume_t * scale), fig.block_share)
            noise = self._path_noise(rnd, days, fig)
            devs = {d: [self._deviation(rnd, block) for _, block in sizes[d]] for d in days}
            target = fig.value_yuan * D(str(scale))
            path = self._path(days, fig, weights, noise, float(target) / (fig.volume_t * scale))
            close = self._solve(days, sizes, devs, path, fade, target, close)

    # sizes ----------------------------------------------------------------------------------------
    @staticmethod
    def _weights(rnd: random.Random, days: list[dt.date], fig: YearFigures) -> list[float]:
        per_month = {m: sum(1 for d in days if d.month == m) for m in range(1, 13)}
        weights = [
            fig.month_weights[d.month - 1] / per_month[d.month] * math.exp(rnd.gauss(0, 0.45)) for d in days
        ]
        if days[0] == TRADING_START:
            weights[0] = OPENING_DAY_SHARE * sum(weights[1:]) / (1 - OPENING_DAY_SHARE)
        total = sum(weights)
        return [w / total for w in weights]

    @staticmethod
    def _fade(days: list[dt.date]) -> list[float]:
        """1 far from the anchor days, 0 on them, a ramp over the 3 trading days either side."""
        anchors = [i for i, d in enumerate(days) if d in ANCHOR_CLOSES]
        return [min([1.0] + [abs(i - a) / 4 for a in anchors]) for i in range(len(days))]

    @staticmethod
    def _sizes(
        rnd: random.Random,
        days: list[dt.date],
        weights: list[float],
        fade: list[float],
        volume: int,
        block_share: float,
    ) -> dict[dt.date, list[tuple[int, bool]]]:
        block_total = round(volume * block_share)
        blocks: list[int] = []
        while sum(blocks) < block_total:
            q = rules.BLOCK_MIN_QUANTITY_T + int(
                rnd.lognormvariate(math.log(BLOCK_EXTRA_MEDIAN_T), BLOCK_SIGMA)
            )
            blocks.append(min(q, BLOCK_MAX_T))
        if blocks:
            blocks[-1] -= sum(blocks) - block_total
            if blocks[-1] < rules.BLOCK_MIN_QUANTITY_T:
                last = blocks.pop()
                if blocks:
                    blocks[-1] += last
        out: dict[dt.date, list[tuple[int, bool]]] = {d: [] for d in days}
        for d, total in zip(days, _spread(volume - sum(blocks), weights, minimum=1), strict=True):
            while total > 0:
                q = min(
                    total,
                    rules.LISTED_MAX_QUANTITY_T,
                    max(1, int(rnd.lognormvariate(math.log(LISTED_MEDIAN_T), LISTED_SIGMA))),
                )
                out[d].append((q, False))
                total -= q
        block_days = [(d, w) for d, w, f in zip(days, weights, fade, strict=True) if f == 1.0]
        for q in blocks:  # blocks keep off the anchor days, where every trade is at the anchor
            d = rnd.choices([d for d, _ in block_days], weights=[w**1.2 for _, w in block_days])[0]
            out[d].append((q, True))
        for d in days:
            rest = out[d][1:]
            rnd.shuffle(rest)
            out[d] = out[d][:1] + rest  # a listed order opens each day
        return out

    @staticmethod
    def _deviation(rnd: random.Random, block: bool) -> float:
        if block:
            return -rnd.uniform(0, BLOCK_DISCOUNT_MAX)
        return max(-0.02, min(0.02, rnd.gauss(0, LISTED_SPREAD)))

    # the close path -------------------------------------------------------------------------------
    @staticmethod
    def _path_noise(rnd: random.Random, days: list[dt.date], fig: YearFigures) -> list[float]:
        """A random walk pinned to zero at every knot (a Brownian bridge per segment)."""
        pins = sorted(
            {min(bisect.bisect_left(days, dt.date.fromisoformat(k)), len(days) - 1) for k, _ in fig.knots}
            | {0, len(days) - 1}
        )
        noise = [0.0] * len(days)
        for a, b in itertools.pairwise(pins):
            walk = [0.0]
            for _ in range(b - a):
                walk.append(walk[-1] + rnd.gauss(0, PATH_NOISE))
            for i in range(b - a + 1):
                noise[a + i] = walk[i] - walk[-1] * i / (b - a)
        return noise

    @staticmethod
    def _path(
        days: list[dt.date], fig: YearFigures, weights: list[float], noise: list[float], mean_price: float
    ) -> list[float]:
        """Closes through the knots; the free level makes the volume-weighted mean the year's price."""
        knots = [(dt.date.fromisoformat(k).toordinal(), ab) for k, ab in fig.knots]
        ords = [k for k, _ in knots]
        fixed, per_level = [], []
        for d, eps in zip(days, noise, strict=True):
            t = min(max(d.toordinal(), ords[0]), ords[-1])
            j = min(bisect.bisect_right(ords, t), len(ords) - 1)
            (t0, (a0, b0)), (t1, (a1, b1)) = knots[j - 1], knots[j]
            u = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
            fixed.append((a0 + (a1 - a0) * u) * (1 + eps))
            per_level.append((b0 + (b1 - b0) * u) * (1 + eps))
        level = (mean_price - sum(w * f for w, f in zip(weights, fixed, strict=True))) / sum(
            w * p for w, p in zip(weights, per_level, strict=True)
        )
        cap = float(PEAK_PRICE) - 1.0
        return [
            f + p * level if d == PEAK_DATE else min(f + p * level, cap)
            for d, f, p in zip(days, fixed, per_level, strict=True)
        ]

    # prices ---------------------------------------------------------------------------------------
    @staticmethod
    def _price(
        days: list[dt.date],
        sizes: dict,
        devs: dict,
        path: list[float],
        fade: list[float],
        tilt: float,
        close: Decimal | None,
    ) -> tuple[dict[dt.date, list[Order]], Decimal, Decimal | None]:
        out: dict[dt.date, list[Order]] = {}
        value = D(0)
        for d, target, f in zip(days, path, fade, strict=True):
            day = sizes[d]
            anchor = ANCHOR_CLOSES.get(d)
            if anchor is not None:
                prices = [anchor] * len(day)
            else:
                target *= 1 + tilt * f
                start = 1 if close is None else 0  # the opening day's first trade is at the opening price
                fixed_value = float(OPEN_PRICE) * day[0][0] if start else 0.0
                raw = [1 + e for e in devs[d][start:]]
                weight = sum(q * r for (q, _), r in zip(day[start:], raw, strict=True))
                k = (target * sum(q for q, _ in day) - fixed_value) / weight if weight else target
                prices = [OPEN_PRICE] * start + [D(f"{k * r:.2f}") for r in raw]
                if close is not None:
                    lo, hi = _cents_up(close * (1 - BAND_MARGIN)), _cents_down(close * (1 + BAND_MARGIN))
                    prices = [min(max(p, lo), hi) for p in prices]
                prices = [min(p, PEAK_PRICE - CENT) for p in prices]
            orders = [Order(q, p) for (q, _), p in zip(day, prices, strict=True)]
            day_value = sum((o.price * o.quantity for o in orders), D(0))
            close = money(day_value / sum(o.quantity for o in orders))
            value += day_value
            out[d] = orders
        return out, value, close

    def _solve(
        self,
        days: list[dt.date],
        sizes: dict,
        devs: dict,
        path: list[float],
        fade: list[float],
        target: Decimal,
        close: Decimal | None,
    ) -> Decimal | None:
        """The tilt that gives the year its value (secant method), and the orders priced with it."""
        t0, t1 = 0.0, 0.01
        orders, v0, last = self._price(days, sizes, devs, path, fade, t0, close)
        best = (abs(v0 - target), t0, orders, last)
        for _ in range(12):
            if best[0] <= target * D("0.00001"):
                break
            orders, v1, last = self._price(days, sizes, devs, path, fade, t1, close)
            if abs(v1 - target) < best[0]:
                best = (abs(v1 - target), t1, orders, last)
            if v1 == v0:
                break
            t0, t1, v0 = t1, max(-0.3, min(0.3, t1 + float(target - v1) * (t1 - t0) / float(v1 - v0))), v1
        self.orders.update(best[2])
        return best[3]


# ---- the firms ----------------------------------------------------------------------------------
@dataclass
class Firm:
    """A covered firm as the scenario draws it: what it produces and emits, year by year."""

    fid: str
    name: str
    sector: str
    region: str
    unit_type: str | None
    first_year: int  # first compliance year
    output: dict[int, int] = field(default_factory=dict)  # MWh (power) or t of product
    emissions: dict[int, int] = field(default_factory=dict)  # verified t CO2
    factors: dict[int, dict[str, str]] = field(default_factory=dict)  # true-up correction factors
    ccer: tuple[int, int] | None = None  # (vintage, t) of CCER it brings to the first cycle
    shortfall_permille: dict[str, int] = field(default_factory=dict)  # period -> share it surrenders
    index: int = 0
    _allocation: dict[int, int] = field(default_factory=dict, repr=False)

    @property
    def output_unit(self) -> str:
        return "MWh" if self.sector == "power" else "t"

    def allocation(self, year: int) -> int:
        """The free allocation the rules give after true-up (what the firm expects)."""
        if year not in self._allocation:
            self._allocation[year] = self._compute_allocation(year)
        return self._allocation[year]

    def _compute_allocation(self, year: int) -> int:
        """The benchmark allocation and, for power, the exemptions the ledger issues with it (a gas unit up to
        its verified emissions, the firm up to 80% of them: ledger.formulas, the plan of the year)."""
        if self.sector != "power":
            return _floor(rules.new_sector_share(year) * self.emissions[year] * D(1))
        factor = D(1)
        for v in self.factors.get(year, {}).values():
            factor *= D(v)
        allocated = _floor(self.output[year] * rules.benchmarks_for(year).electricity[self.unit_type] * factor)
        verified = self.emissions.get(year)
        plan = rules.shipped_plan("power", year)
        if verified is None or plan is None:
            return allocated
        if self.unit_type == "gas" and plan.get("gas_unit_exemption"):
            allocated = max(allocated, verified)
        if plan.get("gap_cap_share") is not None:
            allocated = max(allocated, formulas.gap_cap_target(plan, verified))
        return allocated

    def obligation(self, period: PeriodPlan) -> int:
        """All of the period's verified emissions (ledger.formulas.obligation, as the ledger computes it)."""
        return formulas.obligation(sum(self.emissions[y] for y in period.years if y in self.emissions)) or 0

    def intends(self, period: PeriodPlan, obligation: int) -> int:
        """What the firm means to surrender: all it owes, or part of it for the few that fall short."""
        permille = self.shortfall_permille.get(period.label)
        return obligation if permille is None else obligation * permille // 1000


def _stratified(rnd: random.Random, keys: list[float]) -> list[float]:
    """Normal scores by rank of `keys`: a well-spread sample even for a handful of firms."""
    nd = NormalDist()
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    z = [0.0] * len(keys)
    for rank, i in enumerate(order):
        z[i] = nd.inv_cdf((rank + 0.5) / len(keys))
    return z


def make_firms(rnd: random.Random, scale: float, volumes: dict[int, int]) -> list[Firm]:
    """Power firms (2,162 in the first cycle, entrants from 2021) and the 2024 new sectors."""
    n_first = max(POWER_FIRMS_MIN, round(POWER_FIRMS_FIRST_CYCLE * scale))
    n_entrants = max(1, round(POWER_ENTRANTS_2021 * scale))
    types, shares = list(UNIT_MIX), [v[0] for v in UNIT_MIX.values()]
    firms: list[Firm] = []
    for i in range(n_first + n_entrants):
        ut = types[0] if i == 0 else rnd.choices(types, weights=shares)[0]  # the first: a large coal unit
        group, region = rnd.choice(GROUPS), rnd.choice(REGIONS)
        f = Firm(
            f"P{i + 1:05d}",
            f"{group} {region} Power {i + 1}",
            "power",
            region,
            ut,
            2019 if i < n_first else 2021,
            index=len(firms),
        )
        _, median, sigma = UNIT_MIX[ut]
        out = median * rnd.lognormvariate(0, sigma)
        air_cooled = ut != "gas" and rnd.random() < AIR_COOLED_SHARE
        for y in range(2018, 2025):
            if y > 2018:
                ratio = (1 + OUTPUT_GROWTH[y]) * rnd.lognormvariate(0, 0.04)
                if rnd.random() < OUTPUT_DROP_CHANCE:
                    ratio = rnd.uniform(0.45, 0.62)  # a unit mothballed for most of the year
                out *= min(1.25, max(0.8, ratio)) if ratio > 0.7 else ratio
            if y >= (2018 if f.first_year == 2019 else f.first_year):  # 2018: the first cycle's base year
                f.output[y] = max(1000, int(out))
            factors: dict[str, str] = {}
            if air_cooled:
                factors["cooling"] = "1.05"
            if ut != "gas" and rnd.random() < LOW_LOAD_SHARE:
                factors["load"] = f"{rnd.uniform(1.005, 1.05):.3f}"
            if y >= f.first_year and factors:
                f.factors[y] = factors
        firms.append(f)
    _power_emissions(rnd, firms, scale, volumes)
    first_cycle = PERIODS[0]
    for f in firms:
        if f.first_year == 2019 and f.unit_type != "gas" and rnd.random() < CCER_USER_SHARE:
            verified = sum(f.emissions[y] for y in first_cycle.years)
            f.ccer = (rnd.randint(2013, 2017), verified * rnd.randint(25, 49) // 1000)
    for sector, count in NEW_SECTOR_FIRMS.items():
        n = max(1, round(count * scale))
        sizes = [rnd.lognormvariate(0, 0.9) for _ in range(n)]
        total = sum(sizes)
        letter = sector[0].upper()
        for i, s in enumerate(sizes):
            region = rnd.choice(REGIONS)
            f = Firm(
                f"{letter}{i + 1:04d}",
                f"{region} {sector.title()} {i + 1}",
                sector,
                region,
                None,
                2024,
                index=len(firms),
            )
            tonnes = max(1000, int(NEW_SECTOR_EMISSIONS_T[sector] * scale * s / total))
            f.emissions[2024] = tonnes
            f.output[2024] = max(1, int(tonnes / NEW_SECTOR_INTENSITY[sector] * rnd.uniform(0.95, 1.05)))
            firms.append(f)
    _pick_shortfalls(rnd, firms)
    return firms


def _power_emissions(rnd: random.Random, firms: list[Firm], scale: float, volumes: dict[int, int]) -> None:
    """Emissions = output x benchmark x factors x (1 + the firm's deviation in the period).

    Outputs are first scaled so that, at the benchmark, each year's power emissions total about
    5 Gt x scale. A period's mean deviation is then set so that the short firms' total gap is the
    period's `gap_share` of the volume traded before its deadline; the market as a whole stays long.
    """
    at_benchmark: dict[tuple[str, int], float] = {}
    for y, total in POWER_EMISSIONS_T.items():
        raw = {
            f.fid: f.output[y] * float(rules.benchmarks_for(y).electricity[f.unit_type]) * _factor(f, y)
            for f in firms
            if y in f.output
        }
        k = total * scale / sum(raw.values())
        for f in firms:
            if y in f.output:
                f.output[y] = max(1000, int(f.output[y] * k))
                at_benchmark[(f.fid, y)] = raw[f.fid] * k
    persistent = [rnd.gauss(0, 1) for _ in firms]
    for period in PERIODS:
        members = [f for f in firms if f.first_year <= period.last]
        z = _stratified(rnd, [0.75 * persistent[f.index] + 0.66 * rnd.gauss(0, 1) for f in members])
        base = [sum(at_benchmark.get((f.fid, y), 0.0) for y in period.years) for f in members]
        gas = [f.unit_type == "gas" for f in members]
        volume = sum(v for y, v in volumes.items() if period.buy_from.year <= y <= period.deadline.year)
        target_gap = period.gap_share * volume
        lo, hi = -0.2, 0.2
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _gap(mid, base, z, gas) < target_gap else (lo, mid)
        years = range(2018 if period.first == 2019 else period.first, period.last + 1)
        for f, zf in zip(members, z, strict=True):
            for y in years:
                if (f.fid, y) in at_benchmark:
                    f.emissions[y] = int(at_benchmark[(f.fid, y)] * (1 + hi + INTENSITY_SPREAD * zf))


def _gap(mu: float, base: list[float], z: list[float], gas: list[bool]) -> float:
    """Short firms' total gap (t) when the period's mean deviation is `mu` (gas owes no more than it gets)."""
    cap = float(rules.GAP_CAP_SHARE)
    return sum(
        b * min(mu + INTENSITY_SPREAD * zf, cap)
        for b, zf, g in zip(base, z, gas, strict=True)
        if not g and mu + INTENSITY_SPREAD * zf > 0
    )


def _factor(f: Firm, year: int) -> float:
    out = 1.0
    for v in f.factors.get(year, {}).values():
        out *= float(v)
    return out


def _pick_shortfalls(rnd: random.Random, firms: list[Firm]) -> None:
    """The few firms per period that surrender less than they owe (status B, penalised at close).

    They are among the smaller short firms and fall 1-20% short: compliance was about 99.5%
    by quantity in the first cycles.
    """
    for period in PERIODS:
        power = [f for f in firms if f.sector == "power" and f.first_year <= period.last]
        short = sorted(
            (f for f in power if f.obligation(period) > sum(f.allocation(y) for y in period.years)),
            key=lambda f: (f.obligation(period), f.fid),
        )
        smaller = short[: max(1, len(short) // 2)]
        for f in rnd.sample(smaller, min(len(smaller), max(1, round(DEFAULTER_SHARE["power"] * len(power))))):
            f.shortfall_permille[period.label] = rnd.randint(800, 990)
        if period.label == "2024":
            new = [f for f in firms if f.sector != "power"]
            for f in rnd.sample(new, min(len(new), max(1, round(DEFAULTER_SHARE["new"] * len(new))))):
                f.shortfall_permille[period.label] = rnd.randint(850, 990)


# ---- running commands through the registry --------------------------------------------------------
REGULATOR, EXCHANGE, VERIFIER = "MEE", "SEEE", "MRV"


def _desk(fid: str) -> str:
    return f"desk-{fid}"


class Runner:
    """Sends commands to the registry in atomic batches, with the simulated clock set to their time."""

    def __init__(self, registry: Registry, progress: Progress | None, total_estimate: int) -> None:
        self.registry = registry
        self.progress = progress
        self.total = total_estimate
        self.now = _at(dt.date(2020, 1, 1), 0)
        self.commands = 0
        self.events = 0

    def clock(self) -> dt.datetime:
        return self.now

    def run(self, when: dt.datetime, cmds: list[Command]) -> list[Outcome]:
        assert when >= self.now, "the simulated clock only moves forwards"
        self.now = when
        outcomes: list[Outcome] = []
        for i in range(0, len(cmds), BATCH_SIZE):
            chunk = cmds[i : i + BATCH_SIZE]
            for c in chunk:
                self.commands += 1
                c.command_id = f"sim-{self.commands:08d}"
            results = self.registry.execute_batch(chunk, on_refusal="stop")
            for c, r in zip(chunk, results, strict=False):
                if isinstance(r, LedgerError):
                    raise Refused(
                        f"simulate: {c.name} {c.command_id} on {when:%Y-%m-%d} was refused: {r}"
                        f" (args {c.args})",
                        code=r.code,
                    )
                outcomes.append(r)
                self.events += r.position - r.first_position + 1
            if self.progress is not None:
                self.total = max(self.total, self.commands)
                self.progress(self.commands, self.total)
        return outcomes


def _cmd(command: str, actor: str, **args: Any) -> Command:
    return Command(command, {k: v for k, v in args.items() if v is not None}, actor=actor)


# ---- the trading desk: who sells, who buys ---------------------------------------------------------
@dataclass
class YearTally:
    """What traded in a calendar year."""

    quantity_t: int = 0
    value_yuan: Decimal = field(default_factory=Decimal)
    trades: int = 0
    block_t: int = 0


class Desk:
    """Plays the power firms on the exchange: short firms buy what they lack, long firms sell surplus.

    A firm's position is worked out from the registry's state: what it holds by vintage, the
    allocation still to come, what it still owes for each period it trades for (its next
    deadlines), and deductions pending. Obligations are covered with the newest eligible units
    first; what is left of the older ones, which every later period accepts, is its free surplus.
    Between refreshes the desk keeps the positions up to date trade by trade.
    """

    def __init__(self, rnd: random.Random, firms: list[Firm], plan: MarketPlan) -> None:
        self.rnd = rnd
        self.firms = firms  # power firms
        self.slot = {f.fid: i for i, f in enumerate(firms)}
        self.plan = plan
        self.active: list[int] = []  # registered firms (indexes into self.firms)
        self.free: list[dict[int, int]] = [{} for _ in firms]
        self.need = [0] * len(firms)
        self.size = [float(sum(f.emissions.values()) or 1) for f in firms]  # banking appetite grows with size
        self.periods: tuple[PeriodPlan, ...] = ()
        self.dirty = True
        self.carry: list[Order] = []
        self.close: Decimal | None = None
        self.closes: dict[dt.date, Decimal] = {}
        self.years: dict[int, YearTally] = {}
        self.carried_t = 0
        self.needy: tuple[list[int], list[float]] = ([], [])
        self.needy_w: dict[int, float] = {}
        self.bankers: tuple[list[int], list[float]] = ([], [])
        volume = 0
        self.cum_volume: dict[dt.date, int] = {}
        for d in plan.days:
            volume += sum(o.quantity for o in plan.orders[d])
            self.cum_volume[d] = volume

    def activate(self, firms: Sequence[Firm]) -> None:
        self.active.extend(self.slot[f.fid] for f in firms if f.fid in self.slot)
        self.dirty = True

    def plan_volume(self, day: dt.date) -> int:
        return sum(o.quantity for o in self.plan.orders[day])

    def still_buying(self, f: Firm) -> bool:
        return f.fid in self.slot and self.need[self.slot[f.fid]] > 0

    # positions --------------------------------------------------------------------------------------
    def refresh(
        self, registry: Registry, periods: tuple[PeriodPlan, ...], firms: Sequence[Firm] | None = None
    ) -> None:
        """Work out positions afresh from the registry's state: of all active firms, or of `firms`."""
        st = registry.state
        tradable = min((p.last for p in periods), default=0)
        slots = self.active if firms is None else [self.slot[f.fid] for f in firms if f.fid in self.slot]
        for i in slots:
            self.need[i], self.free[i] = self.position(st, self.firms[i], periods, tradable)
        if firms is None:
            self.periods = periods
            self.dirty = False

    @staticmethod
    def position(
        st: LedgerState, f: Firm, periods: tuple[PeriodPlan, ...], tradable: int
    ) -> tuple[int, dict[int, int]]:
        """(what the firm must still buy, its free units by tradable vintage) for the periods it trades for.

        CCER (first cycle only) count first, up to 5% of verified emissions.
        """
        held = {v: st.holding(f.fid, "CEA", v) for v in range(2019, 2025)}
        future: dict[int, int] = {}
        for p in periods:
            for y in p.years:
                if y >= f.first_year:
                    future[y] = f.allocation(y) - st.allocated_in(f.fid, y)
        pending = [st.deductions[f.fid]] if f.fid in st.deductions else []
        for p in periods:
            if p.label in f.shortfall_permille:  # its own shortfall will be deducted from the next allocation
                owed = f.obligation(p)
                pending.append((owed - f.intends(p, owed), p.last))
        for qty, since in pending:
            for y in sorted(future):
                if y > since and future[y] > 0 and qty > 0:
                    take = min(qty, future[y])
                    future[y] -= take
                    qty -= take
        for y, q in future.items():
            if q < 0:  # a true-up clawback to come: keep those units of that vintage
                held[y] = max(0, held[y] + q)
                future[y] = 0
        ccer = {f.ccer[0]: st.holding(f.fid, "CCER", f.ccer[0])} if f.ccer else {}
        need = 0
        for p in periods:
            period = st.period_of(p.first)
            owed = f.obligation(p)
            left = f.intends(p, owed) - (st.surrendered_in(f.fid, period) if period else 0)
            if ccer and left > 0 and p is PERIODS[0]:
                limit = _floor(rules.CCER_LIMIT_SHARE * sum(f.emissions[y] for y in p.years))
                room = limit - (st.surrendered_in(f.fid, period, "CCER") if period else 0)
                for v, have in ccer.items():
                    use = max(0, min(have, room, left))
                    ccer[v] -= use
                    left -= use
            for pool in (future, held):
                for v in sorted(pool, reverse=True):
                    if v <= p.last and pool[v] > 0 and left > 0:
                        use = min(pool[v], left)
                        pool[v] -= use
                        left -= use
            need += max(0, left)
        return need, {v: q for v, q in held.items() if v <= tradable and q > 0}

    # a trading day ---------------------------------------------------------------------------------
    def trade(self, day: dt.date, window: tuple[dt.date, dt.date]) -> list[Command]:
        """The day's trades: the planned orders (and any carried over), matched to sellers and buyers."""
        orders = self.carry + self.plan.orders[day]
        self.carry = []
        active = self.active
        sell_w = [float(sum(self.free[i].values())) for i in active]
        sell_total = sum(sell_w)
        pos = {i: k for k, i in enumerate(active)}
        sold: set[int] = set()
        self._pools()
        need_total = sum(self.need[i] for i in active)
        days = self.plan.days
        first = days[bisect.bisect_left(days, window[0])]
        last = days[bisect.bisect_right(days, window[1]) - 1]
        left_in_window = self.cum_volume[last] - self.cum_volume[day] + sum(o.quantity for o in orders)
        reserve = (1 - NEED_DONE_SHARE) * (
            self.cum_volume[last] - self.cum_volume[first] + self.plan_volume(first)
        )
        cmds: list[Command] = []
        tally = self.years.setdefault(day.year, YearTally())
        day_qty, day_value = 0, D(0)
        for order in orders:
            left = order.quantity
            while left > 0:
                s = self._seller(active, sell_w, sell_total, min(left, rules.BLOCK_MIN_QUANTITY_T))
                b = None if s is None else self._buyer(s, need_total, left_in_window - reserve, sold)
                if s is None or b is None:
                    self.carry.append(Order(left, order.price))
                    self.carried_t += left
                    break
                free = self.free[s]
                vintage = next(
                    (v for v in sorted(free) if free[v] >= left), max(free, key=lambda v: (free[v], -v))
                )
                q = min(left, free[vintage])
                if self.need[b] > 0:
                    q = min(
                        q, self.need[b]
                    )  # a short firm buys what it lacks; the rest goes to the next buyer
                mode = "block" if q >= rules.BLOCK_MIN_QUANTITY_T else "listed"
                p = self._in_band(order.price, mode)
                cmds.append(
                    _cmd(
                        "trade",
                        EXCHANGE,
                        buyer=self.firms[b].fid,
                        seller=self.firms[s].fid,
                        unit="CEA",
                        vintage=vintage,
                        quantity=q,
                        price=str(p),
                        mode=mode,
                        date=day.isoformat(),
                    )
                )
                free[vintage] -= q
                if not free[vintage]:
                    del free[vintage]
                sell_w[pos[s]] -= q
                sell_total -= q
                sold.add(s)
                cover = min(self.need[b], q)
                self.need[b] -= cover
                need_total -= cover
                if q > cover:
                    self.free[b][vintage] = self.free[b].get(vintage, 0) + q - cover
                sell_total -= sell_w[pos[b]]
                sell_w[pos[b]] = 0.0  # T+1: what it bought today it cannot sell today
                left -= q
                left_in_window -= q
                day_qty += q
                day_value += p * q
                tally.quantity_t += q
                tally.value_yuan += p * q
                tally.trades += 1
                tally.block_t += q if mode == "block" else 0
        if day_qty:
            self.close = money(day_value / day_qty)
            self.closes[day] = self.close
        return cmds

    def _seller(self, active: list[int], sell_w: list[float], sell_total: float, lot: int) -> int | None:
        """A firm with free units, weighted by them; a few draws to find one that fills `lot` in one vintage."""
        if sell_total <= 0.5:
            return None
        pick = None
        for _ in range(8):
            pick = active[self.rnd.choices(range(len(active)), weights=sell_w)[0]]
            if max(self.free[pick].values()) >= lot:
                break
        return pick

    def _buyer(self, seller: int, need_total: int, left_to_plan: float, sold: set) -> int | None:
        """A short firm (weighted by what it lacks), paced to be done before the deadline; else a banking firm."""
        rnd = self.rnd
        if need_total > 0 and (left_to_plan <= need_total or rnd.random() < need_total / left_to_plan):
            # weighted by the gap (drawn on the day's opening gaps, accepted in proportion to what is left)
            pick = self._sample(self.needy, lambda i: self.need[i] / self.needy_w[i], seller, sold)
            if pick is not None:
                return pick
        return self._sample(self.bankers, lambda i: 1.0, seller, sold)

    def _sample(
        self, pool: tuple[list[int], list[float]], accept: Callable[[int], float], seller: int, sold: set
    ) -> int | None:
        """Draw from the day's cumulative weights, rejecting what no longer fits (exact for shrinking weights)."""
        idx, cum = pool
        if not idx:
            return None
        rnd = self.rnd
        for _ in range(64):
            i = idx[min(bisect.bisect_right(cum, rnd.random() * cum[-1]), len(idx) - 1)]
            if i != seller and i not in sold and rnd.random() < accept(i):
                return i
        fits = [i for i in idx if i != seller and i not in sold and accept(i) > 0]
        return rnd.choice(fits) if fits else None

    def _pools(self) -> None:
        """The day's buyers: short firms weighted by their gap, and all firms weighted by size."""
        needy = [i for i in self.active if self.need[i] > 0]
        self.needy_w = {i: float(self.need[i]) for i in needy}
        self.needy = (needy, list(itertools.accumulate(self.needy_w[i] for i in needy)))
        self.bankers = (list(self.active), list(itertools.accumulate(self.size[i] for i in self.active)))

    def _in_band(self, price: Decimal, mode: str) -> Decimal:
        """The planned price, kept inside the rule's band around the previous close (in case of carry-over)."""
        if self.close is None:
            return price
        band = rules.PRICE_BAND[mode]
        lo, hi = money(self.close * (1 - band)), money(self.close * (1 + band))
        return min(max(price, lo), hi)


# ---- the scenario: China's national ETS, 2019-2024 ----------------------------------------------------
ADMIN_HOUR, TRADE_HOUR, SURRENDER_HOUR, CLOSE_HOUR = 2, 7, 8, 1  # UTC: 10:00, 15:00, 16:00, 09:00 Beijing
EARLY_SURRENDER_DAYS = 40  # firms that need nothing surrender within the last 40 trading days
LAST_SURRENDER_WINDOW = (dt.date(2025, 10, 8), dt.date(2025, 12, 31))  # the 2024 period: no trading in 2025


class ChinaScenario:
    """The timeline: registration, periods, MRV, allocation, trading, surrender, close."""

    def __init__(
        self, registry: Registry, rnd: random.Random, scale: float, enforce: bool, progress: Progress | None
    ) -> None:
        self.registry = registry
        self.rnd = rnd
        self.enforce = enforce
        self.plan = MarketPlan(rnd, scale)
        volumes = {y: round(f.volume_t * scale) for y, f in YEARS.items()}
        self.firms = make_firms(rnd, scale, volumes)
        self.power = [f for f in self.firms if f.sector == "power"]
        self.first_cycle = [f for f in self.power if f.first_year == 2019]
        self.entrants = [f for f in self.power if f.first_year == 2021]
        self.new_sectors = [f for f in self.firms if f.sector != "power"]
        self.desk = Desk(rnd, self.power, self.plan)
        n_orders = sum(len(v) for v in self.plan.orders.values())
        per_firm = {"power": 28, "new": 4}  # commands: register, verify, allocate and surrender, by year
        estimate = per_firm["power"] * len(self.power) + per_firm["new"] * len(self.new_sectors)
        estimate += len(self.firms) * enforce + int(n_orders * 1.06)
        self.runner = Runner(registry, progress, estimate)
        self.penalties: dict[str, dict[str, Any]] = {}
        self.unplanned_short: dict[str, list[str]] = {}
        self.now = self.runner.now

    # the agenda ------------------------------------------------------------------------------------
    def run(self) -> None:
        agenda: list[tuple[dt.datetime, int, Callable[[], None]]] = []

        def at(day: str | dt.date, hour: int, step: Callable[[], None]) -> None:
            d = dt.date.fromisoformat(day) if isinstance(day, str) else day
            agenda.append((_at(d, hour), len(agenda), step))

        p1, p2, p3, p4 = PERIODS
        at("2020-12-30", ADMIN_HOUR, lambda: self.register(self.first_cycle, first=True))
        at("2021-01-05", ADMIN_HOUR, lambda: self.open_period(p1))
        at("2021-03-31", ADMIN_HOUR, lambda: self.verify(self.first_cycle, (2018, 2019)))
        at("2021-04-15", ADMIN_HOUR, lambda: self.allocate(self.first_cycle, (2019, 2020), "pre"))
        at("2021-06-30", ADMIN_HOUR, lambda: self.verify(self.first_cycle, (2020,)))
        at("2021-07-09", ADMIN_HOUR, lambda: self.allocate(self.first_cycle, (2019, 2020), "true-up"))
        at("2021-10-15", ADMIN_HOUR, self.issue_ccer)
        at("2022-01-04", CLOSE_HOUR, lambda: self.close(p1))
        at("2022-06-30", ADMIN_HOUR, lambda: self.verify(self.first_cycle, (2021,)))
        at(
            "2022-12-01",
            ADMIN_HOUR,
            lambda: (self.register(self.entrants), self.verify(self.entrants, (2021,))),
        )
        at(
            "2023-02-15",
            ADMIN_HOUR,
            lambda: (
                self.open_period(p2),
                self.allocate(self.first_cycle, (2021,), "pre"),
                self.allocate(self.power, (2022,), "pre"),
            ),
        )
        at("2023-05-31", ADMIN_HOUR, lambda: self.verify(self.power, (2022,)))
        at("2023-08-15", ADMIN_HOUR, lambda: self.allocate(self.power, (2021, 2022), "true-up"))
        at("2024-01-03", CLOSE_HOUR, lambda: self.close(p2))
        at("2024-05-31", ADMIN_HOUR, lambda: self.verify(self.power, (2023,)))
        at(
            "2024-10-15",
            ADMIN_HOUR,
            lambda: (self.open_period(p3), self.open_period(p4), self.allocate(self.power, (2023,), "pre")),
        )
        at(
            "2024-10-25",
            ADMIN_HOUR,
            lambda: (
                self.allocate(self.power, (2023,), "true-up"),
                self.allocate(self.power, (2024,), "pre"),
            ),
        )
        at("2025-01-03", CLOSE_HOUR, lambda: self.close(p3))
        at("2025-03-26", ADMIN_HOUR, lambda: self.register(self.new_sectors))
        at("2025-04-30", ADMIN_HOUR, lambda: self.verify(self.power, (2024,)))
        at("2025-06-30", ADMIN_HOUR, lambda: self.verify(self.new_sectors, (2024,)))
        at("2025-08-29", ADMIN_HOUR, lambda: self.allocate(self.power + self.new_sectors, (2024,), "true-up"))
        at("2026-01-05", CLOSE_HOUR, lambda: self.close(p4))
        for day in self.plan.days:
            at(day, TRADE_HOUR, lambda day=day: self.trade(day))
        for day, period, firms, final in self._surrender_dates():
            at(day, SURRENDER_HOUR, lambda p=period, fs=firms, last=final: self.surrender(p, fs, last))
        for when, _, step in sorted(agenda, key=lambda e: (e[0], e[1])):
            self.now = when
            step()

    def _surrender_dates(self) -> list[tuple[dt.date, PeriodPlan, list[Firm], bool]]:
        """(day, period, firms, final): each firm's day to surrender; on the final day everyone left does."""
        out = []
        for p in PERIODS:
            members = self.power if p.first > 2020 else self.first_cycle
            if p.label == "2024":
                members = members + self.new_sectors
                days = trading_days(*LAST_SURRENDER_WINDOW)  # business days (no trading then)
            else:
                days = [d for d in self.plan.days if d <= p.deadline][-EARLY_SURRENDER_DAYS:]
            by_day: dict[dt.date, list[Firm]] = {}
            for f in members:
                by_day.setdefault(self.rnd.choice(days[:-1]), []).append(f)
            out += [(d, p, firms, False) for d, firms in sorted(by_day.items())]
            out.append((days[-1], p, members, True))
        return out

    # steps -----------------------------------------------------------------------------------------
    def _run(self, cmds: list[Command]) -> list[Outcome]:
        return self.runner.run(self.now, cmds)

    def register(self, firms: list[Firm], first: bool = False) -> None:
        cmds = []
        if first and self.enforce:
            cmds += [
                _cmd("init", REGULATOR, regulator=REGULATOR),
                _cmd("actor add", REGULATOR, actor_id=EXCHANGE, role="exchange"),
                _cmd("actor add", REGULATOR, actor_id=VERIFIER, role="verifier"),
            ]
        for f in firms:
            cmds.append(
                _cmd(
                    "firm register",
                    REGULATOR,
                    firm_id=f.fid,
                    name=f.name,
                    sector=f.sector,
                    region=f.region,
                    unit_type=f.unit_type,
                )
            )
            if self.enforce:
                cmds.append(_cmd("actor add", REGULATOR, actor_id=_desk(f.fid), role="firm", firm=f.fid))
        self._run(cmds)
        self.desk.activate(firms)

    def open_period(self, p: PeriodPlan) -> None:
        self._run([_cmd("year open", REGULATOR, year=p.label, deadline=p.deadline.isoformat())])
        self.desk.dirty = True

    def verify(self, firms: list[Firm], years: Sequence[int]) -> None:
        self._run(
            [
                _cmd(
                    "emissions verify",
                    VERIFIER,
                    firm_id=f.fid,
                    year=y,
                    tonnes=f.emissions[y],
                    output=f.output[y],
                    output_unit=f.output_unit,
                )
                for y in years
                for f in firms
            ]
        )

    def allocate(self, firms: list[Firm], years: Sequence[int], step: str) -> None:
        cmds = []
        for y in years:
            for f in firms:
                if step == "pre" and (y - 1 not in f.output or y < f.first_year):
                    continue  # no base year: an entrant's first year is allocated at true-up only
                cmds.append(
                    _cmd(
                        "allocate",
                        REGULATOR,
                        firm_id=f.fid,
                        year=y,
                        step=step,
                        factors=f.factors.get(y) if step == "true-up" else None,
                    )
                )
        self._run(cmds)
        self.desk.dirty = True

    def issue_ccer(self) -> None:
        self._run(
            [
                _cmd(
                    "issue",
                    REGULATOR,
                    account_id=f.fid,
                    unit="CCER",
                    vintage=f.ccer[0],
                    quantity=f.ccer[1],
                    basis="offset",
                )
                for f in self.first_cycle
                if f.ccer and f.ccer[1] > 0
            ]
        )
        self.desk.dirty = True

    def trade(self, day: dt.date) -> None:
        periods = tuple(p for p in PERIODS if p.buy_from <= day <= p.deadline)
        if self.desk.dirty or periods != self.desk.periods:
            self.desk.refresh(self.registry, periods)
        window = (min(p.buy_from for p in periods), min(min(p.deadline for p in periods), TRADING_END))
        cmds = self.desk.trade(day, window)
        if cmds:
            self._run(cmds)

    def surrender(self, p: PeriodPlan, firms: list[Firm], final: bool) -> None:
        """Each firm surrenders what it means to (all it owes, or less): CCER first, then CEA, newest first."""
        st = self.registry.state
        period = st.period_of(p.first)
        cmds = []
        for f in firms:
            if not final and self.desk.still_buying(f):
                continue  # it surrenders on the final day
            owed = st.obligation(f.fid, period)
            if owed is None:
                continue
            left = f.intends(p, owed) - st.surrendered_in(f.fid, period)
            pools: list[tuple[str, int, int]] = []
            if f.ccer and p is PERIODS[0]:
                room = _floor(rules.CCER_LIMIT_SHARE * st.verified_in(f.fid, period))
                room -= st.surrendered_in(f.fid, period, "CCER")
                pools.append(("CCER", f.ccer[0], min(room, st.holding(f.fid, "CCER", f.ccer[0]))))
            pools += [("CEA", v, st.holding(f.fid, "CEA", v)) for v in range(p.last, 2018, -1)]
            for unit, vintage, avail in pools:
                q = min(avail, left)
                if q > 0:
                    cmds.append(
                        _cmd(
                            "surrender",
                            _desk(f.fid),
                            firm_id=f.fid,
                            year=p.first,
                            unit=unit,
                            vintage=vintage,
                            quantity=q,
                        )
                    )
                    left -= q
            if left > 0 and final and p.label not in f.shortfall_permille:
                self.unplanned_short.setdefault(p.label, []).append(f.fid)
        if cmds:
            self._run(cmds)
            if self.desk.periods:
                # surrender takes the newest vintages, which may not be the ones the desk held back
                self.desk.refresh(self.registry, self.desk.periods, firms)

    def close(self, p: PeriodPlan) -> None:
        (outcome,) = self._run([_cmd("year close", REGULATOR, year=p.first)])
        fines = D(outcome.result.get("fines", "0"))
        self.penalties[p.label] = {
            "penalties": outcome.result.get("penalties", 0),
            "fines_yuan": str(fines),
            "planned_short": sum(1 for f in self.firms if p.label in f.shortfall_permille),
        }
        self.desk.dirty = True


# ---- the public API ---------------------------------------------------------------------------------
def simulate(
    registry: Registry,
    scenario: str = "china-2021-2024",
    scale: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
    enforce: bool = False,
) -> dict[str, Any]:
    """Generate the scenario from `seed` and run it through `registry`; return a summary of the run.

    The store must be empty. `scale` multiplies firm counts and traded volumes (1.0: about
    3,750 firms and 630 Mt traded). `progress(done, total)` is called after each batch with
    commands run and an estimate of the total. With `enforce`, the store is initialised with
    roles (regulator MEE, exchange SEEE, verifier MRV, one desk per firm) and every command is
    run by the actor entitled to it; without, commands still name those actors.
    """
    if scenario not in SCENARIOS:
        raise BadInput(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise BadInput(f"scale {scale} must be from {MIN_SCALE} to {MAX_SCALE}")
    if registry.head()[0] != 0:
        raise Refused(
            "simulate builds a market from nothing; this store already holds events", code="store_not_empty"
        )
    started = time.perf_counter()
    saved_clock = registry.clock
    sim = ChinaScenario(registry, random.Random(seed), scale, enforce, progress)
    registry.clock = sim.runner.clock
    try:
        sim.run()
    finally:
        registry.clock = saved_clock
    seconds = time.perf_counter() - started
    return _summary(sim, scenario, scale, seed, seconds)


def demo(registry: Registry, progress: Progress | None = None, enforce: bool = False) -> dict[str, Any]:
    """The small version of the scenario: about 40 firms, 6.3 Mt traded, a few seconds."""
    return simulate(registry, "china-2021-2024", scale=DEMO_SCALE, seed=0, progress=progress, enforce=enforce)


def _summary(sim: ChinaScenario, scenario: str, scale: float, seed: int, seconds: float) -> dict[str, Any]:
    desk, runner = sim.desk, sim.runner
    position, head_hash = sim.registry.head()
    years = {}
    for y, t in sorted(desk.years.items()):
        fig = YEARS[y]
        years[str(y)] = {
            "volume_t": t.quantity_t,
            "value_yuan": str(money(t.value_yuan)),
            "trades": t.trades,
            "average_price": str(money(t.value_yuan / t.quantity_t)) if t.quantity_t else None,
            "block_share": round(t.block_t / t.quantity_t, 3) if t.quantity_t else None,
            "volume_vs_target": round(t.quantity_t / (fig.volume_t * scale), 5),
            "value_vs_target": round(float(t.value_yuan / (fig.value_yuan * D(str(scale)))), 5),
        }
    closes = desk.closes
    peak_day = max(closes, key=lambda d: (closes[d], d)) if closes else None
    return {
        "scenario": scenario,
        "scale": scale,
        "seed": seed,
        "events": runner.events,
        "commands": runner.commands,
        "seconds": round(seconds, 2),
        "events_per_s": round(runner.events / seconds) if seconds else None,
        "position": position,
        "head_hash": head_hash,
        "regulator": REGULATOR if sim.enforce else None,  # the actor to read an enforced store as
        "firms": {s: sum(1 for f in sim.firms if f.sector == s) for s in ("power", *NEW_SECTOR_FIRMS)},
        "trades": sum(t.trades for t in desk.years.values()),
        "trading_days": len(closes),
        "volume_t": sum(t.quantity_t for t in desk.years.values()),
        "value_yuan": str(money(sum((t.value_yuan for t in desk.years.values()), D(0)))),
        "years": years,
        "prices": {
            "open": str(sim.plan.orders[TRADING_START][0].price),
            "closes": {d.isoformat(): str(closes.get(d)) for d in ANCHOR_CLOSES},
            "peak": {"date": peak_day.isoformat(), "close": str(closes[peak_day])} if peak_day else None,
        },
        "emissions_t": {
            "power": {
                str(y): sum(f.emissions.get(y, 0) for f in sim.power if y >= f.first_year)
                for y in range(2019, 2025)
            },
            "new_sectors_2024": sum(f.emissions[2024] for f in sim.new_sectors),
        },
        "compliance": sim.penalties,
        "unplanned_short": {k: len(v) for k, v in sim.unplanned_short.items()},
        "carried_t": desk.carried_t,
    }
