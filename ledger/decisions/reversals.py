"""Reversals: the regulator undoes one recorded issuance, transfer, surrender or verification by a new event
that names it. The original stays in the log; the reversal is refused a second time, once the compliance year
concerned is closed (enforced), or when the units it would take back are no longer there (or are frozen or
reserved)."""

from __future__ import annotations

from typing import Any

from ledger.decisions.base import Decided
from ledger.errors import Refused
from ledger.model import REVERSIBLE, LedgerState, entry_year, verification_key


def reverse(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    pos = a["position"]
    env = st.recorded_event(pos)  # from the log: the state keeps no copy of every reversible event
    t, e = (env["type"], env["data"]) if env is not None else (None, {})
    if env is None or t not in REVERSIBLE or st.is_final(entry_year(t, e)):
        why = "beyond the head" if pos > st.position else (
            "not an issuance, transfer, surrender or verification, or its compliance year is closed (enforced)")
        raise Refused(f"position {pos} cannot be reversed: {why}", code="not_reversible")
    if pos in st.reversed:
        raise Refused(f"position {pos} ({t}) was reversed already, at position {st.reversed[pos]}",
                      code="already_reversed")
    data: dict[str, Any] = {"reversed_position": pos, "reversed_type": t, "reason": a["reason"]}
    if t == "AllowancesIssued":
        _take_back(st, e["account_id"], e, now)
        data.update(account_id=e["account_id"], unit=e["unit"], vintage=e["vintage"], quantity=e["quantity"],
                    basis=e["basis"])
        for k in ("year", "firm_id"):
            if e.get(k):
                data[k] = e[k]
    elif t == "AllowancesTransferred":
        st.check_account_open(e["from_account"])
        _take_back(st, e["to_account"], e, now)
        data.update(from_account=e["to_account"], to_account=e["from_account"], unit=e["unit"], vintage=e["vintage"],
                    quantity=e["quantity"])
    elif t == "AllowancesSurrendered":
        back_to = e.get("from_account") or e["firm_id"]
        st.check_account_open(back_to)
        st.check_open_period(e["year"])
        data.update(firm_id=e["firm_id"], account_id=back_to, year=e["year"], unit=e["unit"], vintage=e["vintage"],
                    quantity=e["quantity"], eligible=e.get("eligible"))  # eligible CCER given back as such
    else:
        key = verification_key(e)
        if st.verified_at.get(key) != pos:
            raise Refused(f"the verification at position {pos} was replaced by the one at position"
                          f" {st.verified_at.get(key)}: reverse that one first", code="superseded")
        data.update(firm_id=e["firm_id"], year=e["year"], facility_id=e.get("facility_id"))
        prev = st.verifications[pos][1]
        if prev is not None and prev in st.verifications:
            p = st.verifications[prev][0]
            data.update(tonnes=p["tonnes"], output=p.get("output"), output_unit=p.get("output_unit"),
                        restores_position=prev)
    return [("EntryReversed", {k: v for k, v in data.items() if v is not None})], {"reversed_position": pos}


def _take_back(st: LedgerState, account_id: str, e: dict[str, Any], now: str) -> None:
    """The units of the original must still be in `account_id`, free to move: not frozen, not reserved."""
    acc = st.check_account_open(account_id)
    if acc.frozen_at(now):
        raise Refused(f"account {account_id} is {acc.state_at(now)}: its units cannot be taken back",
                      code="account_frozen")
    try:
        st.check_holding_covers(account_id, e["unit"], e["vintage"], e["quantity"], now)
    except Refused as r:
        raise Refused(f"the units are no longer there: {r.message}", code="units_gone") from None
