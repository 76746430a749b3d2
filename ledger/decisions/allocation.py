"""Decisions that create units: issuance and benchmark allocation (pre-allocation, true-up, clawback, deduction)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger import rules
from ledger.decisions.base import Decided, floor_t
from ledger.errors import Refused
from ledger.model import LedgerState


def issue(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    st.check_account_open(a["account_id"])
    if (a["unit"] == "CCER") != (a["basis"] == "offset"):
        raise Refused("CCER are issued with basis offset, and only CCER are", code="basis_unit")
    return [("AllowancesIssued", {"account_id": a["account_id"], "unit": a["unit"], "vintage": a["vintage"],
                                  "quantity": a["quantity"], "basis": a["basis"]})], {}


def allocate(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fid, year, step = a["firm_id"], a["year"], a["step"]
    firm = st.check_firm(fid)
    st.check_open_period(year)
    if not rules.is_covered(firm.sector, year):
        raise Refused(f"sector {firm.sector} is not covered in {year}; nothing to allocate", code="not_covered")
    st.check_account_open(fid)
    key = (fid, year)
    factors = {k: Decimal(v) for k, v in (a.get("factors") or {}).items()}
    factor = Decimal(1)
    for v in factors.values():
        factor *= v
    inputs: dict[str, Any] = {"year": year, "step": step, "factors": {k: str(v) for k, v in factors.items()} or None}
    new_sector = firm.sector in rules.NEW_SECTORS
    if step == "pre":
        if key in st.pre_allocated:
            raise Refused(f"{fid} was already pre-allocated for {year}", code="already_allocated")
        base_year = year - 1
        base = st.verified.get((fid, base_year))
        if new_sector:
            if year <= rules.COVERAGE_START[firm.sector]:
                raise Refused(f"{firm.sector} has no pre-allocation in its first year {year}; use --step true-up",
                              code="no_pre_allocation")
            if base is None:
                raise Refused(f"{fid} has no verified emissions for base year {base_year}", code="no_base_year")
            computed = floor_t(rules.PRE_ALLOCATION_SHARE * base[0])
            inputs.update(base_year=base_year, share=str(rules.PRE_ALLOCATION_SHARE), verified_emissions=base[0],
                          rule_version=f"{firm.sector}-{year}")
        else:
            if base is None or base[1] is None:
                raise Refused(f"{fid} has no verified output for base year {base_year}", code="no_base_year")
            bm, bm_unit, version = _benchmark(firm.unit_type, base[2], year)
            computed = floor_t(rules.PRE_ALLOCATION_SHARE * base[1] * bm)
            inputs.update(base_year=base_year, share=str(rules.PRE_ALLOCATION_SHARE), output=base[1],
                          output_unit=base[2], benchmark=str(bm), benchmark_unit=bm_unit, rule_version=version,
                          unit_type=firm.unit_type)
        inputs["computed"] = computed
        if computed <= 0:
            raise Refused(f"pre-allocation for {fid} in {year} computes to {computed} t", code="nothing_to_allocate")
        events = [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": computed,
                                        "basis": "pre-allocation", **_clean(inputs)})]
    else:
        actual = st.verified.get(key)
        if new_sector:
            if actual is None:
                raise Refused(f"{fid} has no verified emissions for {year}", code="not_verified")
            share = rules.new_sector_share(year)
            computed = floor_t(share * actual[0] * factor)
            inputs.update(share=str(share), verified_emissions=actual[0], rule_version=f"{firm.sector}-{year}")
        else:
            if actual is None or actual[1] is None:
                raise Refused(f"{fid} has no verified output for {year}", code="not_verified")
            bm, bm_unit, version = _benchmark(firm.unit_type, actual[2], year)
            computed = floor_t(actual[1] * bm * factor)
            inputs.update(output=actual[1], output_unit=actual[2], benchmark=str(bm), benchmark_unit=bm_unit,
                          rule_version=version, unit_type=firm.unit_type)
        already = st.allocated.get(key, 0)
        delta = computed - already
        inputs.update(computed=computed, previously_allocated=already)
        if delta == 0:
            raise Refused(f"{fid}'s allocation for {year} already equals the computed {computed} t",
                          code="nothing_to_allocate")
        if delta > 0:
            events = [("AllowancesIssued", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": delta,
                                            "basis": "true-up", **_clean(inputs)})]
        else:
            held = st.holding(fid, "CEA", year)
            take = min(held, -delta)
            if take == 0:
                raise Refused(f"{fid} must return {-delta} t of CEA {year} but holds none", code="insufficient_holding")
            claw = {k: v for k, v in _clean(inputs).items()
                    if k in ("year", "computed", "previously_allocated", "benchmark", "output", "factors")}
            events = [("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": take,
                                               "reason": "true-up clawback", "firm_id": fid,
                                               "outstanding": (-delta - take) or None, **claw})]
    events += deduction(st, fid, year, events)
    issued = sum(d["quantity"] for t, d in events if t == "AllowancesIssued")
    return events, {"firm_id": fid, "year": year, "step": step, "issued": issued}


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


def _benchmark(unit_type: str | None, output_unit: str | None, year: int) -> tuple[Decimal, str, str]:
    table = rules.benchmarks_for(year)
    ut = unit_type or rules.DEFAULT_UNIT_TYPE["power"]
    if output_unit == "MWh":
        return table.electricity[ut], "tCO2/MWh", table.version
    if output_unit == "GJ":
        return table.heat[ut], "tCO2/GJ", table.version
    raise Refused(f"power output must be verified in MWh or GJ, not {output_unit}", code="output_unit")


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
