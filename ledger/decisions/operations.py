"""Decisions of a registry's operations: freezing, unfreezing and closing accounts, and four-eyes transfers.

A frozen account can receive units but not send them (transfer, sale, cancellation); forced compliance may
still surrender from it. An account with approvals 2 sends nothing on one person's word: a transfer from it
is recorded as pending, reserving its units, until a second actor of the same firm approves it, someone
cancels it, or it expires (the registry's time, `now`, past its `expires_at`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ledger.decisions.base import Decided
from ledger.errors import Refused
from ledger.model import Account, LedgerState, Pending

DEFAULT_PENDING_SECONDS = 7 * 86_400  # a pending transfer waits a week of the registry's clock for approval


def _later(now: str, seconds: int) -> str:
    t = dt.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _role(st: LedgerState, actor: str) -> str | None:
    a = st.actors.get(actor)
    return a.role if a is not None else None


def _acts_for(st: LedgerState, actor: str, acc: Account) -> bool:
    """A firm actor of the account's holder (on an open store, which authenticates nobody: anyone)."""
    if not st.enforced:
        return True
    a = st.actors.get(actor)
    return a is not None and a.role == "firm" and (acc.account_id == a.firm_id or acc.holder == a.firm_id)


def account_freeze(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    acc = st.check_account_open(a["account_id"])
    if acc.frozen_at(now):
        raise Refused(f"account {acc.account_id} is {acc.state_at(now)} already", code="account_frozen")
    if a.get("until") is not None and a["until"] < now[:10]:
        raise Refused(f"--until {a['until']} is before the registry's date {now[:10]}", code="freeze_until_past")
    return [("AccountFrozen", {"account_id": acc.account_id, "reason": a["reason"], "until": a.get("until")})], {}


def account_unfreeze(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    acc = st.check_account_open(a["account_id"])
    if not acc.frozen_at(now):
        raise Refused(f"account {acc.account_id} is {acc.state_at(now)}, not frozen", code="account_not_frozen")
    return [("AccountUnfrozen", {"account_id": acc.account_id})], {}


def account_close(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    acc = st.check_account_open(a["account_id"])
    aid, sweep = acc.account_id, a.get("sweep_to")
    if acc.frozen_at(now):
        raise Refused(f"account {aid} is {acc.state_at(now)}: unfreeze it before closing it", code="account_frozen")
    waiting = sorted(p.transfer_id for p in st.pending.values() if aid in (p.from_account, p.to_account))
    if waiting:
        raise Refused(f"account {aid} ({acc.state_at(now)}) has pending transfers {', '.join(waiting)}: approve"
                      " or cancel them before closing it", code="pending_transfers")
    held = sorted((k, q) for k, q in st.holdings.items() if k[0] == aid)
    events: list[tuple[str, dict[str, Any]]] = []
    if sweep is not None:
        if sweep == aid:
            raise Refused(f"account {aid} cannot be swept into itself", code="same_account")
        dst = st.check_account_open(sweep)
        if dst.kind != "government":
            raise Refused(f"--sweep-to {sweep} is a {dst.kind} account; units are swept to a government account",
                          code="sweep_not_government")
        events = [("AllowancesTransferred", {"from_account": aid, "to_account": sweep, "unit": u, "vintage": v,
                                             "quantity": q}) for (_, u, v), q in held]
    elif held:
        total = sum(q for _, q in held)
        raise Refused(f"account {aid} ({acc.state_at(now)}) holds {total} t in {len(held)} holdings: move them, or"
                      " sweep them with --sweep-to GOVERNMENT_ACCOUNT", code="account_not_empty")
    events.append(("AccountClosed", {"account_id": aid, "swept_to": sweep}))
    return events, ({"swept": sum(q for _, q in held)} if sweep else {})


def account_policy(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    acc = st.check_account_open(a["account_id"])
    n = a["approvals"]
    if n > 1 and not st.enforced:
        raise Refused("four-eyes transfers need a store that enforces roles (init --regulator): an open store"
                      " cannot tell two people apart", code="four_eyes_needs_roles")
    if st.enforced and _role(st, actor) != "regulator" and not _acts_for(st, actor, acc):
        raise Refused(f"actor {actor} does not act for account {acc.account_id}", code="not_own_account")
    if n == acc.approvals:
        raise Refused(f"account {acc.account_id} already needs {n} approval(s)", code="policy_unchanged")
    if n < acc.approvals and st.enforced and _role(st, actor) != "regulator":
        raise Refused(f"lowering the approvals of account {acc.account_id} to {n} needs the regulator: one"
                      " person cannot lift the four-eyes rule", code="policy_lowering")
    return [("AccountPolicySet", {"account_id": acc.account_id, "approvals": n})], {}


def transfer(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    """A transfer: recorded at once, or as a pending transfer when the sending account needs two people."""
    if a["from_account"] == a["to_account"]:
        raise Refused("a transfer needs two different accounts", code="same_account")
    src = st.check_can_send(a["from_account"], now)
    st.check_account_open(a["to_account"])
    st.check_holding_covers(a["from_account"], a["unit"], a["vintage"], a["quantity"], now)
    moved = {k: a[k] for k in ("from_account", "to_account", "unit", "vintage", "quantity")}
    if src.approvals < 2:
        if a.get("expires_after"):
            raise Refused(f"--expires-after applies to four-eyes accounts; account {src.account_id} needs one"
                          " person", code="no_approval_policy")
        return [("AllowancesTransferred", moved)], {}
    seconds = int(a["expires_after"][:-1]) if a.get("expires_after") else DEFAULT_PENDING_SECONDS
    tid = f"P-{st.position + 1:06d}"
    expires = _later(now, seconds)
    return [("TransferPending", {"transfer_id": tid, **moved, "initiator": actor, "expires_at": expires})], \
        {"transfer_id": tid, "expires_at": expires}


def _pending(st: LedgerState, tid: str) -> Pending:
    p = st.pending.get(tid)
    if p is None:
        raise Refused(f"no pending transfer {tid} (never recorded, or approved or cancelled already)",
                      code="unknown_pending_transfer")
    return p


def transfer_approve(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    p = _pending(st, a["transfer_id"])
    if actor == p.initiator:
        raise Refused(f"actor {actor} initiated transfer {p.transfer_id} and cannot approve it: a second person"
                      " of the firm does", code="self_approval")
    src = st.accounts[p.from_account]
    if not _acts_for(st, actor, src):
        raise Refused(f"actor {actor} does not act for account {p.from_account}: only another actor of its firm"
                      f" approves transfer {p.transfer_id}", code="not_own_account")
    if now > p.expires_at:
        raise Refused(f"pending transfer {p.transfer_id} expired at {p.expires_at} (it is now {now}); record it"
                      " again", code="pending_expired")
    st.check_can_send(p.from_account, now)
    st.check_account_open(p.to_account)
    free = st.available(p.from_account, p.unit, p.vintage, now) + p.quantity  # its own reservation is its own
    if free < p.quantity:
        raise Refused(f"account {p.from_account} has {free} t of {p.unit} {p.vintage} free for transfer"
                      f" {p.transfer_id} of {p.quantity} t", code="insufficient_holding")
    return [("TransferApproved", {"transfer_id": p.transfer_id, "approver": actor}),
            ("AllowancesTransferred", {"from_account": p.from_account, "to_account": p.to_account, "unit": p.unit,
                                       "vintage": p.vintage, "quantity": p.quantity})], {"transfer_id": p.transfer_id}


def transfer_cancel(st: LedgerState, a: dict[str, Any], actor: str, now: str) -> Decided:
    p = _pending(st, a["transfer_id"])
    if _role(st, actor) != "regulator" and not _acts_for(st, actor, st.accounts[p.from_account]):
        raise Refused(f"actor {actor} does not act for account {p.from_account}", code="not_own_account")
    return [("TransferCancelled", {"transfer_id": p.transfer_id, "by": actor})], {"transfer_id": p.transfer_id}
