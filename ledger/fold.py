"""The fold: how each event changes the write-side state (`LedgerState.apply` dispatches here). One function
per event type; the helpers they share (CCER lots, reversible entries) sit beside them. Nothing else changes
the state, and the fold runs both live and on replay."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ledger import rules
from ledger.model import (
    EXEMPTION_BASES,
    Account,
    Actor,
    Facility,
    Firm,
    LedgerState,
    Pending,
    Period,
)


def _initialized(st: LedgerState, d: dict[str, Any]) -> None:
    st.enforced = True
    st.require_signatures = bool(d["require_signatures"])
    st.actors[d["regulator"]] = Actor(d["regulator"], "regulator", None, d.get("public_key"))


def _actor_added(st: LedgerState, d: dict[str, Any]) -> None:
    st.actors[d["actor_id"]] = Actor(d["actor_id"], d["role"], d.get("firm_id"), d.get("public_key"))


def _actor_key(st: LedgerState, d: dict[str, Any]) -> None:
    st.actors[d["actor_id"]].public_key = d["public_key"]


def _firm_registered(st: LedgerState, d: dict[str, Any]) -> None:
    st.firms[d["firm_id"]] = Firm(d["firm_id"], d["name"], d["sector"], d["region"], d.get("unit_type"))


def _add_facility(st: LedgerState, f: Facility) -> None:
    st.facilities[f.facility_id] = f
    st.firm_facilities.setdefault(f.firm_id, []).append(f.facility_id)


def _facility_registered(st: LedgerState, d: dict[str, Any]) -> None:
    _add_facility(st, Facility(d["facility_id"], d["firm_id"], d["kind"], d.get("rated_mw")))


def _account_opened(st: LedgerState, d: dict[str, Any]) -> None:
    st.accounts[d["account_id"]] = Account(d["account_id"], d["holder"], d["kind"])


def _year_opened(st: LedgerState, d: dict[str, Any]) -> None:
    p = Period(d["year"], d.get("last_year") or d["year"], d.get("surrender_deadline"))
    st.periods[p.label] = p
    for y in p.years():
        st.year_period[y] = p.label


def _issued(st: LedgerState, d: dict[str, Any]) -> None:
    st._add((d["account_id"], d["unit"], d["vintage"]), d["quantity"])
    if d["unit"] == "CCER" and ccer_counts_from_2024(d.get("project_registered")):
        key2 = (d["account_id"], d["vintage"])
        n = max(0, st.ccer_eligible.get(key2, 0) + d["quantity"])  # a reversal (negative) takes them back
        _set_eligible(st, key2, n)
    firm = d.get("firm_id") or d["account_id"]  # firm_id: allocated to the province's account for the firm
    if d["basis"] in EXEMPTION_BASES:
        key3 = (firm, d.get("year") or d["vintage"], d["basis"])
        st.exempted[key3] = st.exempted.get(key3, 0) + d["quantity"]
    elif d["basis"] in ("pre-allocation", "true-up") and firm in st.firms:
        key = (firm, d.get("year") or d["vintage"])
        st.allocated[key] = st.allocated.get(key, 0) + d["quantity"]
        if d["basis"] == "pre-allocation":
            st.pre_allocated[key] = st.pre_allocated.get(key, 0) + d["quantity"]


def ccer_counts_from_2024(project_registered: str | None) -> bool:
    """A CCER of a project registered from 22 January 2024 (CCER 2023); without a known date, it does not."""
    return project_registered is not None and project_registered >= rules.CCER_NEW_REGISTERED_FROM


def _set_eligible(st: LedgerState, key: tuple[str, int], n: int) -> None:
    if n:
        st.ccer_eligible[key] = n
    else:
        st.ccer_eligible.pop(key, None)


def ccer_taken(st: LedgerState, account_id: str, vintage: int, q: int) -> int:
    """How many of `q` CCER leaving a holding are eligible from 2024: ineligible units leave first."""
    e = st.ccer_eligible.get((account_id, vintage), 0)
    return max(0, q - (st.holding(account_id, "CCER", vintage) - e)) if e else 0


def _ccer_move(st: LedgerState, src: str | None, dst: str | None, vintage: int, n: int) -> None:
    """Move `n` eligible-from-2024 CCER of `vintage` from src to dst (None: out of or into circulation)."""
    if not n:
        return
    if src is not None:
        _set_eligible(st, (src, vintage), st.ccer_eligible.get((src, vintage), 0) - n)
    if dst is not None:
        _set_eligible(st, (dst, vintage), st.ccer_eligible.get((dst, vintage), 0) + n)


def _transferred(st: LedgerState, d: dict[str, Any]) -> None:
    q = d["quantity"]
    if d["unit"] == "CCER" and st.ccer_eligible:
        _ccer_move(st, d["from_account"], d["to_account"], d["vintage"], ccer_taken(st, d["from_account"],
                                                                                    d["vintage"], q))
    st._add((d["from_account"], d["unit"], d["vintage"]), -q)
    st._add((d["to_account"], d["unit"], d["vintage"]), q)


def _traded(st: LedgerState, d: dict[str, Any]) -> None:
    q, unit, vintage, date = d["quantity"], d["unit"], d["vintage"], d["trade_date"]
    if unit == "CCER" and st.ccer_eligible:
        _ccer_move(st, d["seller"], d["buyer"], vintage, ccer_taken(st, d["seller"], vintage, q))
    st._add((d["seller"], unit, vintage), -q)
    st._add((d["buyer"], unit, vintage), q)
    if unit == "CEA" and vintage in rules.CARRY_OVER_VINTAGES and \
            rules.CARRY_OVER_NET_SALES_DATES[0] <= date <= rules.CARRY_OVER_NET_SALES_DATES[1]:
        for acc, sign in ((d["seller"], 1), (d["buyer"], -1)):  # a firm's compliance account id is its firm id
            if acc in st.firms:
                st.carry_sales[acc] = st.carry_sales.get(acc, 0) + sign * q
    price = Decimal(d["price"])
    m = st.market(unit, vintage)
    if m.last_date is None or date > m.last_date:
        m.prev_close = m.close_of_last_day()
        m.last_date, m.day_qty, m.day_value = date, 0, Decimal(0)
    if d["mode"] == "listed":
        m.day_qty += q
        m.day_value += price * q
    m.trades += 1
    if date > st.last_trade_date.get(unit, ""):
        st.last_trade_date[unit] = date
    if unit == "CEA":
        month = date[:7]
        mq, mv = st.months.get(month, (0, Decimal(0)))
        st.months[month] = (mq + q, mv + price * q)
    key = (d["buyer"], unit)
    day = st.bought.get(key)
    if day is None or day[0] != date:
        day = st.bought[key] = (date, {})
    day[1][vintage] = day[1].get(vintage, 0) + q


def _verified(st: LedgerState, d: dict[str, Any]) -> None:
    fac = d.get("facility_id")
    if fac is None:
        st.verified[(d["firm_id"], d["year"])] = (d["tonnes"], d.get("output"), d.get("output_unit"))
        return
    if st.facilities[fac].firm_id != d["firm_id"]:
        raise ValueError(f"facility {fac} is not {d['firm_id']}'s")
    year = d["year"]
    st.facility_verified[(fac, year)] = {k: v for k, v in d.items() if k not in ("firm_id", "year", "facility_id")}
    total = sum(st.facility_verified[(f, year)]["tonnes"] for f in st.firm_facilities[d["firm_id"]]
                if (f, year) in st.facility_verified)
    st.verified[(d["firm_id"], year)] = (total, None, None)


def _surrendered(st: LedgerState, d: dict[str, Any]) -> None:
    src = d.get("from_account") or d["firm_id"]
    if d.get("eligible"):  # a reversal (negative quantity) gives them back
        n = d["eligible"] if d["quantity"] > 0 else -d["eligible"]
        _ccer_move(st, src, None, d["vintage"], n)
    st._add((src, d["unit"], d["vintage"]), -d["quantity"])
    label = st.year_period[d["year"]]
    key = (d["firm_id"], label, d["unit"])
    st.surrendered[key] = st.surrendered.get(key, 0) + d["quantity"]


def _cancelled(st: LedgerState, d: dict[str, Any]) -> None:
    if d["unit"] == "CCER" and st.ccer_eligible:
        _ccer_move(st, d["account_id"], None, d["vintage"], ccer_taken(st, d["account_id"], d["vintage"],
                                                                      d["quantity"]))
    st._add((d["account_id"], d["unit"], d["vintage"]), -d["quantity"])


def _carried_over(st: LedgerState, d: dict[str, Any]) -> None:
    if d["from_vintage"] not in rules.CARRY_OVER_VINTAGES or d["to_vintage"] != rules.CARRY_OVER_TO_VINTAGE:
        raise ValueError(f"a carry-over from vintage {d['from_vintage']} to {d['to_vintage']}")
    st._add((d["firm_id"], "CEA", d["from_vintage"]), -d["quantity"])
    st._add((d["firm_id"], "CEA", d["to_vintage"]), d["quantity"])
    st.carried[d["firm_id"]] = st.carried.get(d["firm_id"], 0) + d["quantity"]


def _withdrawn(st: LedgerState, d: dict[str, Any]) -> None:
    if d["unit"] == "CCER" and st.ccer_eligible:
        _ccer_move(st, d["account_id"], None, d["vintage"], ccer_taken(st, d["account_id"], d["vintage"],
                                                                      d["quantity"]))
    st._add((d["account_id"], d["unit"], d["vintage"]), -d["quantity"])
    firm = d.get("firm_id") or d["account_id"]
    if d["reason"] == "true-up clawback" and d.get("basis") in EXEMPTION_BASES:
        key3 = (firm, d.get("year") or d["vintage"], d["basis"])
        st.exempted[key3] = st.exempted.get(key3, 0) - d["quantity"]
    elif d["reason"] == "true-up clawback":
        key = (firm, d.get("year") or d["vintage"])
        st.allocated[key] = st.allocated.get(key, 0) - d["quantity"]
    if d["reason"] in ("true-up clawback", "penalty deduction"):
        outstanding = d.get("outstanding") or 0
        since = d.get("penalty_year") or d.get("year") or d["vintage"]
        if d["reason"] == "penalty deduction":
            if outstanding:
                st.deductions[firm] = (outstanding, st.deductions.get(firm, (0, since))[1])
            else:
                st.deductions.pop(firm, None)
        elif outstanding:
            prev = st.deductions.get(firm, (0, since))
            st.deductions[firm] = (prev[0] + outstanding, prev[1])


def _plan_published(st: LedgerState, d: dict[str, Any]) -> None:
    for part in ("power", "new_sectors"):
        if d.get(part) is not None:
            entry = {**d[part], "version": d["version"], "source": d["source"]}
            for y in d["years"]:
                st.plans.setdefault((part, y), []).append(entry)


def _closed(st: LedgerState, d: dict[str, Any]) -> None:
    p = st.periods[st.year_period[d["year"]]]
    p.closed = True
    p.correct_by = d.get("correct_by")
    if p.final:
        _no_longer_reversible(st, p)


def _no_longer_reversible(st: LedgerState, period: Period) -> None:
    years = set(period.years())
    for pos in [p for p, (d, _prev) in st.verifications.items() if d["year"] in years]:
        del st.verifications[pos]  # enforced: no longer reversible


def _deduction_ordered(st: LedgerState, d: dict[str, Any]) -> None:
    p = st.periods[st.year_period[d["year"]]]
    prev = st.deductions.get(d["firm_id"], (0, p.last))
    st.deductions[d["firm_id"]] = (prev[0] + d["deduction"], max(prev[1], p.last))


def _enforced(st: LedgerState, d: dict[str, Any]) -> None:
    p = st.periods[st.year_period[d["year"]]]
    p.enforced = True
    _no_longer_reversible(st, p)


def _no_state(st: LedgerState, d: dict[str, Any]) -> None:
    """A record for the reader (a fine decided by the regulator): the write side keeps nothing of it."""


def _cut_ordered(st: LedgerState, d: dict[str, Any]) -> None:
    """What the firm did not hold of the cut is taken from its next allocations, from that year's own on."""
    if d.get("outstanding"):
        prev = st.deductions.get(d["firm_id"], (0, d["year"] - 1))
        st.deductions[d["firm_id"]] = (prev[0] + d["outstanding"], prev[1])


def _penalty(st: LedgerState, d: dict[str, Any]) -> None:
    label = st.year_period[d["year"]]
    st.penalized.add((d["firm_id"], label))
    if d["deduction"]:
        prev = st.deductions.get(d["firm_id"], (0, d["year"]))
        st.deductions[d["firm_id"]] = (prev[0] + d["deduction"], max(prev[1], st.periods[label].last))


def _frozen(st: LedgerState, d: dict[str, Any]) -> None:
    acc = st.accounts[d["account_id"]]
    acc.frozen, acc.frozen_until = d["reason"], d.get("until")


def _unfrozen(st: LedgerState, d: dict[str, Any]) -> None:
    acc = st.accounts[d["account_id"]]
    acc.frozen = acc.frozen_until = None


def _account_closed(st: LedgerState, d: dict[str, Any]) -> None:
    if any(k[0] == d["account_id"] for k in st.holdings):
        raise ValueError(f"account {d['account_id']} is closed while it holds units")
    st.accounts[d["account_id"]].open = False


def _policy(st: LedgerState, d: dict[str, Any]) -> None:
    st.accounts[d["account_id"]].approvals = d["approvals"]


def _pending(st: LedgerState, d: dict[str, Any]) -> None:
    st.pending[d["transfer_id"]] = Pending(d["transfer_id"], d["from_account"], d["to_account"], d["unit"],
                                           d["vintage"], d["quantity"], d["initiator"], d["expires_at"])


def _pending_done(st: LedgerState, d: dict[str, Any]) -> None:
    del st.pending[d["transfer_id"]]  # approved (its AllowancesTransferred follows) or cancelled


REVERSIBLE = frozenset({"AllowancesIssued", "AllowancesTransferred", "AllowancesSurrendered", "EmissionsVerified"})


def entry_year(etype: str, d: dict[str, Any]) -> int:
    """The compliance year a reversible event concerns: a surrender's or verification's year; an allocation's
    year; otherwise the units' vintage."""
    if etype in ("AllowancesSurrendered", "EmissionsVerified"):
        return d["year"]
    return d.get("year") or d["vintage"]


def verification_key(d: dict[str, Any]) -> tuple[str, int]:
    """Which verification an EmissionsVerified replaces: the firm's, or one facility's ("FIRM/FACILITY", never an
    id, since ids have no "/")."""
    fac = d.get("facility_id")
    return (d["firm_id"] if fac is None else f"{d['firm_id']}/{fac}", d["year"])


def _reversed(st: LedgerState, d: dict[str, Any]) -> None:
    """Undo the entry at `reversed_position`, as the EntryReversed event states it (it names everything it
    undoes: the units and accounts, or the verification it restores)."""
    pos, t = d["reversed_position"], d["reversed_type"]
    if pos in st.reversed:
        raise ValueError(f"position {pos} is reversed already, at position {st.reversed[pos]}")
    st.reversed[pos] = st.position + 1
    if t == "AllowancesIssued":
        _issued(st, {**d, "quantity": -d["quantity"]})
        key = (d.get("firm_id") or d["account_id"], d.get("year") or d["vintage"])
        for kept in (st.allocated, st.pre_allocated):
            if kept.get(key) == 0:
                del kept[key]  # a reversed pre-allocation may be made again
    elif t == "AllowancesTransferred":
        _transferred(st, d)  # from the original's receiver back to its sender
    elif t == "AllowancesSurrendered":
        _surrendered(st, {"firm_id": d["firm_id"], "from_account": d["account_id"], "year": d["year"],
                          "unit": d["unit"], "vintage": d["vintage"], "quantity": -d["quantity"],
                          "eligible": d.get("eligible")})
    elif d.get("facility_id") is not None:
        fac, year, prev = d["facility_id"], d["year"], d.get("restores_position")
        key = verification_key(d)
        if prev is None:
            st.facility_verified.pop((fac, year), None)
            st.verified_at.pop(key, None)
        else:
            _verified(st, st.verifications[prev][0])
            st.verified_at[key] = prev
        held = [st.facility_verified[(f, year)]["tonnes"] for f in st.firm_facilities[d["firm_id"]]
                if (f, year) in st.facility_verified]
        if held:
            st.verified[(d["firm_id"], year)] = (sum(held), None, None)
        else:
            st.verified.pop((d["firm_id"], year), None)
    else:
        key = (d["firm_id"], d["year"])
        if d.get("tonnes") is None:
            st.verified.pop(key, None)
            st.verified_at.pop(key, None)
        else:
            st.verified[key] = (d["tonnes"], d.get("output"), d.get("output_unit"))
            st.verified_at[key] = d["restores_position"]


APPLY: dict[str, Callable[[LedgerState, dict[str, Any]], None]] = {
    "LedgerInitialized": _initialized,
    "ActorAdded": _actor_added,
    "ActorKeyRegistered": _actor_key,
    "FirmRegistered": _firm_registered,
    "FacilityRegistered": _facility_registered,
    "AccountOpened": _account_opened,
    "ComplianceYearOpened": _year_opened,
    "AllowancesIssued": _issued,
    "AllowancesTransferred": _transferred,
    "TradeExecuted": _traded,
    "EmissionsVerified": _verified,
    "AllowancesSurrendered": _surrendered,
    "AllowancesCancelled": _cancelled,
    "AllowancesWithdrawn": _withdrawn,
    "ComplianceYearClosed": _closed,
    "PenaltyAssessed": _penalty,
    "AccountFrozen": _frozen,
    "AccountUnfrozen": _unfrozen,
    "AccountClosed": _account_closed,
    "AccountPolicySet": _policy,
    "TransferPending": _pending,
    "TransferApproved": _pending_done,
    "TransferCancelled": _pending_done,
    "EntryReversed": _reversed,
    "PlanPublished": _plan_published,
    "DeductionOrdered": _deduction_ordered,
    "ComplianceYearEnforced": _enforced,
    "PenaltyRecorded": _no_state,
    "AllocationCutOrdered": _cut_ordered,
    "AllowancesCarriedOver": _carried_over,
}
