"""China's national ETS, 2019-2024, as one scenario: registration, periods, verification, allocation, CCER,
trading, surrender and close, each through the registry's commands; `simulate` and `demo`."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from commands.simulate.desks import Desk
from commands.simulate.figures import (
    ANCHOR_CLOSES,
    DEMO_SCALE,
    MAX_SCALE,
    MIN_SCALE,
    NEW_SECTOR_FIRMS,
    PERIODS,
    SCENARIO_END,
    SCENARIO_PERIODS,
    SCENARIO_YEARS,
    SCENARIOS,
    TRADING_START,
    YEARS,
    D,
    PeriodPlan,
    Progress,
    _at,
    trading_days,
)
from commands.simulate.firms import EXCHANGE, REGULATOR, VERIFIER, Firm, Runner, _cmd, _desk, make_firms
from commands.simulate.market import MarketPlan
from ledger import rules
from ledger.decisions import carryover
from ledger.decisions.base import floor_t
from ledger.errors import BadInput, Refused
from ledger.registry import Command, Outcome, Registry
from ledger.units import money

ADMIN_HOUR, TRADE_HOUR, SURRENDER_HOUR, CLOSE_HOUR = 2, 7, 8, 1  # UTC: 10:00, 15:00, 16:00, 09:00 Beijing
EARLY_SURRENDER_DAYS = 40  # firms that need nothing surrender within the last 40 trading days
LAST_SURRENDER_WINDOW = (dt.date(2025, 10, 8), dt.date(2025, 12, 31))  # china-2021-2024's 2024 period: no trading


class ChinaScenario:
    """The timeline: registration, periods, MRV, allocation, trading, surrender, close."""

    def __init__(
        self,
        registry: Registry,
        rnd: random.Random,
        scale: float,
        enforce: bool,
        progress: Progress | None,
        scenario: str = "china-2021-2024",
    ) -> None:
        self.registry = registry
        self.rnd = rnd
        self.enforce = enforce
        self.scenario = scenario
        self.periods = SCENARIO_PERIODS[scenario]
        years = SCENARIO_YEARS[scenario]
        self.trading_end = SCENARIO_END[scenario]
        self.plan = MarketPlan(rnd, scale, years, self.trading_end)
        volumes = {y: round(YEARS[y].volume_t * scale) for y in years}
        self.firms = make_firms(rnd, scale, volumes, self.periods)
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
        self.carried: dict[str, int] = {}  # firm -> t carried over into 2025
        self.now = self.runner.now

    # the agenda ------------------------------------------------------------------------------------
    def run(self) -> None:
        agenda: list[tuple[dt.datetime, int, Callable[[], None]]] = []

        def at(day: str | dt.date, hour: int, step: Callable[[], None]) -> None:
            d = dt.date.fromisoformat(day) if isinstance(day, str) else day
            agenda.append((_at(d, hour), len(agenda), step))

        p1, p2, p3, p4 = self.periods[:4]
        at("2020-12-30", ADMIN_HOUR, lambda: self.register(self.first_cycle, first=True))
        at("2021-01-05", ADMIN_HOUR, lambda: self.open_period(p1))
        at("2021-03-31", ADMIN_HOUR, lambda: self.verify(self.first_cycle, (2018, 2019)))
        at("2021-04-15", ADMIN_HOUR, lambda: self.allocate(self.first_cycle, (2019, 2020), "pre"))
        at("2021-06-30", ADMIN_HOUR, lambda: self.verify(self.first_cycle, (2020,)))
        at("2021-07-09", ADMIN_HOUR, lambda: self.allocate(self.first_cycle, (2019, 2020), "true-up"))
        at("2021-10-15", ADMIN_HOUR, self.issue_ccer)
        at("2022-01-04", CLOSE_HOUR, lambda: self.close(p1))
        at("2022-02-07", CLOSE_HOUR, lambda: self.enforce_period(p1))  # after the 30-day time limit to correct
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
        at("2024-02-05", CLOSE_HOUR, lambda: self.enforce_period(p2))
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
        at("2025-02-05", CLOSE_HOUR, lambda: self.enforce_period(p3))
        at("2025-03-26", ADMIN_HOUR, lambda: self.register(self.new_sectors))
        at("2025-04-30", ADMIN_HOUR, lambda: self.verify(self.power, (2024,)))
        at("2025-06-30", ADMIN_HOUR, lambda: self.verify(self.new_sectors, (2024,)))
        at("2025-08-29", ADMIN_HOUR, lambda: self.allocate(self.power + self.new_sectors, (2024,), "true-up"))
        at("2026-01-05", CLOSE_HOUR, lambda: self.close(p4))
        at("2026-02-06", CLOSE_HOUR, lambda: self.enforce_period(p4))
        if len(self.periods) > 4:  # china-2021-2025: the 2025 compliance year and the carry-over
            p5 = self.periods[4]
            at("2025-11-14", ADMIN_HOUR, lambda: (self.open_period(p5), self.allocate(self.power, (2025,), "pre")))
            at("2026-03-16", ADMIN_HOUR, lambda: self.carry_over(first_batch=True))  # processed by 27 Mar
            at("2026-04-30", ADMIN_HOUR, lambda: self.verify(self.power, (2025,)))
            at("2026-06-05", ADMIN_HOUR, lambda: self.carry_over(first_batch=False))  # by 10 Jun
            at("2026-06-30", ADMIN_HOUR, lambda: self.verify(self.new_sectors, (2025,)))
            at("2026-08-31", ADMIN_HOUR, lambda: self.allocate(self.power, (2025,), "true-up"))
        for day in self.plan.days:
            at(day, TRADE_HOUR, lambda day=day: self.trade(day))
        for day, period, firms, final in self._surrender_dates():
            at(day, SURRENDER_HOUR, lambda p=period, fs=firms, last=final: self.surrender(p, fs, last))
        for when, _, step in sorted(agenda, key=lambda e: (e[0], e[1])):
            self.now = when
            step()

    def _surrender_dates(self) -> list[tuple[dt.date, PeriodPlan, list[Firm], bool]]:
        """(day, period, firms, final): each firm's day to surrender; on the final day everyone left does.

        A period whose deadline is after the last trading day is surrendered on business days before it (the
        2024 period of china-2021-2024); one whose deadline is after the scenario's end is not surrendered."""
        out = []
        for p in self.periods:
            if p.deadline > LAST_SURRENDER_WINDOW[1]:
                continue  # china-2021-2025's 2025 year: surrendered by 31 Dec 2026, after the scenario
            members = self.power if p.first > 2020 else self.first_cycle
            if p.first >= 2024:
                members = members + self.new_sectors
            if p.deadline > self.plan.days[-1]:
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
            cmds += [
                _cmd("facility register", REGULATOR, facility_id=fac.facility_id, firm=f.fid, kind=fac.kind,
                     rated_mw=None if fac.rated_mw is None else str(fac.rated_mw))
                for fac in f.facilities
            ]
        self._run(cmds)
        self.desk.activate(firms)

    def open_period(self, p: PeriodPlan) -> None:
        self._run([_cmd("year open", REGULATOR, year=p.label, deadline=p.deadline.isoformat())])
        self.desk.dirty = True

    def verify(self, firms: list[Firm], years: Sequence[int]) -> None:
        """Each facility's verified emissions and activity data (the firm's are their sum)."""
        self._run(
            [
                _cmd("emissions verify", VERIFIER, firm_id=f.fid, year=y, facility=fac.facility_id, **fac.data[y])
                for y in years
                for f in firms
                for fac in f.facilities
                if y in fac.data
            ]
        )

    def allocate(self, firms: list[Firm], years: Sequence[int], step: str) -> None:
        """Pre-allocation or true-up by the registry's rules (the plan of the year, per facility)."""
        cmds = []
        for y in years:
            for f in firms:
                if step == "pre" and (not f.has_data(y - 1) or y < f.first_year):
                    continue  # no base year: an entrant's first year is allocated at true-up only
                cmds.append(_cmd("allocate", REGULATOR, firm_id=f.fid, year=y, step=step))
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
        periods = tuple(p for p in self.periods if p.buy_from <= day <= p.deadline)
        if self.desk.dirty or periods != self.desk.periods:
            self.desk.refresh(self.registry, periods)
        window = (min(p.buy_from for p in periods), min(min(p.deadline for p in periods), self.trading_end))
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
                room = floor_t(rules.CCER_LIMIT_SHARE * st.verified_in(f.fid, period))
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

    def carry_over(self, first_batch: bool) -> None:
        """Net sellers of 2024-2025 convert their 2019-2024 CEA into 2025 allowances, as much as their limit
        allows (T = B + NS x R, at most what they hold: the registry's `carry-over show`), oldest vintages first;
        half of them apply in the first batch, the rest in the second. Ineligible firms do not apply."""
        st = self.registry.state
        now = self.now.isoformat()
        cmds = []
        for f in self.firms:
            if (f.index % 2 == 0) != first_batch:
                continue
            s = carryover.standing(st, f.fid, now)
            if not s["eligible"] or s["net_sales"] <= 0:
                continue
            left = s["remaining"]
            for v in rules.CARRY_OVER_VINTAGES:
                q = min(left, st.available(f.fid, "CEA", v, now))
                if q > 0:
                    cmds.append(_cmd("carry-over apply", _desk(f.fid), firm_id=f.fid, vintage=v, quantity=q))
                    self.carried[f.fid] = self.carried.get(f.fid, 0) + q
                    left -= q
        if cmds:
            self._run(cmds)

    def close(self, p: PeriodPlan) -> None:
        (outcome,) = self._run([_cmd("year close", REGULATOR, year=p.first)])
        fines = D(outcome.result.get("fines", "0"))
        self.penalties[p.label] = {
            "penalties": outcome.result.get("penalties", 0),
            "fines_yuan": str(fines),
            "planned_short": sum(1 for f in self.firms if p.label in f.shortfall_permille),
        }
        self.desk.dirty = True

    def enforce_period(self, p: PeriodPlan) -> None:
        """The short firms never correct: after the time limit their shortfalls are ordered deducted."""
        self._run([_cmd("year enforce", REGULATOR, year=p.first)])
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
    sim = ChinaScenario(registry, random.Random(seed), scale, enforce, progress, scenario)
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
            "closes": {d.isoformat(): str(closes.get(d)) for d in ANCHOR_CLOSES if d <= sim.trading_end},
            "peak": {"date": peak_day.isoformat(), "close": str(closes[peak_day])} if peak_day else None,
        },
        "emissions_t": {
            "power": {
                str(y): sum(f.emissions.get(y, 0) for f in sim.power if y >= f.first_year)
                for y in range(2019, sim.periods[-1].last + 1)
            },
            "new_sectors_2024": sum(f.emissions[2024] for f in sim.new_sectors),
        },
        "carried_over": {"firms": len(sim.carried), "tonnes": sum(sim.carried.values())},
        "compliance": sim.penalties,
        "unplanned_short": {k: len(v) for k, v in sim.unplanned_short.items()},
        "carried_t": desk.carried_t,
    }
