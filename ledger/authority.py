"""Who may do what: roles on an enforced store, and the Ed25519 signatures that bind a command to its actor.

A signature covers the store's identity (the chain hash of its first event, so it is valid in one store
only), the command's name, id and normalized arguments, and an expiry time after which the registry
refuses it (so a signed command that was refused cannot be replayed later by whoever saw it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ledger.errors import Refused
from ledger.model import LedgerState

OPEN_STORE_ACTOR = "operator"

# Who may run what on an enforced store.
RIGHTS: dict[str, tuple[str, ...]] = {
    "actor add": ("regulator",),
    "actor key": ("regulator",),
    "firm register": ("regulator",),
    "facility register": ("regulator",),
    "account open": ("regulator",),
    "year open": ("regulator",),
    "year close": ("regulator",),
    "year enforce": ("regulator",),
    "penalty record": ("regulator",),
    "penalty cut": ("regulator",),
    "issue": ("regulator",),
    "allocate": ("regulator",),
    "rules publish": ("regulator",),
    "emissions verify": ("regulator", "verifier"),
    "trade": ("exchange",),
    "transfer": ("firm", "regulator"),
    "surrender": ("firm", "regulator"),  # the regulator only with --from (forced compliance)
    "cancel": ("firm", "regulator"),
    "account freeze": ("regulator",),
    "account unfreeze": ("regulator",),
    "account close": ("regulator",),
    "account policy": ("firm", "regulator"),  # the decision checks the firm's own account, and who may lower it
    "transfer approve": ("firm",),  # the decision checks: another actor of the sending account's firm
    "transfer cancel": ("firm", "regulator"),
    "reverse": ("regulator",),
    "carry-over apply": ("firm", "regulator"),  # a firm for its own compliance account (checked below)
}
# The commands that move units out of one account, and the argument naming it.
OWN_ACCOUNT_ONLY = {"transfer": "from_account", "surrender": "firm_id", "cancel": "account_id"}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")  # UTC to the second, as recorded_at


def authorize(st: LedgerState, name: str, args: dict[str, Any], actor_id: str | None) -> str:
    """The actor the command is recorded as, or Refused naming the missing right."""
    if name == "init":
        if st.position:
            raise Refused("init creates a new store; this store already holds events", code="store_not_empty")
        return args["regulator"]
    if not st.enforced:
        return OPEN_STORE_ACTOR  # an open store authenticates nobody: a name given with --as is not recorded
    if not actor_id:
        raise Refused(f"{name}: this store enforces roles; name the actor with --as or CARBON_LEDGER_ACTOR",
                      code="no_actor")
    actor = st.actors.get(actor_id)
    if actor is None:
        raise Refused(f"actor {actor_id} is not registered in this store", code="unknown_actor")
    allowed = RIGHTS.get(name, ())
    if actor.role not in allowed:
        raise Refused(f"actor {actor_id} ({actor.role}) lacks the right to {name}"
                      f" (needs {' or '.join(allowed)})", code="not_permitted")
    if name == "surrender" and actor.role == "regulator":
        if args.get("from_account") is None:
            raise Refused(f"actor {actor_id} (regulator) surrenders only by forced compliance, with --from an"
                          " account on the firm's behalf", code="not_permitted")
        return actor_id  # forced compliance: the decision checks the account it surrenders from
    if name == "carry-over apply" and actor.role == "firm" and args["firm_id"] != actor.firm_id:
        raise Refused(f"actor {actor_id} (firm {actor.firm_id}) lacks the right to {name} for firm {args['firm_id']}",
                      code="not_own_account")
    if name in OWN_ACCOUNT_ONLY:
        account_id = args.get("from_account") or args[OWN_ACCOUNT_ONLY[name]]
        acc = st.accounts.get(account_id)
        if actor.role == "regulator" and acc is not None and acc.kind != "government":
            raise Refused(f"actor {actor_id} (regulator) lacks the right to {name} from {acc.kind} account"
                          f" {acc.account_id}: only its holder moves it", code="not_own_account")
        if actor.role == "firm":
            owns = account_id == actor.firm_id or (acc is not None and acc.holder == actor.firm_id)
            if not owns:
                raise Refused(f"actor {actor_id} (firm {actor.firm_id}) lacks the right to {name}"
                              f" from account {account_id}", code="not_own_account")
    return actor_id


def check_signature(st: LedgerState, name: str, command_id: str, args: dict[str, Any], actor: str,
                    signature: dict[str, Any] | None, now: str) -> None:
    """Refused unless the signature (if any, and if required) verifies for `actor` in this store at `now`."""
    if signature is None:
        if st.require_signatures and name != "init":
            raise Refused(f"{name}: this store requires signed commands; sign with --key", code="unsigned")
        return
    key = args.get("public_key") if name == "init" else getattr(st.actors.get(actor), "public_key", None)
    if key is None:
        raise Refused(f"actor {actor} has no registered public key to check the signature against",
                      code="no_public_key")
    sig, expires = signature.get("sig"), signature.get("expires")
    if not isinstance(sig, str) or not isinstance(expires, str) or not TIMESTAMP.fullmatch(expires):
        raise Refused(f"the signature on {name} lacks its hex value or its expiry (YYYY-MM-DDTHH:MM:SSZ)",
                      code="bad_signature")
    if expires < now:
        raise Refused(f"the signature on {name} expired at {expires} (it is now {now}); sign it again",
                      code="signature_expired")
    from ledger import signing  # cryptography loads only when a command is signed

    if not signing.verify(key, sig, signing.command_payload(st.store_id, name, command_id, args, expires)):
        raise Refused(f"the signature on {name} does not verify for actor {actor} in this store",
                      code="bad_signature")


REQUEST_WINDOW_S = 300  # a signed read request is valid this long either side of the server's clock
MAX_NONCE_CHARS = 64


class MemoryNonces:
    """The nonces seen within their window, in this process only (a server on a store it cannot write)."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def claim(self, nonce: str, until: float, now: float) -> bool:
        for old in [n for n, t in self.seen.items() if t < now]:
            del self.seen[old]
        if nonce in self.seen:
            return False
        self.seen[nonce] = until
        return True


def check_request(st: LedgerState, actor_id: str, timestamp: str, nonce: str, signature: str, payload: bytes,
                  now: float, claim_nonce: Callable[[str, float, float], bool]) -> str:
    """The role of the actor whose signed read request this is, or Refused (unauthenticated).
    `claim_nonce(nonce, until, now)` records a nonce once the signature verifies, atomically, and says False
    when it was seen before within its window (a replay): every server process on a store shares one record
    of them (the store's `ledger_nonces`), so a request replayed to another worker is refused too."""
    import datetime as dt

    actor = st.actors.get(actor_id)
    if actor is None or actor.public_key is None:
        raise Refused(f"actor {actor_id} is not registered with a public key in this store", code="unknown_actor")
    if not TIMESTAMP.fullmatch(timestamp):
        raise Refused("the request's timestamp is not YYYY-MM-DDTHH:MM:SSZ", code="bad_signature")
    at = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    if abs(now - at) > REQUEST_WINDOW_S:
        raise Refused(f"the request was signed at {timestamp}, outside {REQUEST_WINDOW_S} s of the server's clock",
                      code="signature_expired")
    if not nonce or len(nonce) > MAX_NONCE_CHARS:
        raise Refused(f"the request needs a nonce of 1 to {MAX_NONCE_CHARS} characters", code="bad_signature")
    from ledger import signing

    if not signing.verify(actor.public_key, signature, payload):
        raise Refused(f"the request's signature does not verify for actor {actor_id} in this store",
                      code="bad_signature")
    if not claim_nonce(nonce, now + 2 * REQUEST_WINDOW_S, now):
        raise Refused("the request's nonce was used before (replayed?)", code="replayed")
    return actor.role
