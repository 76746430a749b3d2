"""The firms: power firms with unit types and outputs, the new sectors of 2024, their emissions and who falls
short; the actors and the batch runner that plays them through the registry."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from commands.simulate.figures import (
    AIR_COOLED_SHARE,
    BATCH_SIZE,
    CCER_USER_SHARE,
    DEFAULTER_SHARE,
    GROUPS,
    INTENSITY_SPREAD,
    LOW_LOAD_SHARE,
    NEW_SECTOR_EMISSIONS_T,
    NEW_SECTOR_FIRMS,
    NEW_SECTOR_INTENSITY,
    OUTPUT_DROP_CHANCE,
    OUTPUT_GROWTH,
    PERIODS,
    POWER_EMISSIONS_T,
    POWER_ENTRANTS_2021,
    POWER_FIRMS_FIRST_CYCLE,
    POWER_FIRMS_MIN,
    REGIONS,
    UNIT_MIX,
    D,
    PeriodPlan,
    Progress,
    _at,
)
from ledger import formulas, rules
from ledger.decisions.base import floor_t
from ledger.errors import LedgerError, Refused
from ledger.registry import Command, Outcome, Registry


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
            return floor_t(rules.new_sector_share(year) * self.emissions[year] * D(1))
        factor = D(1)
        for v in self.factors.get(year, {}).values():
            factor *= D(v)
        allocated = floor_t(self.output[year] * rules.benchmarks_for(year).electricity[self.unit_type] * factor)
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
        """What the ledger will say the firm owes: all of the period's verified emissions (ledger.rules)."""
        return rules.obligation(sum(self.emissions[y] for y in period.years if y in self.emissions)) or 0

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
