"""Audit of the read side: replay every projection and compare it with every stored read model; export the
catalogue lines. (The chain and the commands are verified by re-execution: ledger.verify.)"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from ledger.events import GENESIS_HASH, decode
from ledger.events import sorted_form as _norm
from projections import runner


def export(recorder: Any, upto: int | None = None) -> Iterator[bytes]:
    prev = GENESIS_HASH
    for _pos, h, blob in recorder.read_events(upto=upto):
        env = decode(blob)
        line = {"position": env["position"], "type": env["type"], "recorded_at": env["recorded_at"],
                "actor": env["actor"], "command_id": env["command_id"], "prev_hash": prev, "hash": h,
                "data": env["data"]}
        if "command" in env:
            line["command"] = env["command"]
        if "signature" in env:
            line["signature"] = env["signature"]
        prev = h
        yield orjson.dumps(line)


class RowDigest:
    """sha256 over a sequence of rows, whatever pages they arrive in: rows are hashed as JSON in chunks of
    a fixed number (one orjson call a chunk), so two sequences of equal rows give equal digests."""

    CHUNK = 10_000

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._buffer: list = []

    def update(self, rows: list) -> None:
        buf = self._buffer
        buf.extend(rows)
        while len(buf) >= self.CHUNK:
            self._hash.update(orjson.dumps(buf[: self.CHUNK]))
            del buf[: self.CHUNK]

    def hexdigest(self) -> str:
        if self._buffer:
            self._hash.update(orjson.dumps(self._buffer))
            self._buffer = []
        return self._hash.hexdigest()


def replay_compare(recorder: Any, progress: runner.Progress = None,
                   on_event: Any = None) -> dict[str, Any]:
    """Rebuild every projection from 0 in memory and compare with every stored read model: the states, the
    account history and the as-of checkpoints. (`on_event`: another fold to run over the same events.)"""
    stored, position = runner.catch_up(recorder)
    digest = RowDigest()
    diffs: list[str] = []
    kept = set(recorder.checkpoint_keys())
    seen: set[tuple[str, int]] = set()

    def compare_checkpoint(name: str, pos: int, dumped: Any) -> None:
        row = recorder.checkpoint_at(name, pos)
        seen.add((name, pos))
        if row is not None and _norm(orjson.loads(row)) != _norm(orjson.loads(orjson.dumps(dumped))):
            diffs.append(f"{name}: the as-of checkpoint at position {pos} differs from the replay")

    rebuilt, pos = runner.rebuild(recorder, progress, upto=position, on_rows=digest.update,
                                  on_checkpoint=compare_checkpoint, on_event=on_event)
    for name, cp_pos in sorted(kept - seen, key=lambda k: (k[1], k[0])):
        diffs.append(f"{name}: an as-of checkpoint at position {cp_pos} is not one the log produces")
    for p in runner.PROJECTIONS:
        if _norm(p.dump(rebuilt[p.name])) != _norm(p.dump(stored[p.name])):
            diffs.append(f"{p.name}: the stored read model differs from the replay")
    stored_digest = RowDigest()
    for rows in recorder.history_pages():
        stored_digest.update(rows)
    if stored_digest.hexdigest() != digest.hexdigest():
        diffs.append("history: the stored account history differs from the replay")
    return {"ok": not diffs, "position": pos, "differences": diffs, "projections": [p.name for p in runner.PROJECTIONS]}
