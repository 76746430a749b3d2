"""Decisions of enforcement (Interim Regulations, State Council Order 775): after the time limit to correct, the
deduction from the next allocation for firms still short (art. 24); fines for reporting failures (art. 21) and
data fraud (art. 22), and art. 22's cut of an allocation when the firm refuses to correct."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.decisions.base import Decided, floor_t
from ledger.errors import Refused
from ledger.model import LedgerState


def year_enforce(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    period = st.period_of(a["year"])
    if period is None:
        raise Refused(f"compliance year {a['year']} is not open", code="year_not_open")
    if not period.closed:
        raise Refused(f"compliance year {period.label} is not closed; close it first", code="year_not_closed")
    if period.enforced:
        raise Refused(f"compliance year {period.label} was already enforced", code="already_enforced")
    if period.correct_by is None:
        raise Refused(f"compliance year {period.label} was closed before time limits to correct: its deductions"
                      " were assessed at close", code="nothing_to_enforce")
    if now[:10] <= period.correct_by:
        raise Refused(f"firms may correct {period.label} until {period.correct_by}; enforce after that day",
                      code="correction_pending")
    events: list[tuple[str, dict[str, Any]]] = []
    for fid in sorted(st.firms):
        if (fid, period.label) not in st.penalized:
            continue
        obligation = st.obligation(fid, period) or 0
        short = obligation - st.surrendered_in(fid, period)
        if short > 0:
            events.append(("DeductionOrdered", {"firm_id": fid, "year": period.first, "shortfall": short,
                                                "deduction": short, "correct_by": period.correct_by,
                                                "article": "IR art. 24"}))
    deducted = sum(d["deduction"] for _t, d in events)
    events.append(("ComplianceYearEnforced", {"year": period.first, "correct_by": period.correct_by}))
    return events, {"year": period.label, "deductions": len(events) - 1, "deducted": deducted}


def penalty_record(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    st.check_firm(a["firm_id"])
    data = {k: a[k] for k in ("firm_id", "article", "fine", "year", "illegal_gains", "reason") if a.get(k) is not None}
    return [("PenaltyRecorded", data)], {"firm_id": a["firm_id"], "fine": a["fine"]}


def penalty_cut(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fid, year = a["firm_id"], a["year"]
    st.check_firm(fid)
    allocated = st.allocated.get((fid, year), 0)
    if allocated <= 0:
        raise Refused(f"{fid} has no allocation for {year} to cut; allocate it first", code="not_allocated")
    cut = floor_t(Decimal(a["share"]) * allocated)
    if cut <= 0:
        raise Refused(f"a cut of {a['share']} of {allocated} t is 0 t", code="nothing_to_cut")
    take = min(cut, st.available(fid, "CEA", year, now))  # units reserved by pending transfers stay
    events: list[tuple[str, dict[str, Any]]] = [("AllocationCutOrdered", {
        "firm_id": fid, "year": year, "share": a["share"], "allocated": allocated, "cut": cut,
        "outstanding": cut - take})]
    if take:
        events.append(("AllowancesWithdrawn", {"account_id": fid, "unit": "CEA", "vintage": year, "quantity": take,
                                               "reason": "allocation cut", "firm_id": fid, "year": year}))
    return events, {"firm_id": fid, "year": year, "cut": cut, "withdrawn": take}
