"""Forced compliance: a firm's allocation issued into its province's government account (for a firm under
judicial freeze or with an unpaid shortfall), from which the regulator surrenders on the firm's behalf
(`surrender FIRM --from GOV-...`, in ledger.decisions.compliance) and releases the rest by a transfer."""

from __future__ import annotations

from typing import Any

from ledger.decisions import allocation
from ledger.decisions.base import Decided
from ledger.errors import Refused
from ledger.model import LedgerState


def authority_account(st: LedgerState, region: str) -> str:
    """The open government account whose holder is the firm's province (its region)."""
    found = sorted(a.account_id for a in st.accounts.values()
                   if a.kind == "government" and a.open and a.holder.casefold() == region.casefold())
    if not found:
        raise Refused(f"no open government account is held by {region}: open one (account open GOV-... --kind"
                      f" government --holder {region})", code="no_authority_account")
    if len(found) > 1:
        raise Refused(f"{region} holds several government accounts ({', '.join(found)}): the province's account"
                      " must be one", code="authority_account_ambiguous")
    return found[0]


def allocate(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    """`allocate`, and with to_authority the same allocation issued into the province's account for the firm."""
    if not a.get("to_authority"):
        return allocation.allocate(st, a, actor, now)
    firm = st.check_firm(a["firm_id"])
    gov = authority_account(st, firm.region)
    events, extra = allocation.allocate(st, {k: v for k, v in a.items() if k != "to_authority"}, actor, now)
    out = []
    for t, d in events:
        if t == "AllowancesIssued":
            d = {**d, "account_id": gov, "firm_id": firm.firm_id}
        elif t == "AllowancesWithdrawn" and d["reason"] == "penalty deduction":
            d = {**d, "account_id": gov}  # deducted from what was just issued, where it was issued
        else:
            raise Refused(f"--to-authority issues an allocation; this one takes units back ({d.get('reason')}),"
                          f" which come from {firm.firm_id}'s own account: run allocate without it",
                          code="to_authority_clawback")
        out.append((t, d))
    return out, {**extra, "to_account": gov}
