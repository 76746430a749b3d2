"""The decisions: for each command, check it against the ledger's state and say which events to record.

A decision is a pure function of the state, the normalized arguments, the actor and the time the command is
recorded at (`now`, as recorded_at: YYYY-MM-DDTHH:MM:SSZ), so that deciding it again gives the same events.

`record` is the one path by which events come to be. The registry runs it to record a command; the
re-execution audit (ledger.verify) runs it again on each recorded command, against the fold of the
events before it, and checks that the stored events are exactly the ones it returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from ledger.authority import authorize, check_signature
from ledger.decisions import (
    accounts,
    allocation,
    carryover,
    compliance,
    enforcement,
    forced,
    operations,
    reversals,
    trading,
)
from ledger.decisions.base import Decided
from ledger.errors import Refused
from ledger.events import canonical_bytes
from ledger.model import LedgerState

DECIDE: dict[str, Callable[[LedgerState, dict[str, Any], str, str], Decided]] = {
    "init": accounts.init,
    "actor add": accounts.actor_add,
    "actor key": accounts.actor_key,
    "firm register": accounts.firm_register,
    "facility register": accounts.facility_register,
    "account open": accounts.account_open,
    "cancel": accounts.cancel,
    "year open": compliance.year_open,
    "year close": compliance.year_close,
    "year enforce": enforcement.year_enforce,
    "penalty record": enforcement.penalty_record,
    "penalty cut": enforcement.penalty_cut,
    "emissions verify": compliance.verify,
    "surrender": compliance.surrender,
    "issue": allocation.issue,
    "allocate": forced.allocate,  # allocation.allocate, or into the province's account (--to-authority)
    "transfer": operations.transfer,
    "transfer approve": operations.transfer_approve,
    "transfer cancel": operations.transfer_cancel,
    "account freeze": operations.account_freeze,
    "account unfreeze": operations.account_unfreeze,
    "account close": operations.account_close,
    "account policy": operations.account_policy,
    "reverse": reversals.reverse,
    "rules publish": allocation.plan_publish,
    "trade": trading.trade,
    "carry-over apply": carryover.carry_over,
}


def command_digest(name: str, args: dict[str, Any]) -> str:
    """What a command id is bound to: a repeat of the id with another command is refused."""
    return hashlib.sha256(orjson.dumps({"c": name, "a": args}, option=orjson.OPT_SORT_KEYS)).hexdigest()


def record(st: LedgerState, name: str, args: dict[str, Any], command_id: str, actor_id: str | None,
           signature: dict[str, Any] | None, recorded_at: str,
           hashed: bool = True) -> tuple[list[dict[str, Any]], list[bytes], dict]:
    """Decide one command (normalized `args`) and advance `st` by its events.

    Returns the event envelopes, their canonical bytes and the command's result; raises the LedgerError
    that refuses it (then `st` is unchanged). The first event records the command itself (name and
    arguments) and its signature, so that an auditor can decide it again. With hashed=False the caller, who
    holds the stored chain, keeps st.hash itself.
    """
    actor = authorize(st, name, args, actor_id)
    check_signature(st, name, command_id, args, actor, signature, recorded_at)
    decided, extra = DECIDE[name](st, args, actor, recorded_at)
    if not decided:
        raise Refused(f"{name}: nothing to record", code="nothing_to_record")
    first = st.position + 1
    envs, blobs = [], []
    for i, (etype, data) in enumerate(decided):
        env = {"position": st.position + 1, "type": etype, "recorded_at": recorded_at, "actor": actor,
               "command_id": command_id, "data": data}
        if i == 0:
            env["command"] = {"name": name, "args": args}
            if signature is not None:
                env["signature"] = signature
        blob = canonical_bytes(env)
        if hashed:
            st.advance(env, blob)
        else:
            st.apply(env)
        envs.append(env)
        blobs.append(blob)
    result = {"command": name, "command_id": command_id, "first_position": first, "position": st.position,
              "events": [e["type"] for e in envs], **extra}
    return envs, blobs, result
