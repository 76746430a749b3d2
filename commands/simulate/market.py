"""The market plan: how each year's published volume and value are spread over its trading days, and the daily
price path through the published anchors within the price bands."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
from dataclasses import dataclass
from decimal import Decimal

from commands.simulate.figures import (
    ANCHOR_CLOSES,
    BAND_MARGIN,
    BLOCK_DISCOUNT_MAX,
    BLOCK_EXTRA_MEDIAN_T,
    BLOCK_MAX_T,
    BLOCK_SIGMA,
    CENT,
    LISTED_MEDIAN_T,
    LISTED_SIGMA,
    LISTED_SPREAD,
    OPEN_PRICE,
    OPENING_DAY_SHARE,
    PATH_NOISE,
    PEAK_DATE,
    PEAK_PRICE,
    TRADING_END,
    TRADING_START,
    YEARS,
    D,
    YearFigures,
    _cents_down,
    _cents_up,
    _spread,
    trading_days,
)
from ledger import rules
from ledger.units import money


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

    def __init__(self, rnd: random.Random, scale: float, years: tuple[int, ...] = (2021, 2022, 2023, 2024),
                 end: dt.date = TRADING_END) -> None:
        self.days = trading_days(TRADING_START, end)
        self.orders: dict[dt.date, list[Order]] = {}
        close: Decimal | None = None
        for year in years:
            fig = YEARS[year]
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
