"""Decisions of the compliance cycle: periods, verified emissions, surrender, closing a period with its penalties."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ledger import rules
from ledger.decisions.base import Decided, floor_t
from ledger.errors import Refused
from ledger.inputs import FACILITY_DATA
from ledger.model import LedgerState, Period, ccer_taken, default_deadline
from ledger.units import fmt_money, money, parse_period


def year_open(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    first, last = parse_period(a["year"])
    for y in range(first, last + 1):
        if y in st.year_period:
            raise Refused(f"compliance year {y} is already open (as {st.year_period[y]})", code="year_exists")
    deadline = a.get("deadline") or default_deadline(last)  # the input model keeps it within the period
    data: dict[str, Any] = {"year": first, "surrender_deadline": deadline}
    if last != first:
        data.update(last_year=last, period=a["year"])
    return [("ComplianceYearOpened", data)], {"year": a["year"], "deadline": deadline}




def verify(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fid = a["firm_id"]
    st.check_firm(fid)
    fac = a.get("facility")
    if fac is not None:
        f = st.facilities.get(fac)
        if f is None:
            raise Refused(f"facility {fac} is not registered", code="unknown_facility")
        if f.firm_id != fid:
            raise Refused(f"facility {fac} belongs to {f.firm_id}, not {fid}", code="not_firms_facility")
        data = {"firm_id": fid, "year": a["year"], "facility_id": fac, "tonnes": a["tonnes"]}
        data.update({k: a[k] for k in FACILITY_DATA if a.get(k) is not None})
        return [("EmissionsVerified", data)], {"facility_id": fac}
    if fid in st.firm_facilities:
        raise Refused(f"firm {fid} has facilities; verify each one with --facility (its emissions are their sum)",
                      code="verify_by_facility")
    return [("EmissionsVerified", {"firm_id": a["firm_id"], "year": a["year"], "tonnes": a["tonnes"],
                                   "output": a.get("output"), "output_unit": a.get("output_unit")})], {}


def surrender(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fid, unit, vintage, q = a["firm_id"], a["unit"], a["vintage"], a["quantity"]
    st.check_firm(fid)
    period = st.period_of(a["year"])
    late = period is not None and period.closed
    if late:
        check_late_surrender(period, now)
    else:
        period = st.check_open_period(a["year"])
    if vintage > period.last:
        raise Refused(f"vintage {vintage} is later than compliance year {period.label}", code="vintage_too_late")
    if unit == "CEA" and vintage < rules.CARRY_OVER_TO_VINTAGE <= period.first:
        raise Refused(f"CEA of vintage {vintage} were not carried over into {rules.CARRY_OVER_TO_VINTAGE}: they"
                      f" count only for 2019-{rules.CARRY_OVER_TO_VINTAGE - 1} obligations, not {period.label}"
                      " (P23 annex 5)", code="vintage_not_carried_over")
    src = a.get("from_account") or fid
    if a.get("from_account") is not None:  # forced compliance: the regulator surrenders on the firm's behalf
        who = st.actors.get(actor)
        if st.enforced and (who is None or who.role != "regulator"):
            raise Refused(f"surrender --from is forced compliance, by the regulator; {actor} surrenders from {fid}",
                          code="not_permitted")
        acc = st.check_account_open(src)
        if src != fid and acc.kind != "government":
            raise Refused(f"forced compliance surrenders from a government account or the firm's own, not the"
                          f" {acc.kind} account {src}", code="forced_source")
    else:
        st.check_can_send(fid, now)  # a frozen account is surrendered from only by forced compliance
    st.check_holding_covers(src, unit, vintage, q, now)
    eligible = 0
    if unit == "CCER":
        eligible = ccer_taken(st, src, vintage, q)
        if period.first >= rules.CCER_NEW_FROM_YEAR:  # only CCER of projects registered from 22 January 2024
            eligible = st.ccer_eligible.get((src, vintage), 0)
            if eligible < q:
                raise Refused(f"from compliance year {rules.CCER_NEW_FROM_YEAR} only CCER of projects registered"
                              f" from {rules.CCER_NEW_REGISTERED_FROM} count; {src} holds {eligible} t of them in"
                              f" CCER {vintage}, fewer than {q} t", code="ccer_not_eligible")
            eligible = q
    verified = st.verified_in(fid, period)
    if verified is None:
        raise Refused(f"firm {fid} has no verified emissions for {period.label}; verify before surrender",
                      code="not_verified")
    if unit == "CCER":
        limit = floor_t(rules.CCER_LIMIT_SHARE * verified)
        used = st.surrendered_in(fid, period, "CCER")
        if used + q > limit:
            raise Refused(f"CCER may cover at most {limit} t (5% of {verified} t verified) for {fid} in "
                          f"{period.label}; {used} t already surrendered", code="ccer_limit")
    obligation = st.obligation(fid, period) or 0
    done = st.surrendered_in(fid, period)
    if done + q > obligation:
        raise Refused(f"surrendering {q} t would exceed {fid}'s obligation of {obligation} t for {period.label}"
                      f" ({done} t already surrendered)", code="beyond_obligation")
    data = {"firm_id": fid, "year": period.first, "unit": unit, "vintage": vintage, "quantity": q}
    if a.get("from_account") is not None:
        data["from_account"] = src
    if eligible:
        data["eligible"] = eligible
    return [("AllowancesSurrendered", data)], ({"late": True} if late else {})


def check_late_surrender(period: Period, now: str) -> None:
    """A closed period takes surrenders (late, IR art. 24) until its time limit to correct, and not after
    `year enforce`."""
    if period.correct_by is None or period.enforced or now[:10] > period.correct_by:
        until = f" (the time limit to correct ran until {period.correct_by})" if period.correct_by else ""
        raise Refused(f"compliance year {period.label} is closed{until}", code="year_closed")


def year_close(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    period = st.check_open_period(a["year"])
    deadline = dt.date.fromisoformat(period.deadline) if period.deadline else None
    regime = rules.penalty_regime(deadline)
    multiple = Decimal(a.get("fine_multiple") or rules.PENALTY_MULTIPLE_DEFAULT)
    price, month = penalty_price(st, deadline)
    today = dt.date.fromisoformat(now[:10])
    correct_by = a.get("correct_by")
    if correct_by is None:  # counted from the surrender deadline: a year closed long after it corrects no more
        start = deadline or today
        correct_by = (start + dt.timedelta(days=rules.CORRECTION_DAYS_DEFAULT)).isoformat()
    elif correct_by < today.isoformat():
        raise Refused(f"--correct-by {correct_by} is before today ({today.isoformat()})", code="correct_by_past")
    events: list[tuple[str, dict[str, Any]]] = []
    fines = Decimal(0)
    for fid in sorted(st.firms):
        if not st.has_obligation(fid, period):
            continue
        obligation = st.obligation(fid, period)
        if obligation is None:
            continue  # status C: no verified emissions; the shortfall cannot be valued
        done = st.surrendered_in(fid, period)
        shortfall = obligation - done
        if shortfall <= 0:
            continue
        if regime == "fixed":
            fine = rules.PENALTY_FIXED_FINE_BEFORE
        else:
            fine = money(multiple * shortfall * price) if price is not None else Decimal("0.00")
        fines += fine
        events.append(("PenaltyAssessed", {
            "firm_id": fid, "year": period.first, "shortfall": shortfall, "fine": fmt_money(fine),
            "deduction": 0, "price": fmt_money(price) if price is not None else None,
            "price_month": month, "multiple": str(multiple) if regime != "fixed" else None, "regime": regime,
            "obligation": obligation, "surrendered": done, "correct_by": correct_by}))
    events.append(("ComplianceYearClosed", {"year": period.first, "correct_by": correct_by}))
    return events, {"year": period.label, "penalties": len(events) - 1, "fines": fmt_money(fines),
                    "correct_by": correct_by}


def penalty_price(st: LedgerState, deadline: dt.date | None) -> tuple[Decimal | None, str | None]:
    """VWAP of CEA trades in the calendar month before the deadline; else the latest earlier month traded."""
    if deadline is None:
        return None, None
    first_of_month = deadline.replace(day=1)
    target = (first_of_month - dt.timedelta(days=1)).strftime("%Y-%m")
    if st.month_price(target) is not None:
        return st.month_price(target), target
    earlier = sorted(m for m in st.months if m < target and st.month_price(m) is not None)
    if earlier:
        return st.month_price(earlier[-1]), earlier[-1]
    return None, None
