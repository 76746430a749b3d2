"""The trading desks: each day's orders, matched between firms that need allowances and firms that have them,
within lot sizes, T+1 and the price bands."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from commands.simulate.figures import NEED_DONE_SHARE, PERIODS, D, PeriodPlan
from commands.simulate.firms import EXCHANGE, Firm, _cmd
from commands.simulate.market import MarketPlan, Order
from ledger import rules
from ledger.decisions.base import floor_t
from ledger.decisions.trading import price_limits
from ledger.model import LedgerState
from ledger.registry import Command, Registry
from ledger.units import money


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
        self.product_close: dict[int, Decimal] = {}  # CEA vintage -> its close (listed trades), the bands' basis
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
                limit = floor_t(rules.CCER_LIMIT_SHARE * sum(f.emissions[y] for y in p.years))
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
        listed: dict[int, tuple[int, Decimal]] = {}  # vintage -> the day's listed t and value
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
                vintage = self._vintage(free, left, order.price)
                q = min(left, free[vintage])
                if self.need[b] > 0:
                    q = min(
                        q, self.need[b]
                    )  # a short firm buys what it lacks; the rest goes to the next buyer
                mode = "block" if q >= rules.BLOCK_MIN_QUANTITY_T else "listed"
                p = self._in_band(order.price, mode, vintage)
                if mode == "listed":
                    lq, lv = listed.get(vintage, (0, D(0)))
                    listed[vintage] = (lq + q, lv + p * q)
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
        for vintage, (lq, lv) in listed.items():
            self.product_close[vintage] = money(lv / lq)
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

    def _vintage(self, free: dict[int, int], left: int, price: Decimal) -> int:
        """The vintage a seller sells: the oldest that fills the order, among those whose price band (around
        the product's own last close) admits the planned price; a vintage not traded for months may be far
        from the market, and a trade in it would be pushed to its band."""
        pool = sorted(free)
        fits = []
        for v in pool:
            mode = "block" if min(left, free[v]) >= rules.BLOCK_MIN_QUANTITY_T else "listed"
            if self._in_band(price, mode, v) == price:
                fits.append(v)
        pool = fits or pool
        return next((v for v in pool if free[v] >= left), max(pool, key=lambda v: (free[v], -v)))

    def _in_band(self, price: Decimal, mode: str, vintage: int) -> Decimal:
        """The planned price, kept inside the rule's band around the product's previous close (each vintage is
        its own product, closed by its listed trades)."""
        limits = price_limits(self.product_close.get(vintage), mode)
        if limits is None:
            return price
        return min(max(price, limits[0]), limits[1])


# ---- the scenario: China's national ETS, 2019-2024 ----------------------------------------------------
