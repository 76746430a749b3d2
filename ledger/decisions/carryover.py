"""Carry-over of the 2019-2024 vintages into 2025 allowances, by application (P23 annex 5; ledger.rules).

`standing` is what `carry-over show` prints and what `carry-over apply` is checked against: whether the firm
may apply, its net sales NS, its limit T = B + NS x R (at most its holding of those vintages, rounded down),
what it has converted and what remains.
"""

from __future__ import annotations

from typing import Any

from ledger import rules
from ledger.decisions.base import Decided, floor_t
from ledger.errors import Refused
from ledger.model import LedgerState


def ineligible_reason(st: LedgerState, fid: str) -> str | None:
    """Why the firm may not apply (it did not complete 2023 compliance by 31 Dec 2024 or 2024 compliance by 31 Dec
    2025), or None. A firm found short at a period's close (a PenaltyAssessed: a late surrender does not undo it)
    did not complete it; for a period not yet closed, a firm short of its obligation has not completed it."""
    for year in rules.CARRY_OVER_COMPLIANCE_YEARS:
        period = st.period_of(year)
        if period is None:
            continue
        if (fid, period.label) in st.penalized:
            return f"firm {fid} did not complete its {period.label} compliance by the deadline ({period.deadline})"
        if not period.closed and st.has_obligation(fid, period):
            obligation = st.obligation(fid, period)
            if obligation is not None and st.surrendered_in(fid, period) < obligation:
                return f"firm {fid} has not completed its {period.label} compliance"
    return None


def standing(st: LedgerState, fid: str, now: str | None = None) -> dict[str, Any]:
    """{"firm_id", "eligible", "reason", "net_sales", "limit", "converted", "remaining"} (an ineligible firm's limit
    is 0). The holding cap is read at the registry's time: the firm's compliance account's 2019-2024 CEA (less what
    pending transfers reserve; frozen units count), plus what it has carried over already."""
    reason = ineligible_reason(st, fid)
    net_sales = max(0, st.carry_sales.get(fid, 0))
    converted = st.carried.get(fid, 0)
    limit = 0
    if reason is None:
        held = sum(st.available(fid, "CEA", v, now) for v in rules.CARRY_OVER_VINTAGES)
        limit = min(floor_t(rules.CARRY_OVER_BASE_T + rules.CARRY_OVER_RATIO * net_sales), held + converted)
    return {"firm_id": fid, "eligible": reason is None, "reason": reason, "net_sales": net_sales, "limit": limit,
            "converted": converted, "remaining": max(0, limit - converted)}


def carry_over(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    fid, vintage, q = a["firm_id"], a["vintage"], a["quantity"]
    st.check_firm(fid)
    vintages = rules.CARRY_OVER_VINTAGES
    if vintage not in vintages:
        raise Refused(f"only vintages {vintages[0]}-{vintages[-1]} are carried over into"
                      f" {rules.CARRY_OVER_TO_VINTAGE}, not {vintage}", code="carry_over_vintage")
    opens, closes = rules.CARRY_OVER_WINDOW
    if not opens <= now[:10] <= closes:
        raise Refused(f"carry-over applications are taken from {opens} to {closes}; the registry's date is"
                      f" {now[:10]}", code="carry_over_window")
    s = standing(st, fid, now)
    if not s["eligible"]:
        raise Refused(f"{s['reason']}: it may not apply for carry-over", code="not_eligible")
    st.check_can_send(fid, now)  # a frozen account's units stay as they are
    st.check_holding_covers(fid, "CEA", vintage, q, now)
    if q > s["remaining"]:
        raise Refused(f"firm {fid} may carry over {s['remaining']} t more (limit {s['limit']} t, net sales"
                      f" {s['net_sales']} t, {s['converted']} t carried over), fewer than {q} t",
                      code="carry_over_limit")
    data = {"firm_id": fid, "unit": "CEA", "from_vintage": vintage, "to_vintage": rules.CARRY_OVER_TO_VINTAGE,
            "quantity": q, "limit": s["limit"], "net_sales": s["net_sales"], "converted": s["converted"]}
    return [("AllowancesCarriedOver", data)], {"remaining": s["remaining"] - q}
