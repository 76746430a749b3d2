"""Follow the log: catch read models up from their tracked positions, rebuild from zero, answer as of N.

Read models are stored beside the events (rm_state, rm_history) with the position
of the last event each applied, written in one transaction, so a crash never
applies an event twice or skips one. Catching up streams the log in pages and
flushes every FLUSH_EVERY events, so memory does not grow with the log.
The environment variable CARBON_LEDGER_FLUSH_EVERY (a positive integer) overrides
FLUSH_EVERY: the follower tests set it low so that a kill lands between flushes.
Every CHECKPOINT_EVERY positions the folds' states are kept (rm_checkpoint), so
that `--as-of N` folds at most CHECKPOINT_EVERY events.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ledger.errors import IntegrityFailure
from ledger.events import decode
from projections.balances import Balances, History, history_row
from projections.compliance import Compliance
from projections.market import Market

PROJECTIONS = (Balances(), History(), Market(), Compliance())
BY_NAME = {p.name: p for p in PROJECTIONS}
CHECKPOINT_EVERY = 10_000
FLUSH_EVERY = int(os.environ.get("CARBON_LEDGER_FLUSH_EVERY") or 50_000)
if FLUSH_EVERY < 1:
    raise ValueError(f"CARBON_LEDGER_FLUSH_EVERY must be a positive integer, not {FLUSH_EVERY}")

Progress = Callable[[int, int], None] | None


def _apply(p: Any, state: Any, env: dict[str, Any], rows: list | None) -> Any:
    if getattr(p, "emits_rows", False):
        return p.apply(state, env, rows)
    return p.apply(state, env)


def fold(events: Iterable[dict[str, Any]], names: Iterable[str] | None = None,
         states: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pure fold, over an in-memory list of events: what tests and as-of use."""
    ps = [BY_NAME[n] for n in (names or BY_NAME)]
    states = dict(states) if states else {p.name: p.initial() for p in ps}
    for env in events:
        for p in ps:
            states[p.name] = _apply(p, states[p.name], env, None)
    return states


def _load(recorder: Any, p: Any) -> tuple[int, Any]:
    row = recorder.load_readmodel(p.name)
    if row is None:
        return 0, p.initial()
    return row[0], p.load(orjson.loads(row[1]))


def catch_up(recorder: Any, progress: Progress = None,
             should_stop: Callable[[], bool] | None = None,
             unsaved: list | None = None) -> tuple[dict[str, Any], int]:
    """Bring every stored read model up to the head; return the states and the position they stand at.

    `should_stop` is asked after each flush: a follower told to stop leaves a long backlog there,
    with everything up to that position committed. With `unsaved` (a list), nothing is written (a
    read-only store): the states are caught up in memory and the history rows not stored are added to it."""
    loaded = {p.name: _load(recorder, p) for p in PROJECTIONS}
    positions = {n: pos for n, (pos, _) in loaded.items()}
    states = {n: st for n, (_, st) in loaded.items()}
    head = recorder.head()[0]
    start = min(positions.values())
    if start >= head:
        return states, max(positions.values())
    expected = dict(positions)
    rows: list[tuple] = []
    checkpoints: list[tuple] = []
    pos = start
    since_flush = 0
    folds = [(p.name, p.apply, getattr(p, "emits_rows", False)) for p in PROJECTIONS]
    for pos, _h, blob in recorder.read_events(after=start, upto=head):
        env = decode(blob)
        for name, apply, emits in folds:
            if positions[name] < pos:
                states[name] = apply(states[name], env, rows) if emits else apply(states[name], env)
        if pos % CHECKPOINT_EVERY == 0:
            checkpoints += [(p.name, pos, orjson.dumps(p.dump(states[p.name])))
                            for p in PROJECTIONS if not getattr(p, "emits_rows", False)]
        since_flush += 1
        if unsaved is not None:
            continue
        if since_flush >= FLUSH_EVERY:
            if not _flush(recorder, expected, states, pos, rows, checkpoints):
                return catch_up(recorder, progress, should_stop)  # another process moved them: start from theirs
            expected = dict.fromkeys(expected, pos)
            positions = dict(expected)
            rows, checkpoints, since_flush = [], [], 0
            if progress:
                progress(pos, head)
            if should_stop is not None and should_stop():
                return states, pos
    if unsaved is not None:
        unsaved.extend(rows)
        return states, pos
    _flush(recorder, expected, states, pos, rows, checkpoints)
    if progress:
        progress(pos, head)
    return states, pos


def _flush(recorder: Any, expected: dict[str, int], states: dict[str, Any], pos: int, rows: list,
           checkpoints: list) -> bool:
    blobs = {p.name: (pos, orjson.dumps(p.dump(states[p.name]))) for p in PROJECTIONS}
    return recorder.save_readmodels(expected, blobs, rows, checkpoints)


def rebuild(recorder: Any, progress: Progress = None, upto: int | None = None,
            on_rows: Callable[[list], None] | None = None,
            on_checkpoint: Callable[[str, int, Any], None] | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], int]:
    """Fold every projection from position 0 in memory (for audit replay), streaming the log.

    `on_rows` gets the account-history rows in pages; `on_checkpoint(name, position, dumped state)` each
    state where catch-up keeps an as-of checkpoint; `on_event` every event (another fold riding along)."""
    states = {p.name: p.initial() for p in PROJECTIONS}
    head = upto if upto is not None else recorder.head()[0]
    rows: list = []
    out = rows if on_rows else None  # nobody reads the rows: don't build them
    # Every fold updates its state in place and returns it (checked), so each is bound once.
    folds = [(p.name, p.apply, states[p.name], getattr(p, "emits_rows", False)) for p in PROJECTIONS]
    plain = [(apply, state) for _n, apply, state, emits in folds if not emits]
    emitting = [(apply, state) for _n, apply, state, emits in folds if emits]
    loads = orjson.loads
    pos = 0
    for pos, _h, blob in recorder.read_events(after=0, upto=head):
        env = loads(blob)
        for apply, state in plain:
            if apply(state, env) is not state:
                raise RuntimeError(f"fold {apply} replaced its state instead of updating it")
        for apply, state in emitting:
            if apply(state, env, out) is not state:
                raise RuntimeError(f"fold {apply} replaced its state instead of updating it")
        if on_event is not None:
            on_event(env)
        if on_checkpoint is not None and pos % CHECKPOINT_EVERY == 0:
            for p in PROJECTIONS:
                if not getattr(p, "emits_rows", False):
                    on_checkpoint(p.name, pos, p.dump(states[p.name]))
        if len(rows) >= 10_000:
            if on_rows:
                on_rows(rows)
            rows = []
            out = rows
        if progress and pos % 20_000 == 0:
            progress(pos, head)
    if on_rows and rows:
        on_rows(rows)
    if progress:
        progress(pos, head)
    return states, pos


def as_of(recorder: Any, position: int, names: Iterable[str]) -> dict[str, Any]:
    """The states of `names` as the ledger stood at `position`: nearest checkpoint, then fold the rest."""
    out: dict[str, Any] = {}
    for name in names:
        p = BY_NAME[name]
        cp = recorder.checkpoint_before(name, position)
        start, state = (cp[0], p.load(orjson.loads(cp[1]))) if cp else (0, p.initial())
        for _pos, _h, blob in recorder.read_events(after=start, upto=position):
            state = _apply(p, state, decode(blob), None)
        out[name] = state
    return out


def history(recorder: Any, account_id: str, upto: int, unsaved: list | None = None) -> list[dict[str, Any]]:
    """One account's movements up to `upto` as shown: each stored row (and each of `unsaved`, the rows a
    read-only catch-up could not store) with its event's details."""
    stored = recorder.history_rows(account_id, upto)
    if unsaved:
        stored += [(p, seq, q, bal) for acc, p, seq, q, bal in unsaved if acc == account_id and p <= upto]
    events = recorder.events_at([r[0] for r in stored])
    out = []
    for position, seq, quantity, balance in stored:
        row = history_row(decode(events[position]), seq, balance)
        if row["quantity"] != quantity:
            raise IntegrityFailure(f"the stored history of {account_id} disagrees with the event at position"
                                   f" {position}; `audit replay` compares every read model with the log")
        out.append(row)
    return out


def position_at_date(recorder: Any, date: str) -> int:
    """The last position recorded on or before the end of `date` (recorded_at is non-decreasing)."""
    head = recorder.head()[0]
    limit = date + "T23:59:59Z"
    lo, hi = 0, head  # invariant: events <= lo are on or before the date
    while lo < hi:
        mid = (lo + hi + 1) // 2
        ((_, _, blob),) = list(recorder.read_events(after=mid - 1, upto=mid))
        if decode(blob)["recorded_at"] <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo
