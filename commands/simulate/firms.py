"""The firms: power firms with unit types and outputs, the new sectors of 2024, their emissions and who falls
short; the actors and the batch runner that plays them through the registry."""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from commands.simulate.figures import (
    BATCH_SIZE,
    CCER_USER_SHARE,
    CHP_SHARE,
    DEFAULTER_SHARE,
    GAS_PEAKER_SHARE,
    GROUPS,
    HEAT_GJ_PER_MWH,
    HIGH_INTENSITY_EXTRA,
    HIGH_INTENSITY_SHARE,
    HOURS,
    INTENSITY_SPREAD,
    LOAD_FACTOR,
    NEW_SECTOR_EMISSIONS_T,
    NEW_SECTOR_FIRMS,
    NEW_SECTOR_INTENSITY,
    NEW_SECTOR_KIND,
    OUTPUT_DROP_CHANCE,
    OUTPUT_GROWTH,
    OWN_USE,
    PERIODS,
    POWER_EMISSIONS_T,
    POWER_ENTRANTS_2021,
    POWER_FIRMS_FIRST_CYCLE,
    POWER_FIRMS_MIN,
    REGIONS,
    UNIT_MIX,
    UNIT_SPREAD,
    D,
    PeriodPlan,
    Progress,
    _at,
)
from ledger import formulas, plans, rules
from ledger.decisions.base import floor_t
from ledger.errors import LedgerError, Refused
from ledger.registry import Command, Outcome, Registry


@dataclass
class Facility:
    """A facility as the registry knows it (facility register) and its verified data by year (emissions verify
    --facility): for a generating unit tonnes, generated_mwh, supplied_mwh, heat_gj and, for conventional coal,
    load_factor; for a steel, clinker or aluminium facility tonnes and intensity."""

    facility_id: str
    kind: str
    rated_mw: int | None = None
    data: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_registered(self) -> dict[str, Any]:
        return {"facility_id": self.facility_id, "kind": self.kind,
                "rated_mw": None if self.rated_mw is None else str(self.rated_mw)}


@functools.cache
def _plan(part: str, year: int) -> dict[str, Any]:
    """The shipped plan of the year (the simulator publishes none; 2018, the first cycle's base year, by 2019's)."""
    plan = plans.plan_for(part, max(year, 2019 if part == "power" else 2024))
    assert plan is not None
    return plan


@functools.cache
def _peak_load(formula: str, load_factor: str) -> float:
    return float(formulas.peak_load_factor(formula, D(load_factor)))


@dataclass
class Firm:
    """A covered firm as the scenario draws it: its facilities and what they produce and emit, year by year."""

    fid: str
    name: str
    sector: str
    region: str
    unit_type: str | None
    first_year: int  # first compliance year
    facilities: list[Facility] = field(default_factory=list)
    emissions: dict[int, int] = field(default_factory=dict)  # verified t CO2, the sum of its facilities'
    ccer: tuple[int, int] | None = None  # (vintage, t) of CCER it brings to the first cycle
    shortfall_permille: dict[str, int] = field(default_factory=dict)  # period -> share it surrenders
    index: int = 0
    _allocation: dict[int, int] = field(default_factory=dict, repr=False)

    def has_data(self, year: int) -> bool:
        return any(year in fac.data for fac in self.facilities)

    def allocation(self, year: int) -> int:
        """The free allocation the rules give after true-up (what the firm expects)."""
        if year not in self._allocation:
            self._allocation[year] = self._compute_allocation(year)
        return self._allocation[year]

    def _compute_allocation(self, year: int) -> int:
        """What the registry will issue for the year after true-up, as the desk expects it: each facility by the
        shipped plan of the year (ledger.formulas), and for power the exemptions (a gas unit up to its verified
        emissions, the firm up to 80% of them). The registry computes it again from its own state."""
        if self.sector != "power":
            plan = _plan("new_sectors", year)
            return sum(formulas.new_sector_facility(plan, year, fac.as_registered(), fac.data[year])["allocation"]
                       for fac in self.facilities if year in fac.data)
        plan = _plan("power", year)
        units = [formulas.power_unit(plan, year, fac.as_registered(), fac.data[year])
                 for fac in self.facilities if year in fac.data]
        allocated = sum(u["allocation"] for u in units)
        if year not in self.emissions:
            return allocated
        if plan.get("gas_unit_exemption"):
            verified = {fac.facility_id: fac.data[year]["tonnes"] for fac in self.facilities if year in fac.data}
            allocated += sum(g["top_up"] for g in formulas.gas_exemption(units, verified))
        if plan.get("gap_cap_share") is not None:
            allocated = max(allocated, formulas.gap_cap_target(plan, self.emissions[year]))
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


def _units(rnd: random.Random, fid: str, unit_type: str) -> list[tuple[Facility, dict[str, float]]]:
    """A power firm's generating units and how each runs: (facility, its traits)."""
    _, kind, sizes, counts = UNIT_MIX[unit_type]
    kinds = [kind] * rnd.choice(counts)
    if kind == "coal" and rnd.random() < GAS_PEAKER_SHARE:
        kinds.append("gas")
    out = []
    for n, k in enumerate(kinds, 1):
        rated = rnd.choice(sizes) if k == kind else rnd.choice(UNIT_MIX["gas"][2])
        mean, sd, lo, hi = LOAD_FACTOR
        traits = {
            "load": min(hi, max(lo, rnd.gauss(mean, sd))) if k != "gas" else rnd.uniform(0.35, 0.6),
            "hours": rnd.uniform(*HOURS) if k != "gas" else rnd.uniform(2500, 5000),
            "heat": rnd.uniform(*HEAT_GJ_PER_MWH) if rnd.random() < CHP_SHARE[k] else 0.0,
            "own_use": rnd.uniform(*OWN_USE[k]),
        }
        out.append((Facility(f"{fid}-U{n}", k, rated), traits))
    return out


def make_firms(rnd: random.Random, scale: float, volumes: dict[int, int],
               periods: tuple[PeriodPlan, ...] = PERIODS) -> list[Firm]:
    """Power firms (2,162 in the first cycle, entrants from 2021) with their generating units, and the 2024
    new sectors with a steel, clinker or aluminium facility each."""
    last = periods[-1].last
    n_first = max(POWER_FIRMS_MIN, round(POWER_FIRMS_FIRST_CYCLE * scale))
    n_entrants = max(1, round(POWER_ENTRANTS_2021 * scale))
    types, shares = list(UNIT_MIX), [v[0] for v in UNIT_MIX.values()]
    firms: list[Firm] = []
    for i in range(n_first + n_entrants):
        ut = types[0] if i == 0 else rnd.choices(types, weights=shares)[0]  # the first: a large coal fleet
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
        first_data = 2018 if f.first_year == 2019 else f.first_year  # 2018: the first cycle's base year
        for fac, t in _units(rnd, f.fid, ut):
            gen = fac.rated_mw * t["hours"] * t["load"]
            load = t["load"]
            for y in range(2018, last + 1):
                if y > 2018:
                    ratio = (1 + OUTPUT_GROWTH[y]) * rnd.lognormvariate(0, 0.04)
                    if rnd.random() < OUTPUT_DROP_CHANCE:
                        ratio = rnd.uniform(0.45, 0.62)  # a unit mothballed for most of the year
                    gen *= min(1.25, max(0.8, ratio)) if ratio > 0.7 else ratio
                    load = min(0.95, max(0.3, load + rnd.gauss(0, 0.02)))
                if y >= first_data:
                    g = max(1000.0, gen)
                    d: dict[str, Any] = {"generated": g, "supplied": g * (1 - t["own_use"]), "heat": g * t["heat"]}
                    if fac.kind == "coal":
                        d["load_factor"] = f"{load:.4f}"
                    fac.data[y] = d
            f.facilities.append(fac)
        firms.append(f)
    _power_emissions(rnd, firms, scale, volumes, periods)
    first_cycle = periods[0]
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
            fac = Facility(f"{f.fid}-1", NEW_SECTOR_KIND[sector])
            for y in range(2024, last + 1):
                tonnes = max(1000, int(NEW_SECTOR_EMISSIONS_T[sector] * scale * s / total * rnd.uniform(0.97, 1.03)))
                intensity = NEW_SECTOR_INTENSITY[sector] * rnd.uniform(0.85, 1.15)
                fac.data[y] = {"tonnes": tonnes, "intensity": f"{intensity:.4f}"}
                f.emissions[y] = tonnes
            f.facilities.append(fac)
            firms.append(f)
    _pick_shortfalls(rnd, firms, periods)
    return firms


def _power_emissions(rnd: random.Random, firms: list[Firm], scale: float, volumes: dict[int, int],
                     periods: tuple[PeriodPlan, ...]) -> None:
    """Each unit's emissions = its allocation at the plan's benchmarks x (1 + the firm's deviation in the period).

    Outputs (electricity and heat) are first scaled so that, at the benchmarks, each year's power emissions total
    about 5 Gt x scale; the activity data are then whole MWh and GJ as verified. A period's mean deviation is set
    so that the short firms' total gap is the period's `gap_share` of the volume traded before its deadline; the
    market as a whole stays long. Gas units owe no more than they are given (the gas-unit exemption).
    """
    last = periods[-1].last
    at_benchmark: dict[tuple[str, int], float] = {}  # (facility, year) -> t at the benchmarks
    for y in range(2018, last + 1):
        plan = _plan("power", y)
        basis = plan["output_basis"]
        raw: dict[str, float] = {}
        for f in firms:
            for fac in f.facilities:
                d = fac.data.get(y)
                if d is None:
                    continue
                share = _float_unit(plan, fac, d["generated"] if basis == "generated" else d["supplied"], d)
                raw[fac.facility_id] = share
        k = POWER_EMISSIONS_T[y] * scale / sum(raw.values())
        for f in firms:
            for fac in f.facilities:
                d = fac.data.get(y)
                if d is None:
                    continue
                fac.data[y] = {"tonnes": 0, "generated_mwh": max(1000, int(d["generated"] * k)),
                               "supplied_mwh": max(900, int(d["supplied"] * k))}
                if int(d["heat"] * k):
                    fac.data[y]["heat_gj"] = int(d["heat"] * k)
                if "load_factor" in d:
                    fac.data[y]["load_factor"] = d["load_factor"]
                at_benchmark[(fac.facility_id, y)] = raw[fac.facility_id] * k
    persistent = [rnd.gauss(0, 1) for _ in firms]
    for period in periods:
        members = [f for f in firms if f.first_year <= period.last]
        z = _stratified(rnd, [0.75 * persistent[f.index] + 0.66 * rnd.gauss(0, 1) for f in members])
        base = [sum(at_benchmark.get((fac.facility_id, y), 0.0) for y in period.years for fac in f.facilities
                    if fac.kind != "gas") for f in members]
        # the most intense few (old, inefficient fleets) emit well above the benchmarks: the gap cap tops them up
        outliers = sorted((i for i, b in enumerate(base) if b > 0), key=lambda i: -z[i])
        extra = [0.0] * len(members)
        for i in outliers[: max(1, round(HIGH_INTENSITY_SHARE * len(members)))]:
            extra[i] = HIGH_INTENSITY_EXTRA
        z = [INTENSITY_SPREAD * zf + x for zf, x in zip(z, extra, strict=True)]  # the firm's own deviation
        volume = sum(v for y, v in volumes.items() if period.buy_from.year <= y <= period.deadline.year)
        target_gap = period.gap_share * volume
        lo, hi = -0.2, 0.2
        for _ in range(50 if period.mean_deviation is None else 0):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _gap(mid, base, z) < target_gap else (lo, mid)
        if period.mean_deviation is not None:
            hi = period.mean_deviation
        years = range(2018 if period.first == 2019 else period.first, period.last + 1)
        for f, zf in zip(members, z, strict=True):
            for y in years:
                total = 0
                for fac in f.facilities:
                    if (fac.facility_id, y) in at_benchmark:
                        dev = 1 + hi + zf + UNIT_SPREAD * rnd.gauss(0, 1)
                        tonnes = max(1, int(at_benchmark[(fac.facility_id, y)] * dev))
                        fac.data[y]["tonnes"] = tonnes
                        total += tonnes
                if total:
                    f.emissions[y] = total


def _float_unit(plan: dict[str, Any], fac: Facility, qe: float, d: dict[str, Any]) -> float:
    """A unit's allocation by the plan, in floats, for calibration (ledger.formulas.power_unit is exact)."""
    cat = formulas.category(plan, fac.kind, str(fac.rated_mw))
    be = float(plan["electricity_t_per_mwh"][cat])
    bh = float(plan["heat_t_per_gj"]["gas" if fac.kind == "gas" else "coal"])
    factor = 1.0
    qh = d["heat"]
    if fac.kind == "coal" and plan.get("peak_load_formula") and (plan.get("peak_load_scope", "coal") == "coal"
                                                                  or not qh):
        factor *= _peak_load(plan["peak_load_formula"], d["load_factor"])
    k = (plan.get("heat_share_factor") or {}).get("gas" if fac.kind == "gas" else "coal")
    if k is not None and qh:
        factor *= 1 - float(k) * qh / (qh + 3.6 * qe)
    return qe * be * factor + qh * bh


def _gap(mu: float, base: list[float], dev: list[float]) -> float:
    """Short firms' total gap (t) when the period's mean deviation is `mu`: E - max(A, 80% E) for each firm, with
    E = A (1 + d) (gas units owe no more than they get, and are not in `base`)."""
    cap = float(rules.GAP_CAP_SHARE)
    return sum(b * min(mu + d, cap * (1 + mu + d)) for b, d in zip(base, dev, strict=True) if mu + d > 0)


def _pick_shortfalls(rnd: random.Random, firms: list[Firm], periods: tuple[PeriodPlan, ...] = PERIODS) -> None:
    """The few firms per period that surrender less than they owe (status B, penalised at close).

    They are among the smaller short firms and fall 1-20% short: compliance was about 99.5%
    by quantity in the first cycles.
    """
    for period in periods:
        power = [f for f in firms if f.sector == "power" and f.first_year <= period.last]
        short = sorted(
            (f for f in power if f.obligation(period) > sum(f.allocation(y) for y in period.years)),
            key=lambda f: (f.obligation(period), f.fid),
        )
        smaller = short[: max(1, len(short) // 2)]
        for f in rnd.sample(smaller, min(len(smaller), max(1, round(DEFAULTER_SHARE["power"] * len(power))))):
            f.shortfall_permille[period.label] = rnd.randint(800, 990)
        if period.first >= 2024:
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
