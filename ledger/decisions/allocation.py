"""Decisions that create units: issuance and allocation by the plan of the year (pre-allocation, true-up,
clawback, the exemptions issued as allowances, deduction).

A firm with facilities is allocated unit by unit (ledger.formulas, the plan from ledger.plans or a published
one), floored per unit and summed; a firm without facilities is allocated as one unit of its unit type, as
before. At true-up a power firm's gas units are topped up to their verified emissions (`gas-unit exemption`)
and the firm to 80% of its verified emissions (`gap-cap exemption`), each its own issuance event.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger import formulas, plans, rules
from ledger.decisions.base import Decided, floor_t
from ledger.errors import Refused
from ledger.model import EXEMPTION_BASES, LedgerState

Events = list[tuple[str, dict[str, Any]]]


def issue(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    st.check_account_open(a["account_id"])
    if (a["unit"] == "CCER") != (a["basis"] == "offset"):
        raise Refused("CCER are issued with basis offset, and only CCER are", code="basis_unit")
    if a.get("project_registered") is not None and a["unit"] != "CCER":
        raise Refused("--project-registered is an offset project's registration date: CCER only", code="basis_unit")
    data = {"account_id": a["account_id"], "unit": a["unit"], "vintage": a["vintage"], "quantity": a["quantity"],
            "basis": a["basis"]}
    if a.get("project_registered") is not None:  # a CCER's project registration date
        data["project_registered"] = a["project_registered"]
    return [("AllowancesIssued", data)], {}


def allocate(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fid, year, step = a["firm_id"], a["year"], a["step"]
    firm = st.check_firm(fid)
    st.check_open_period(year)
    if not rules.is_covered(firm.sector, year):
        raise Refused(f"sector {firm.sector} is not covered in {year}; nothing to allocate", code="not_covered")
    st.check_account_open(fid)
    if fid in st.firm_facilities:
        if a.get("factors"):
            raise Refused(f"{fid} has facilities: its factors come from the plan and its verified data, not"
                          " from --factor", code="factors_from_plan")
        events = _by_facility(st, fid, firm.sector, year, step, now)
    else:
        events = _as_one_unit(st, fid, firm.sector, firm.unit_type, year, step, a.get("factors"), now)
    events += deduction(st, fid, year, events)
    issued = sum(d["quantity"] for t, d in events if t == "AllowancesIssued")
    return events, {"firm_id": fid, "year": year, "step": step, "issued": issued}


# ---- a firm with facilities -----------------------------------------------------------------------
def _plan(st: LedgerState, sector: str, year: int) -> dict[str, Any]:
    part = "power" if sector == "power" else "new_sectors"
    plan = st.plan(part, year)
    if plan is None:
        raise Refused(f"no {part.replace('_', ' ')} allocation plan covers {year}; a regulator can publish one"
                      " (rules publish PLAN.json)", code="no_plan")
    return plan


def _by_facility(st: LedgerState, fid: str, sector: str, year: int, step: str, now: str) -> Events:
    plan = _plan(st, sector, year)
    facs = [st.facility_dict(f) for f in st.firm_facilities[fid]]
    if step == "pre":
        if (fid, year) in st.pre_allocated:
            raise Refused(f"{fid} was already pre-allocated for {year}", code="already_allocated")
        if sector != "power" and plan.get("formula") == "verified":
            raise Refused(f"{sector} has no pre-allocation in {year} ({plan['version']}); use --step true-up",
                          code="no_pre_allocation")
        units = [formulas.pre_allocation_unit(plan, year, f, st.facility_verified[(f["facility_id"], year - 1)])
                 for f in facs if (f["facility_id"], year - 1) in st.facility_verified]
        if not units:
            raise Refused(f"no unit of {fid} has verified data for base year {year - 1}", code="no_base_year")
        computed = sum(u["allocation"] for u in units)
        if computed <= 0:
            raise Refused(f"pre-allocation for {fid} in {year} computes to {computed} t", code="nothing_to_allocate")
        return [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": computed,
                                      "basis": "pre-allocation", "year": year, "step": "pre",
                                      "rule_version": plan["version"], "computed": computed, "facilities": units})]
    verified = {f["facility_id"]: st.facility_verified[(f["facility_id"], year)] for f in facs
                if (f["facility_id"], year) in st.facility_verified}
    if not verified:
        raise Refused(f"{fid} has no verified emissions for {year}", code="not_verified")
    if sector == "power":
        units = [formulas.power_unit(plan, year, f, verified[f["facility_id"]]) for f in facs
                 if f["facility_id"] in verified]
    else:
        units = [formulas.new_sector_facility(plan, year, f, verified[f["facility_id"]]) for f in facs
                 if f["facility_id"] in verified]
    computed = sum(u["allocation"] for u in units)
    targets: list[tuple[str, int, dict[str, Any]]] = [
        ("true-up", computed, {"rule_version": plan["version"], "computed": computed, "facilities": units})]
    if sector == "power":
        targets += _exemptions(plan, units, {k: v["tonnes"] for k, v in verified.items()},
                               st.verified[(fid, year)][0], computed)
    events = _settle(st, fid, year, targets, now)
    if not events:
        raise Refused(f"{fid}'s allocation for {year} already equals the computed {computed} t (and its"
                      " exemptions)", code="nothing_to_allocate")
    return events


def _exemptions(plan: dict[str, Any], units: list[dict[str, Any]], unit_verified: dict[str, int], verified: int,
                computed: int) -> list[tuple[str, int, dict[str, Any]]]:
    """The gas-unit and gap-cap top-ups (P23 5(3)) as targets: what each exemption should have issued in all."""
    out = []
    gas = formulas.gas_exemption(units, unit_verified) if plan.get("gas_unit_exemption") else []
    top = sum(g["top_up"] for g in gas)
    out.append(("gas-unit exemption", top, {"rule_version": plan["version"], "facilities": gas or None,
                                            "computed": top}))
    if plan.get("gap_cap_share") is not None:
        target = formulas.gap_cap_target(plan, verified)
        after_gas = computed + top
        out.append(("gap-cap exemption", max(target - after_gas, 0), {
            "rule_version": plan["version"], "verified_emissions": verified,
            "share": str(1 - Decimal(plan["gap_cap_share"])), "computed": target,
            "previously_allocated": after_gas}))
    return out


def _settle(st: LedgerState, fid: str, year: int, targets: list[tuple[str, int, dict[str, Any]]], now: str,
            held_change: int = 0) -> Events:
    """Issue (or claw back) the difference between each basis's target and what it has issued so far;
    `held_change` is what events already decided in this command moved in the firm's CEA of the year."""
    events: Events = []
    held = st.available(fid, "CEA", year, now) + held_change  # units reserved by pending transfers stay
    for basis, target, inputs in targets:
        already = st.exempted.get((fid, year, basis), 0) if basis in EXEMPTION_BASES else st.allocated.get((fid, year), 0)
        delta = target - already
        if delta == 0:
            continue
        data = {k: v for k, v in inputs.items() if v is not None}
        if delta > 0:
            if basis == "true-up":
                data["previously_allocated"] = already
            events.append(("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": delta,
                                                "basis": basis, "year": year, "step": "true-up", **data}))
            held += delta
            continue
        _check_can_return(st, fid, year, -delta, now)
        take = min(held, -delta)
        if take == 0:
            raise Refused(f"{fid} must return {-delta} t of CEA {year} ({basis}) but holds none",
                          code="insufficient_holding")
        held -= take
        events.append(("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": take,
                                               "reason": "true-up clawback", "firm_id": fid, "year": year,
                                               "basis": basis, "computed": target, "previously_allocated": already,
                                               "outstanding": (-delta - take) or None}))
    return events


# ---- a firm without facilities: one unit of its unit type ---------------------------------------
def _as_one_unit(st: LedgerState, fid: str, sector: str, unit_type: str | None, year: int, step: str,
                 factor_args: dict[str, str] | None, now: str) -> Events:
    key = (fid, year)
    factors = {k: Decimal(v) for k, v in (factor_args or {}).items()}
    factor = Decimal(1)
    for v in factors.values():
        factor *= v
    inputs: dict[str, Any] = {"year": year, "step": step, "factors": {k: str(v) for k, v in factors.items()} or None}
    new_sector = sector in rules.NEW_SECTORS
    if step == "pre":
        if key in st.pre_allocated:
            raise Refused(f"{fid} was already pre-allocated for {year}", code="already_allocated")
        base_year = year - 1
        base = st.verified.get((fid, base_year))
        share, by_emissions = rules.pre_allocation_rule(sector, year, st.plan)
        if new_sector and year <= rules.COVERAGE_START[sector]:
            raise Refused(f"{sector} has no pre-allocation in its first year {year}; use --step true-up",
                          code="no_pre_allocation")
        if by_emissions:
            if base is None:
                raise Refused(f"{fid} has no verified emissions for base year {base_year}", code="no_base_year")
            computed = floor_t(share * base[0])
            inputs.update(base_year=base_year, share=str(share), verified_emissions=base[0],
                          rule_version=rules.rule_version(sector, year, st.plan))
        else:
            if base is None or base[1] is None:
                raise Refused(f"{fid} has no verified output for base year {base_year}", code="no_base_year")
            bm, bm_unit, version = _benchmark(st, unit_type, base[2], year)
            computed = floor_t(share * base[1] * bm)
            inputs.update(base_year=base_year, share=str(share), output=base[1], output_unit=base[2],
                          benchmark=str(bm), benchmark_unit=bm_unit, rule_version=version, unit_type=unit_type)
        inputs["computed"] = computed
        if computed <= 0:
            raise Refused(f"pre-allocation for {fid} in {year} computes to {computed} t", code="nothing_to_allocate")
        return [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": computed,
                                      "basis": "pre-allocation", **_clean(inputs)})]
    actual = st.verified.get(key)
    if new_sector:
        if actual is None:
            raise Refused(f"{fid} has no verified emissions for {year}", code="not_verified")
        share = rules.new_sector_share(year)
        if share is None:
            raise Refused(f"from {year} a {sector} firm is allocated per facility (A = E x (1 + a) by its intensity):"
                          f" register {fid}'s facilities", code="needs_facilities")
        computed = floor_t(share * actual[0] * factor)
        inputs.update(share=str(share), verified_emissions=actual[0], rule_version=f"{sector}-{year}")
    else:
        if actual is None or actual[1] is None:
            raise Refused(f"{fid} has no verified output for {year}", code="not_verified")
        bm, bm_unit, version = _benchmark(st, unit_type, actual[2], year)
        computed = floor_t(actual[1] * bm * factor)
        inputs.update(output=actual[1], output_unit=actual[2], benchmark=str(bm), benchmark_unit=bm_unit,
                      rule_version=version, unit_type=unit_type)
    already = st.allocated.get(key, 0)
    inputs.update(computed=computed, previously_allocated=already)
    events: Events = []
    delta = computed - already
    if delta > 0:
        events = [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": delta,
                                        "basis": "true-up", **_clean(inputs)})]
    elif delta < 0:
        _check_can_return(st, fid, year, -delta, now)
        held = st.available(fid, "CEA", year, now)  # units reserved by pending transfers stay
        take = min(held, -delta)
        if take == 0:
            raise Refused(f"{fid} must return {-delta} t of CEA {year} but holds none", code="insufficient_holding")
        claw = {k: v for k, v in _clean(inputs).items()
                if k in ("year", "computed", "previously_allocated", "benchmark", "output", "factors")}
        events = [("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": take,
                                           "reason": "true-up clawback", "firm_id": fid,
                                           "outstanding": (-delta - take) or None, **claw})]
    if not new_sector:
        plan = st.plan("power", year)
        if plan is not None:
            unit = {"facility_id": fid, "kind": "gas" if unit_type == "gas" else "coal", "allocation": computed}
            targets = _exemptions(plan, [unit], {fid: actual[0]}, actual[0], computed)
            moved = sum(d["quantity"] if t == "AllowancesIssued" else -d["quantity"] for t, d in events)
            events += _settle(st, fid, year, targets, now, moved)
    if not events:
        raise Refused(f"{fid}'s allocation for {year} already equals the computed {computed} t",
                      code="nothing_to_allocate")
    return events


def _check_can_return(st: LedgerState, fid: str, year: int, quantity: int, now: str) -> None:
    """A clawback takes units from the firm's account: not from a frozen one."""
    if st.accounts[fid].frozen_at(now):
        raise Refused(f"{fid} must return {quantity} t of CEA {year} but its account is"
                      f" {st.accounts[fid].state_at(now)}", code="account_frozen")


def deduction(st: LedgerState, fid: str, year: int, events: list) -> list[tuple[str, dict[str, Any]]]:
    """A penalty (or unrecovered clawback) is taken from the firm's next allocation, as its own event."""
    pending = st.deductions.get(fid)
    issued = sum(d["quantity"] for t, d in events if t == "AllowancesIssued")
    if not pending or not issued or year <= pending[1]:
        return []
    take = min(pending[0], issued)
    return [("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": take,
                                     "reason": "penalty deduction", "firm_id": fid, "year": year,
                                     "penalty_year": pending[1], "outstanding": (pending[0] - take) or None})]


def _benchmark(st: LedgerState, unit_type: str | None, output_unit: str | None, year: int) -> tuple[Decimal, str, str]:
    table = rules.benchmarks_for(year, st.plan)
    ut = unit_type or rules.DEFAULT_UNIT_TYPE["power"]
    if output_unit == "MWh":
        return table.electricity[ut], "tCO2/MWh", table.version
    if output_unit == "GJ":
        return table.heat[ut], "tCO2/GJ", table.version
    raise Refused(f"power output must be verified in MWh or GJ, not {output_unit}", code="output_unit")


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


POWER_REQUIRED = ("output_basis", "category_i_min_mw", "electricity_t_per_mwh", "heat_t_per_gj")
NEW_SECTOR_REQUIRED = {"verified": (), "balance": ("slope", "bound_x", "cap", "balance_values")}


def plan_publish(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    """Record a regulator's plan for its years; each year's plan in force (the shipped one with this laid over
    it) must then be complete enough to allocate by."""
    for y in a["years"]:
        period = st.period_of(y)
        if period is not None and period.closed:
            raise Refused(f"compliance year {period.label} is closed; its plan can no longer change",
                          code="year_closed")
    trial = {k: list(v) for k, v in st.plans.items()}
    for part in ("power", "new_sectors"):
        if a.get(part) is None:
            continue
        entry = {**a[part], "version": a["version"], "source": a["source"]}
        for y in a["years"]:
            trial.setdefault((part, y), []).append(entry)
            merged = plans.plan_for(part, y, trial) or {}
            if part == "power":
                missing = [k for k in POWER_REQUIRED if k not in merged]
                missing += [f"electricity_t_per_mwh.{c}" for c in ("I", "II", "III", "IV")
                            if c not in merged.get("electricity_t_per_mwh", {})]
                missing += [f"heat_t_per_gj.{c}" for c in ("coal", "gas") if c not in merged.get("heat_t_per_gj", {})]
            else:
                formula = merged.get("formula")
                missing = ["formula"] if formula is None else [k for k in NEW_SECTOR_REQUIRED[formula]
                                                                if k not in merged]
            if missing:
                raise Refused(f"the {part.replace('_', ' ')} plan for {y} would lack {', '.join(missing)}"
                              " (no shipped plan gives it)", code="plan_incomplete")
    data = {k: a[k] for k in ("version", "years", "source", "power", "new_sectors") if a.get(k) is not None}
    return [("PlanPublished", data)], {"version": a["version"], "years": a["years"]}
