"""The re-execution audit: every recorded command decided again, in log order, against the fold of the
events before it; the stored events must be exactly the ones the registry would have recorded.

One pass over the stored rows checks, for each position: the row's place in the hash chain (the chain
link proves the bytes did not change), and for each command (the events sharing its command id, the
first of which records the command's name, arguments and signature): its signature against the key its
actor had at that point, in this store; that the true state allows it; that its events follow from it
byte for byte (recorded_at and actor taken from the log); that its command-id row is its own (a command
id appears once). At the end: no command-id row without its command, and the write-side snapshot equal
to the fold at its position. Memory holds the fold's state and one page of rows, not the log.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import zip_longest
from typing import Any

import orjson

from ledger.decisions import command_digest, record
from ledger.errors import BadInput, IntegrityFailure, LedgerError
from ledger.events import GENESIS_HASH, TOPIC_PREFIX, chain_hash
from ledger.events import sorted_form as _norm
from ledger.inputs import parse_command
from ledger.model import SNAPSHOT_VERSION, LedgerState

ROWS_CHECKED_TOGETHER = 2000  # command-id rows looked up per query


class Bad(Exception):
    """A position where the stored log is not what the registry would have recorded, and why."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


def verify_log(recorder: Any, checkpoint: dict[str, Any] | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Verify the whole stored log by re-execution; {"ok": True, ...} or {"ok": False, "position", "reason"}."""
    st = LedgerState()
    st.event_source = lambda p: _event_at(recorder, p)  # a reversal decided again reads what it undoes
    audit = _Audit(recorder, st, checkpoint)
    try:
        try:
            audit.run(progress)
        except Bad:
            audit.flush_rows()  # the commands before the bad position are checked first: report the first
            raise
    except Bad as bad:
        return {"ok": False, "position": bad.position, "reason": bad.reason, "events": st.position}
    return {"ok": True, "position": st.position, "hash": st.hash, "events": st.position, "commands": st.commands,
            "signatures_checked": audit.re.signatures, "roles_enforced": st.enforced,
            "require_signatures": st.require_signatures, "snapshot_checked": audit.snapshot_checked,
            "store_id": st.store_id, "checkpoint": audit.checkpoint_seen}


class Reexecution:
    """Decides each recorded command again as its events arrive, in log order, and advances `st` by them.

    `feed(position, blob)` takes each stored event's bytes and raises Bad where the event does not follow from
    its command; `finish()` says whether the log ended inside a command. The registry runs it over the events
    it folds after its snapshot (so a writer never decides on a forged event); the audit over the whole log.
    """

    def __init__(self, st: LedgerState, keep_rows: bool = False) -> None:
        self.st = st
        self.expected: list[tuple[bytes, str]] = []  # the current command's events still to be matched
        self.signatures = 0
        self.keep_rows = keep_rows
        self.first_type = ""
        self.rows: list[tuple[str, str, int, int, bytes]] = []  # (id, digest, first, last, result) per command

    def feed(self, pos: int, blob: bytes, chain_hash_here: str) -> str:
        """Check the event at `pos` (its chain hash already checked by the caller); return its type. At the
        first event of a command the command is decided and folded whole; its later events must then be
        exactly what it decided."""
        st = self.st
        if self.expected:
            want, etype = self.expected.pop(0)
            if blob != want:
                raise Bad(pos, "the recorded event does not follow from its command: " + _difference(blob, want))
        else:
            self.expected = self._reexecute(pos, blob)
            etype = self.first_type
        st.hash = chain_hash_here  # the fold stands at the end of this command; its hash, at the end of it
        if pos == 1:
            st.store_id = chain_hash_here
        return etype

    @property
    def at_boundary(self) -> bool:
        return not self.expected

    def finish(self, pos: int) -> None:
        if self.expected:
            if self.rows:
                self.rows.pop()  # the unfinished command's row is not what is wrong
            raise Bad(pos + 1, "the log ends inside a command: its last events are missing (truncated?)")

    # ---- one command -----------------------------------------------------------------
    def _reexecute(self, pos: int, blob: bytes) -> list[tuple[bytes, str]]:
        """Decide again the command whose first event is at `pos`; return the bytes of its other events.
        (Whatever the stored event claims is checked at the end, byte for byte, against what is decided.)"""
        st = self.st
        try:
            env = orjson.loads(blob)
            cmd = env.get("command")
            if cmd is None:
                command_id = env.get("command_id")
                if command_id is not None and command_id == st.last_command_id:
                    raise Bad(pos, f"command id {command_id} appears again: the event follows from no command")
                raise Bad(pos, "the event records no command: it follows from none (inserted, or written before"
                          " commands were recorded)")
            name, args, command_id = cmd["name"], cmd["args"], env["command_id"]
            signature = env.get("signature")
            actor, recorded_at = env.get("actor"), env.get("recorded_at")
            if not (isinstance(command_id, str) and isinstance(recorded_at, str) and isinstance(args, dict)
                    and (signature is None or isinstance(signature, dict))):
                raise TypeError("fields of the wrong type")
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as e:
            raise Bad(pos, f"the stored event is not a recorded command ({type(e).__name__}: {e})") from None
        if command_id == st.last_command_id:
            raise Bad(pos, f"command id {command_id} appears twice in a row")
        try:
            if parse_command(name, args) != args:
                raise Bad(pos, f"the recorded arguments of {name} are not in normal form")
        except BadInput as e:
            raise Bad(pos, f"the recorded command {name} is not valid input: {e.message}") from None
        try:
            envs, blobs, result = record(st, name, args, command_id, actor, signature, recorded_at, hashed=False)
        except IntegrityFailure as e:
            raise Bad(pos, e.message) from None
        except LedgerError as e:
            raise Bad(pos, f"the state before it refuses command {command_id} ({name}): {e.message}") from None
        if signature is not None:
            self.signatures += 1
        if blobs[0] != blob:
            raise Bad(pos, "the recorded event does not follow from its command: " + _difference(blob, blobs[0]))
        self.first_type = envs[0]["type"]
        if self.keep_rows:
            self.rows.append((command_id, command_digest(name, args), pos, st.position, orjson.dumps(result)))
        if len(envs) == 1:
            return []
        return [(b, e["type"]) for e, b in zip(envs[1:], blobs[1:], strict=True)]


class _Audit:
    def __init__(self, recorder: Any, st: LedgerState, checkpoint: dict[str, Any] | None) -> None:
        self.rec = recorder
        self.st = st
        self.re = Reexecution(st, keep_rows=True)
        self.checkpoint = checkpoint
        self.checkpoint_seen: dict[str, Any] | None = None
        self.snapshot_checked = False
        self.snapshot = recorder.load_snapshot()  # (position, bytes) or None

    def run(self, progress: Callable[[int, int], None] | None) -> None:
        st, re_ = self.st, self.re
        head = self.rec.head()[0]
        chain_h = GENESIS_HASH
        pos = 0
        for ev, ch in zip_longest(self.rec.raw_rows(), self.rec.chain_rows()):
            pos += 1
            if ev is None:
                raise Bad(pos, "the chain records an event that is missing from the store")
            if ch is None:
                raise Bad(pos, "a stored event has no place in the hash chain (inserted?)")
            nid, version, topic, blob = ev
            position, chain_nid, stored_hash = ch
            if position != pos:
                raise Bad(pos, f"the chain jumps from {pos - 1} to {position}")
            if chain_nid != nid:
                raise Bad(pos, "the stored event rows were reordered")
            if version != pos:
                raise Bad(pos, f"the event row stored here has version {version}")
            chain_h = chain_hash(chain_h, blob)
            if chain_h != stored_hash:
                raise Bad(pos, "the event's hash does not match (changed or reordered)")
            if re_.at_boundary:
                self._at_boundary()
            if topic != TOPIC_PREFIX + re_.feed(pos, blob, chain_h):
                raise Bad(pos, "the stored topic does not match the event type")
            if len(re_.rows) >= ROWS_CHECKED_TOGETHER:
                self.flush_rows()
            if progress is not None and pos % 10_000 == 0:
                progress(pos, head)
        re_.finish(pos)
        self._at_boundary()
        self.flush_rows()
        count = self.rec.command_count_and_head()[0]
        if count != st.commands:
            raise Bad(st.position, f"the store holds {count} command-id rows for {st.commands} recorded commands"
                      " (a row without its command: inserted?)")
        if self.snapshot is not None and not self.snapshot_checked:
            raise Bad(self.snapshot[0], f"the write-side snapshot claims position {self.snapshot[0]}, which is"
                      " not the end of a recorded command")
        if self.checkpoint is not None and self.checkpoint_seen is None:
            raise Bad(int(self.checkpoint["position"]), f"the log is shorter than the checkpoint at position"
                      f" {self.checkpoint['position']} (truncated?)")
        if progress is not None:
            progress(pos, head)

    def flush_rows(self) -> None:
        """Each command's id row must be its own: the same digest, positions and result."""
        rows, self.re.rows = self.re.rows, []
        if not rows:
            return
        stored = self.rec.lookup_commands([r[0] for r in rows])
        for command_id, digest, first, last, result in rows:
            row = stored.get(command_id)
            if row is None:
                raise Bad(first, f"command {command_id} has no command-id row (deleted?): it could be run again")
            if row[1] != first or row[2] != last:
                raise Bad(first, f"command id {command_id} appears twice in the log (its row is for positions"
                           f" {row[1]}-{row[2]})")
            if row[0] != digest or row[3] != result:
                raise Bad(first, f"the command-id row of {command_id} does not match its command")

    def _at_boundary(self) -> None:
        """Between two commands: check the snapshot and the checkpoint if they stand here."""
        st = self.st
        if self.snapshot is not None and self.snapshot[0] == st.position:
            self._check_snapshot()
        cp = self.checkpoint
        if cp is not None and self.checkpoint_seen is None and int(cp["position"]) == st.position:
            self._check_checkpoint(cp)

    def _check_snapshot(self) -> None:
        position, blob = self.snapshot
        try:
            data = orjson.loads(blob)
        except orjson.JSONDecodeError:
            raise Bad(position, "the write-side snapshot is not JSON") from None
        self.snapshot_checked = True
        if isinstance(data, dict) and data.get("version") != SNAPSHOT_VERSION:
            return  # of an older shape: writers ignore it and refold the log
        mine = orjson.dumps(self.st.to_snapshot())
        if mine == blob:
            return  # byte for byte what this fold would store (the usual case: the same events, the same order)
        if _norm(data) != _norm(orjson.loads(mine)):  # the same state in another order (a set's, say) is no forgery
            raise Bad(position, "the write-side snapshot differs from the fold of the log at its position"
                       " (forged or damaged): writers would act on it")

    def _check_checkpoint(self, cp: dict[str, Any]) -> None:
        from ledger import signing

        st = self.st
        if not signing.verify(str(cp.get("public_key", "")), str(cp.get("signature", "")), checkpoint_payload(cp)):
            raise Bad(st.position, "the checkpoint's signature does not verify")
        if cp.get("hash") != st.hash:
            raise Bad(st.position, f"the log does not extend the checkpoint: the hash at {st.position} differs"
                       " (rewritten?)")
        if st.enforced:  # the key in the file proves nothing by itself: it must be the signer's key then
            signer = st.actors.get(str(cp.get("actor")))
            if signer is None or signer.role != "regulator" or signer.public_key != cp.get("public_key"):
                raise Bad(st.position, f"the checkpoint is not signed by the key that regulator {cp.get('actor')}"
                           f" had registered at position {st.position}")
        self.checkpoint_seen = {k: cp.get(k) for k in ("position", "hash", "time", "actor")}


def _event_at(recorder: Any, position: int) -> dict[str, Any] | None:
    blob = recorder.events_at([position]).get(position)
    return None if blob is None else orjson.loads(blob)


def checkpoint_payload(cp: dict[str, Any]) -> bytes:
    """What a checkpoint's signature covers: position, head hash, time and the signing actor."""
    return orjson.dumps({k: cp[k] for k in ("position", "hash", "time", "actor")}, option=orjson.OPT_SORT_KEYS)


def _difference(stored: bytes, decided: bytes) -> str:
    """Where a stored event differs from the one its command decides, for the auditor's message."""
    try:
        a, b = orjson.loads(stored), orjson.loads(decided)
    except orjson.JSONDecodeError:
        return "its bytes are not an event"
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                for k in sorted(set(a[key]) | set(b[key])):
                    if a[key].get(k) != b[key].get(k):
                        return f"{key}.{k} is {_short(a[key].get(k))}, the command decides {_short(b[key].get(k))}"
            return f"{key} is {_short(a.get(key))}, the command decides {_short(b.get(key))}"
    return "its bytes differ from the canonical form"


def _short(v: Any) -> str:
    text = orjson.dumps(v).decode()
    return text if len(text) <= 80 else text[:77] + "..."


class SnapshotFold:
    """Folds the write side over the events it is given and compares it with the stored snapshot at the
    snapshot's position: `audit replay` runs it beside the projections' rebuild (one read of the log)."""

    def __init__(self, recorder: Any) -> None:
        self.snapshot = recorder.load_snapshot()
        self.st = LedgerState()
        self.difference: str | None = None
        self.checked = False

    def __call__(self, env: dict[str, Any]) -> None:
        if self.snapshot is None or self.checked:
            return
        self.st.apply(env)
        if self.st.position == self.snapshot[0]:
            self.checked = True
            data = orjson.loads(self.snapshot[1])
            mine = orjson.loads(orjson.dumps(self.st.to_snapshot()))
            for key in ("hash", "store_id"):  # the fold here does not hash; the chain is audit verify's
                mine[key] = data.get(key) if isinstance(data, dict) else None
            if isinstance(data, dict) and data.get("version") == SNAPSHOT_VERSION and _norm(data) != _norm(mine):
                self.difference = (f"ledger: the write-side snapshot at position {self.snapshot[0]} differs from"
                                   " the fold of the log")

    def differences(self, head: int) -> list[str]:
        if self.difference:
            return [self.difference]
        if self.snapshot is not None and not self.checked:
            return [f"ledger: the write-side snapshot claims position {self.snapshot[0]}, beyond the log's {head}"]
        return []
