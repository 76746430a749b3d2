"""The registry: an eventsourcing Application that runs commands and commits what they record.

Each command is decided against the ledger's state (ledger.decisions, with the rights and signatures of
ledger.authority), then recorded as catalogue events, hash-chained, in one transaction together with its
command id. Commands run one at a time (the CLI) or in atomic batches (`import`, the simulator): the same
checks, the same events. A write that loses a race to another writer (IntegrityError on the next position)
is retried on the new state.

A writer never acts on a state it cannot tie to the chain: the snapshot it starts from must carry the
chain hash stored at its position, every event it folds after it must extend the chain, and the command
ids it knows must be as many as the commands it folded. Anything else is an IntegrityFailure (exit 3)
and nothing is appended.
"""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent

from ledger.authority import OPEN_STORE_ACTOR, RIGHTS, authorize
from ledger.decisions import DECIDE, command_digest, record
from ledger.errors import Conflict, IntegrityFailure, LedgerError, Refused, StoreError
from ledger.events import TOPIC_PREFIX, chain_hash
from ledger.inputs import INPUTS, parse_command
from ledger.model import SNAPSHOT_VERSION, LedgerState, Period
from ledger.store import StoreConfig, parse_store
from ledger.units import parse_command_id
from ledger.verify import Bad, Reexecution

LEDGER_ID = uuid.uuid5(uuid.NAMESPACE_URL, "https://carbon-ledger.invalid/ledger")
SNAPSHOT_EVERY = 1000  # events between write-side snapshots: a command starting up folds at most this many (~15 ms)
MAX_ATTEMPTS = 20  # retries of a command that lost a race to another writer
SIGNATURE_LIFETIME = dt.timedelta(minutes=10)  # how long a signature made by the CLI stays valid


@dataclass
class Command:
    name: str
    args: dict[str, Any]
    command_id: str | None = None
    actor: str | None = None
    signature: str | None = None  # hex Ed25519 signature over ledger.signing.command_payload(...)
    checked: bool = False  # args are already parse_command's output (import validates the whole file first)
    expires: str | None = None  # the signature's expiry, YYYY-MM-DDTHH:MM:SSZ (part of what is signed)
    sign_with: Any = None  # an Ed25519 private key: the registry signs the command for this store as it runs it


@dataclass
class Outcome:
    """What a command did: its events' positions and a result for the user (replayed=True if repeated)."""

    command_id: str
    first_position: int
    position: int
    result: dict[str, Any]
    replayed: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(t: dt.datetime) -> str:
    """A time as the ledger records it: UTC, to the second."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry(Application):
    """carbon-ledger's write side. `Registry(store_url)`; then `execute(Command(...))` or one method per command."""

    name = "CarbonLedger"

    def __init__(self, store: str | StoreConfig | None = None, *, clock: Callable[[], dt.datetime] | None = None):
        self.config = store if isinstance(store, StoreConfig) else parse_store(store)
        try:
            super().__init__(env=self.config.env())
        except (PersistenceError, OSError) as e:
            raise StoreError(f"cannot open store {self.config.url}: {e}") from None
        self.clock = clock or _utc_now
        self._state: LedgerState | None = None
        self._snapshot_position = 0
        self._inflight: dict[int, dict[str, Any]] = {}  # this batch's events, not yet committed, by position

    # ---- state ----------------------------------------------------------------------
    @property
    def state(self) -> LedgerState:
        """The fold of the whole log, tied to the chain (IntegrityFailure where it cannot be)."""
        if self._state is None:
            st = self._load_state()
            st.event_source = self._event_at
            self._catch_up(st)
            self._check_command_ids(st)
            self._state = st
            if st.position - self._snapshot_position >= SNAPSHOT_EVERY:
                # A missing, old-shaped or far-behind snapshot is replaced now, not at the next commit:
                # a run of refused commands would otherwise each refold the log.
                self.recorder.save_snapshot("ledger", st.position, orjson.dumps(st.to_snapshot()))
                self._snapshot_position = st.position
            return st
        self._catch_up(self._state)
        return self._state

    @property
    def store_id(self) -> str:
        """The store's identity, which signatures are bound to: the chain hash of its first event."""
        return self.state.store_id

    def signing_context(self, actor: str | None) -> tuple[str, str] | None:
        """(store id, the actor's public key) in the fold as this registry last held it, without reading the store,
        or None. Another thread may ask (the server's signature checker): what it answers is only ever used to
        check a signature early (signing.remember_valid); the command is decided on the registry's own state."""
        st = self._state
        found = None if st is None or actor is None else st.actors.get(actor)
        key = getattr(found, "public_key", None)
        return None if key is None or not st.store_id else (st.store_id, key)

    def _load_state(self) -> LedgerState:
        snap = self.recorder.load_snapshot()
        self._snapshot_position = 0
        if snap:
            data = orjson.loads(snap[1])
            if isinstance(data, dict) and data.get("version") == SNAPSHOT_VERSION:
                if data.get("position") != snap[0] or self.recorder.hash_at(snap[0]) != data.get("hash"):
                    raise IntegrityFailure(f"integrity failure at position {snap[0]}: the write-side snapshot"
                                           " does not match the hash chain there (forged or stale)",
                                           position=snap[0])
                self._snapshot_position = snap[0]
                return LedgerState.from_snapshot(data)
        # No snapshot, or one of an older shape: fold the log from the start (`state` then writes one).
        return LedgerState()

    def _event_at(self, position: int) -> dict[str, Any] | None:
        """One recorded event by position (a reversal reads the event it undoes): this batch's, or the store's."""
        env = self._inflight.get(position)
        if env is None:
            blob = self.recorder.events_at([position]).get(position)
            env = None if blob is None else orjson.loads(blob)
        return env

    def _catch_up(self, st: LedgerState) -> None:
        """Fold the events after st.position, each checked against the chain and decided again from its command
        (ledger.verify.Reexecution): a writer never decides on an event the registry would not have recorded."""
        re_ = Reexecution(st)
        h = st.hash
        pos = st.position
        try:
            for pos, stored_hash, blob in self.recorder.read_events(after=st.position):
                h = chain_hash(h, blob)
                if h != stored_hash:
                    raise Bad(pos, "the stored event does not extend the hash chain (changed, missing or reordered)")
                re_.feed(pos, blob, h)
            re_.finish(pos)
        except Bad as bad:
            self._state = None
            raise IntegrityFailure(f"integrity failure at position {bad.position}: {bad.reason}; nothing was"
                                   " recorded (run `audit verify`)", position=bad.position) from None

    def _check_command_ids(self, st: LedgerState) -> None:
        """Every recorded command has its command-id row: one deleted would let the command run twice."""
        for _ in range(5):
            count, head = self.recorder.command_count_and_head()
            if head != st.position:
                self._catch_up(st)  # another writer committed meanwhile: count again on its state
                continue
            if count < st.commands:
                raise IntegrityFailure(f"integrity failure: the store knows {count} command ids for {st.commands}"
                                       " recorded commands (rows deleted?); run `audit verify`")
            if count > st.commands:
                raise IntegrityFailure(f"integrity failure: the store knows {count} command ids for {st.commands}"
                                       " recorded commands (rows inserted?); run `audit verify`")
            return

    def head(self) -> tuple[int, str]:
        return self.recorder.head()

    # ---- running commands -------------------------------------------------------------
    def execute(self, cmd: Command) -> Outcome:
        """Run one command; raises the LedgerError that refused it."""
        (result,) = self.execute_batch([cmd])
        if isinstance(result, LedgerError):
            raise result
        return result

    def execute_batch(self, cmds: Sequence[Command], on_refusal: str = "stop") -> list[Outcome | LedgerError]:
        """Run commands in order and commit what they recorded in one transaction.

        A refused command records nothing; with on_refusal="stop" the commands after it
        are not run (and get no entry in the returned list).
        """
        with self.recorder.writer_lock():
            return self._execute_batch(cmds, on_refusal)

    def _execute_batch(self, cmds: Sequence[Command], on_refusal: str) -> list[Outcome | LedgerError]:
        last_error: Exception | None = None
        for _attempt in range(MAX_ATTEMPTS):
            st = self.state
            self._inflight = {}
            seen = self.recorder.lookup_commands([c.command_id for c in cmds if c.command_id])
            blobs: list[tuple[str, bytes]] = []
            rows: list[tuple] = []
            results: list[Outcome | LedgerError] = []
            try:
                for cmd in cmds:
                    try:
                        results.append(self._run_one(st, cmd, seen, blobs, rows))
                    except LedgerError as e:
                        results.append(e)
                        if on_refusal == "stop":
                            break
                if blobs:
                    self._commit(st, blobs, rows)
                self._inflight = {}
                return results
            except IntegrityError as e:  # another writer took the next position: retry on the new state
                last_error = e
                self._state = None
            except PersistenceError as e:
                self._state = None
                raise StoreError(f"store write failed: {e}") from None
            except BaseException:
                self._state = None  # the in-memory fold may hold uncommitted events
                raise
        raise Conflict(f"gave up after {MAX_ATTEMPTS} conflicting writes: {last_error}")

    def _commit(self, st: LedgerState, blobs: list[tuple[str, bytes]], rows: list[tuple]) -> None:
        """Append the batch's events (topic, canonical bytes), its command-id rows and, when due, a snapshot."""
        first = st.position - len(blobs) + 1
        stored = [StoredEvent(originator_id=LEDGER_ID, originator_version=first + i, topic=topic, state=blob)
                  for i, (topic, blob) in enumerate(blobs)]
        snapshot = None
        if st.position - self._snapshot_position >= SNAPSHOT_EVERY:
            snapshot = ("ledger", st.position, orjson.dumps(st.to_snapshot()))
        self.recorder.insert_events(stored, commands=rows, snapshot=snapshot)
        if snapshot is not None:
            self._snapshot_position = st.position

    def _recorded_at(self) -> str:
        """The clock's time as stored, to the second (formatted once per second: a bulk import asks often)."""
        now = self.clock()
        second = now.timestamp() // 1
        if second != getattr(self, "_recorded_second", None):
            self._recorded_text = timestamp(now)
            self._recorded_second = second
        return self._recorded_text

    def _run_one(self, st: LedgerState, cmd: Command, seen: dict[str, tuple], blobs: list, rows: list) -> Outcome:
        args = cmd.args if cmd.checked else parse_command(cmd.name, cmd.args)
        command_id = parse_command_id(cmd.command_id) if cmd.command_id else uuid.uuid4().hex
        digest = command_digest(cmd.name, args)
        authorize(st, cmd.name, args, cmd.actor)  # a repeat reveals its result only to the allowed
        if command_id in seen:
            d, first, last, result = seen[command_id]
            if d != digest:
                raise Refused(f"command id {command_id} was already used for a different command",
                              code="command_id_reused")
            return Outcome(command_id, first, last, orjson.loads(result), replayed=True)
        sig, expires = cmd.signature, cmd.expires
        if sig is None and cmd.sign_with is not None:  # signed here: the store id may be born in this batch
            from ledger import signing

            expires = timestamp(self.clock() + SIGNATURE_LIFETIME)
            sig = signing.sign_command(cmd.sign_with, st.store_id, cmd.name, command_id, args, expires)
        signature = None if sig is None else {"sig": sig, "expires": expires}
        envs, new_blobs, result = record(st, cmd.name, args, command_id, cmd.actor, signature, self._recorded_at())
        blobs.extend((TOPIC_PREFIX + e["type"], b) for e, b in zip(envs, new_blobs, strict=True))
        for e in envs:
            self._inflight[e["position"]] = e
        row = (command_id, digest, result["first_position"], st.position, orjson.dumps(result))
        rows.append(row)
        seen[command_id] = row[1:]
        return Outcome(command_id, result["first_position"], st.position, result, events=envs)


# ---- one method per command: the typed command API, derived from the input models -------------------
# `reg.transfer("F1", "F2", "CEA", 2024, 100)` is `reg.execute(Command("transfer", {...}))`: the parameters
# are the input model's fields in order (ledger.inputs.INPUTS), then keyword-only command_id, actor,
# signature, expires and sign_with. Nothing is restated here: a new command gets its method from its model.
METHOD_NAMES = {"init": "init", "actor add": "add_actor", "actor key": "register_key", "firm register": "register_firm",
                "account open": "open_account", "year open": "open_year", "year close": "close_year",
                "emissions verify": "verify_emissions", "account freeze": "freeze_account",
                "account unfreeze": "unfreeze_account", "account close": "close_account", "account policy": "set_policy",
                "transfer approve": "approve_transfer", "transfer cancel": "cancel_transfer",
                "facility register": "register_facility", "rules publish": "publish_plan",
                "carry-over apply": "carry_over"}
_RUN_OPTIONS = ("command_id", "actor", "signature", "expires", "sign_with")


def _command_method(name: str, model: Any) -> Callable[..., Outcome]:
    fields = [inspect.Parameter(f, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=info.annotation,
                                default=inspect.Parameter.empty if info.is_required() else info.default)
              for f, info in model.model_fields.items()]
    options = [inspect.Parameter(o, inspect.Parameter.KEYWORD_ONLY, default=None) for o in _RUN_OPTIONS]
    signature = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *fields, *options],
                                  return_annotation=Outcome)

    def method(self: Registry, *a: Any, **kw: Any) -> Outcome:
        bound = signature.bind(self, *a, **kw)
        given = bound.arguments
        args = {f.name: given[f.name] for f in fields if given.get(f.name) is not None}
        actor = given.get("actor") or (args.get("regulator") if name == "init" else None)
        return self.execute(Command(name, args, given.get("command_id"), actor, given.get("signature"),
                                    expires=given.get("expires"), sign_with=given.get("sign_with")))

    method.__name__ = method.__qualname__ = METHOD_NAMES.get(name, name.replace(" ", "_"))
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__doc__ = f"Run `{name}`: {(model.__doc__ or '').strip()}"
    return method


for _name, _model in INPUTS.items():
    if not hasattr(Registry, METHOD_NAMES.get(_name, _name.replace(" ", "_"))):
        setattr(Registry, METHOD_NAMES.get(_name, _name.replace(" ", "_")), _command_method(_name, _model))


__all__ = ["DECIDE", "OPEN_STORE_ACTOR", "RIGHTS", "Command", "Outcome", "Period", "Registry"]
