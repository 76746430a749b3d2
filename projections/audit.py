"""Audit: verify the hash chain from the stored rows, replay and compare, export the catalogue lines."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import zip_longest
from typing import Any

import orjson

from ledger.events import GENESIS_HASH, TOPIC_PREFIX, chain_hash, decode
from projections import runner


def verify_chain(recorder: Any, upto: int | None = None) -> dict[str, Any]:
    """Recompute the chain over every stored event row; name the first position that does not match."""
    h = GENESIS_HASH
    expected = 0
    events = recorder.raw_rows()
    chain = recorder.chain_rows()
    for ev, ch in zip_longest(events, chain):
        expected += 1
        if upto is not None and expected > upto:
            break
        if ev is None:
            return _bad(expected, "the chain records an event that is missing from the store", h)
        if ch is None:
            return _bad(expected, "a stored event has no place in the hash chain (inserted?)", h)
        nid, version, topic, state = ev
        position, chain_nid, chain_h = ch
        if position != expected:
            return _bad(expected, f"the chain jumps from {expected - 1} to {position}", h)
        try:
            env = decode(state)
        except orjson.JSONDecodeError:
            return _bad(expected, "the stored event is not valid JSON", h)
        if not isinstance(env, dict) or env.get("position") != expected or version != expected:
            return _bad(expected, f"the event stored here claims position {env.get('position') if isinstance(env, dict) else '?'}", h)
        if chain_nid != nid:
            return _bad(expected, "the stored event rows were reordered", h)
        if topic != TOPIC_PREFIX + str(env.get("type")):
            return _bad(expected, "the stored topic does not match the event type", h)
        h = chain_hash(h, state)
        if h != chain_h:
            return _bad(expected, "the event's hash does not match (changed or reordered)", h)
    count = min(expected, upto) if upto is not None else expected
    return {"ok": True, "position": count, "hash": h, "events": count}


def _bad(position: int, reason: str, prev_hash: str) -> dict[str, Any]:
    return {"ok": False, "position": position, "reason": reason, "prev_hash": prev_hash}


def signatures(recorder: Any) -> dict[str, Any]:
    """Check every signed command against the public key its actor had registered at that point.

    The keys and the store's settings are read from the events themselves (LedgerInitialized,
    ActorAdded, ActorKeyRegistered); a command's signature rides on its first event."""
    from ledger import signing

    keys: dict[str, str | None] = {}
    enforced = require = False
    signed_command = None  # the command id whose first event carried a verified signature
    checked = 0
    for _pos, _h, blob in recorder.read_events():
        env = decode(blob)
        t, d, sig = env["type"], env["data"], env.get("signature")
        if sig is not None:
            key = d.get("public_key") if t == "LedgerInitialized" else keys.get(sig["actor"])
            payload = signing.command_payload(sig["command"], env["command_id"], sig["args"])
            if key is None or sig["actor"] != env["actor"] or not signing.verify(key, sig["sig"], payload):
                return {"ok": False, "position": env["position"], "checked": checked,
                        "reason": f"the signature of {env['actor']} does not verify"}
            checked += 1
            signed_command = env["command_id"]
        elif require and env["command_id"] != signed_command:
            return {"ok": False, "position": env["position"], "checked": checked,
                    "reason": "an event of a store that requires signatures has no signature"}
        if t == "LedgerInitialized":
            enforced, require = True, bool(d["require_signatures"])
            keys[d["regulator"]] = d.get("public_key")
        elif t == "ActorAdded":
            keys[d["actor_id"]] = d.get("public_key")
        elif t == "ActorKeyRegistered":
            keys[d["actor_id"]] = d["public_key"]
    return {"ok": True, "checked": checked, "enforced": enforced, "require_signatures": require}


def export(recorder: Any, upto: int | None = None) -> Iterator[bytes]:
    prev = GENESIS_HASH
    for _pos, h, blob in recorder.read_events(upto=upto):
        env = decode(blob)
        line = {"position": env["position"], "type": env["type"], "recorded_at": env["recorded_at"],
                "actor": env["actor"], "command_id": env["command_id"], "prev_hash": prev, "hash": h,
                "data": env["data"]}
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


def replay_compare(recorder: Any, progress: runner.Progress = None) -> dict[str, Any]:
    """Rebuild every projection from 0 in memory and compare with the stored read models."""
    stored, position = runner.catch_up(recorder)
    digest = RowDigest()
    rebuilt, pos = runner.rebuild(recorder, progress, upto=position, on_rows=digest.update)
    diffs = []
    for p in runner.PROJECTIONS:
        if _norm(p.dump(rebuilt[p.name])) != _norm(p.dump(stored[p.name])):
            diffs.append(f"{p.name}: the stored read model differs from the replay")
    stored_digest = RowDigest()
    for rows in recorder.history_pages():
        stored_digest.update(rows)
    if stored_digest.hexdigest() != digest.hexdigest():
        diffs.append("history: the stored account history differs from the replay")
    return {"ok": not diffs, "position": pos, "differences": diffs, "projections": [p.name for p in runner.PROJECTIONS]}


def _norm(x: Any) -> Any:
    """A canonical form of a dumped state: dict keys and list rows in sorted order."""
    if isinstance(x, dict):
        return sorted((str(k), _norm(v)) for k, v in x.items())
    if isinstance(x, list):
        items = [_norm(v) for v in x]
        if items and all(isinstance(v, list) for v in items):
            return sorted(items, key=repr)
        return items
    return x
