"""Integrity against an attacker who holds the store (an operator, a stolen backup, a compromised host) but no
actor's private key: each attack edits a real store with SQL, as such an attacker would, and each must be
caught by `audit verify` (exit 3, the first bad position) with no command accepted on top of it.

Every test runs on SQLite and on PostgreSQL (`store_url`); rows are edited through `ledgerkit.raw_db`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from ledgerkit import Clock, export_lines, raw_db, rehash_chain, rewrite_event, run_main

from ledger import signing
from ledger.errors import LedgerError
from ledger.events import canonical_bytes, chain_hash, decode
from ledger.registry import LEDGER_ID, Command, Registry
from projections import runner

V = 2024


def ok(store: str, *args: str) -> str:
    r = run_main(store, *args)
    assert r.code == 0, f"{args}: exit {r.code}: {r.err}"
    return r.out


def failure(store: str, *args: str) -> tuple[int, int | None, str]:
    """(exit code, the position named on stderr, stderr) of a command that must fail."""
    r = run_main(store, *args)
    m = re.search(r"position (\d+)", r.err)
    return r.code, int(m.group(1)) if m else None, r.err


def head(store: str) -> dict[str, Any]:
    return json.loads(ok(store, "audit", "head", "--json"))


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name in ("MEE", "F1", "F2", "NEW"):
        path = str(tmp_path / f"{name}.key")
        signing.generate(path)
        out[name] = path
    return out


def pub(path: str) -> str:
    return signing.public_hex(signing.load_private(path))


@pytest.fixture
def signed_store(store_url: str, keys: dict[str, str]) -> str:
    """A --require-signatures store: MEE registers F1 and F2 with their desks, opens 2024, issues 1,000 t to F1;
    F1's desk transfers 10 t to F2. Every command signed, through the CLI."""
    s, mee = store_url, ("--as", "MEE", "--key", keys["MEE"])
    ok(s, "--key", keys["MEE"], "init", "--regulator", "MEE", "--require-signatures")
    for f in ("F1", "F2"):
        ok(s, *mee, "firm", "register", f, "--name", f, "--sector", "power", "--region", "Hubei")
        ok(s, *mee, "actor", "add", f"{f}-desk", "--role", "firm", "--firm", f, "--public-key", pub(keys[f]))
    ok(s, *mee, "year", "open", str(V))
    ok(s, *mee, "issue", "F1", "--unit", "CEA", "--vintage", str(V), "--quantity", "1000", "--basis", "auction",
       "--command-id", "issue-1")
    ok(s, "--as", "F1-desk", "--key", keys["F1"], "transfer", "F1", "F2", "--unit", "CEA", "--vintage", str(V),
       "--quantity", "10", "--command-id", "t-1")
    assert head(s)["position"] == 10
    return s


def transfer_again(store: str, keys: dict[str, str], cid: str = "t-2") -> tuple[int, int | None, str]:
    return failure(store, "--as", "F1-desk", "--key", keys["F1"], "transfer", "F1", "F2", "--unit", "CEA",
                   "--vintage", str(V), "--quantity", "1", "--command-id", cid)


def append_forged(conn: Any, env: dict[str, Any]) -> None:
    """Append an event row and its chain link, hashed correctly: what a forger who knows the scheme writes."""
    blob = canonical_bytes(env)
    pos, prev = conn.execute("SELECT position, hash FROM ledger_chain ORDER BY position DESC LIMIT 1").fetchone()
    assert env["position"] == pos + 1
    conn.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
                 (str(LEDGER_ID) if hasattr(conn, "conn") else LEDGER_ID.hex, env["position"],
                  "carbon_ledger:" + env["type"], blob))
    (nid,) = conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()
    conn.execute("INSERT INTO ledger_chain VALUES (?, ?, ?)", (env["position"], nid, chain_hash(prev, blob)))


def event_at(store: str, position: int) -> dict[str, Any]:
    return next(e for e in export_lines(store) if e["position"] == position)


def stored_envelope(line: dict[str, Any]) -> dict[str, Any]:
    """The stored envelope of an exported line (the export adds prev_hash and hash)."""
    return {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}


# ---- 1. a forged event that copies a real command id and signature -----------------------------------------


def test_a_forged_issue_copying_a_real_signature_is_caught_and_blocks_writers(
    signed_store: str, keys: dict[str, str], tmp_path: Path
) -> None:
    s = signed_store
    cp = tmp_path / "cp.json"
    cp.write_text(ok(s, "--as", "MEE", "--key", keys["MEE"], "audit", "checkpoint"))
    real = stored_envelope(event_at(s, 9))  # the signed issue: its command id and signature block
    forged = {**real, "position": 11, "data": {**real["data"], "account_id": "F2", "quantity": 10_000_000_000}}
    with raw_db(s) as conn:
        append_forged(conn, forged)
    for audit in (("audit", "verify"), ("audit", "verify", "--checkpoint", str(cp))):
        code, pos, err = failure(s, *audit)
        assert (code, pos) == (3, 11), err
        assert "does not follow from its command" in err and "account_id" in err
    code, pos, err = transfer_again(s, keys)
    assert (code, pos) == (3, 11), err
    assert head(s)["position"] == 11  # nothing appended on top


def test_an_unsigned_forged_event_reusing_the_previous_command_id_is_caught(
    signed_store: str, keys: dict[str, str]
) -> None:
    s = signed_store
    last = stored_envelope(event_at(s, 10))  # F1's transfer
    forged = {k: v for k, v in last.items() if k not in ("command", "signature")}
    forged.update(position=11, data={**last["data"], "quantity": 900})
    with raw_db(s) as conn:
        append_forged(conn, forged)
    code, pos, err = failure(s, "audit", "verify")
    assert (code, pos) == (3, 11) and "t-1" in err, err
    code, pos, err = transfer_again(s, keys)
    assert (code, pos) == (3, 11), err
    assert head(s)["position"] == 11


# ---- 2. a deleted command-id row, and the same signed line imported again ----------------------------------


def test_a_deleted_command_row_does_not_let_the_same_signed_command_run_twice(
    signed_store: str, tmp_path: Path
) -> None:
    s = signed_store
    line = event_at(s, 10)
    signed_line = {"command": line["command"]["name"], "command_id": line["command_id"], **line["command"]["args"],
                   "actor": line["actor"], "signature": line["signature"]["sig"],
                   "signature_expires": line["signature"]["expires"]}
    f = tmp_path / "again.jsonl"
    f.write_text(json.dumps(signed_line) + "\n")
    assert json.loads(ok(s, "import", str(f), "--json"))["already_applied"] == 1  # untouched: idempotent
    with raw_db(s) as conn:
        conn.execute("DELETE FROM ledger_commands WHERE command_id = ?", ("t-1",))
    code, _pos, err = failure(s, "import", str(f))
    assert code == 3 and "command ids" in err, err
    assert head(s)["position"] == 10  # recorded once, for ever
    code, pos, err = failure(s, "audit", "verify")
    assert (code, pos) == (3, 10) and "t-1" in err, err


# ---- 3. a forged write-side snapshot ----------------------------------------------------------------------


def forge_snapshot(store: str, change: Any) -> int:
    """Write a snapshot of the true state, then change its contents, keeping its position and chain hash."""
    reg = Registry(store)
    try:
        st = reg.state
        snapshot = st.to_snapshot()
        change(snapshot)
        reg.recorder.save_snapshot("ledger", st.position, orjson.dumps(snapshot))
        return st.position
    finally:
        reg.close()


def test_a_snapshot_that_does_not_match_the_chain_is_refused_by_writers(
    signed_store: str, keys: dict[str, str]
) -> None:
    s = signed_store
    at = forge_snapshot(s, lambda snap: snap.update(hash="0" * 64))
    code, pos, err = transfer_again(s, keys)
    assert (code, pos) == (3, at) and "snapshot" in err, err
    assert head(s)["position"] == at


def test_forged_holdings_in_a_snapshot_are_caught_by_verify_and_by_every_writer_without_it(
    signed_store: str, keys: dict[str, str]
) -> None:
    """A forged holding that keeps the snapshot's hash: a writer cannot tell without refolding the log, so it
    acts on it; `audit verify` and `audit replay` refold and name the snapshot, and once the snapshot is gone,
    every write fails naming the command the true state refuses, never with an internal error."""
    s = signed_store
    at = forge_snapshot(s, lambda snap: snap["holdings"].append(["F2", "CEA", V, 10_000_000]))
    ok(s, "--as", "F2-desk", "--key", keys["F2"], "transfer", "F2", "F1", "--unit", "CEA", "--vintage", str(V),
       "--quantity", "5000000", "--command-id", "on-forged-state")
    code, pos, err = failure(s, "audit", "verify")
    assert (code, pos) == (3, at) and "snapshot" in err, err
    code, _pos, err = failure(s, "audit", "replay")
    assert code == 3 and "snapshot" in err, err
    with raw_db(s) as conn:
        conn.execute("DELETE FROM ledger_snapshot")
    for _ in range(2):  # every write, not only the next
        code, pos, err = transfer_again(s, keys)
        assert (code, pos) == (3, at + 1), err
        assert "internal" not in err and "refuses" in err
    code, pos, err = failure(s, "audit", "verify")
    assert (code, pos) == (3, at + 1), err


def test_a_snapshot_that_switches_signatures_off_is_caught(signed_store: str, keys: dict[str, str]) -> None:
    s = signed_store
    at = forge_snapshot(s, lambda snap: snap.update(require_signatures=False))
    ok(s, "--as", "MEE", "issue", "F1", "--unit", "CEA", "--vintage", str(V), "--quantity", "5",
       "--basis", "auction")  # unsigned: let through by the forged snapshot
    code, pos, err = failure(s, "audit", "verify")
    assert (code, pos) == (3, at), err
    with raw_db(s) as conn:
        conn.execute("DELETE FROM ledger_snapshot")
    code, pos, err = transfer_again(s, keys)
    assert (code, pos) == (3, at + 1) and "requires signed commands" in err, err


# ---- 4. an event edited in place ---------------------------------------------------------------------------


def test_an_event_edited_in_place_blocks_every_writer(signed_store: str, keys: dict[str, str]) -> None:
    s = signed_store
    with raw_db(s) as conn:
        rewrite_event(conn, 9, lambda e: e["data"].update(quantity=10_000_000))
    code, pos, _err = failure(s, "audit", "verify")
    assert (code, pos) == (3, 9)
    code, pos, err = transfer_again(s, keys)
    assert (code, pos) == (3, 9), err
    assert head(s)["position"] == 10
    with raw_db(s) as conn:  # the chain re-hashed too: re-execution still sees the issue differs from its command
        rehash_chain(conn)
    code, pos, err = transfer_again(s, keys)
    assert (code, pos) == (3, 9) and "quantity" in err, err
    assert failure(s, "audit", "verify")[:2] == (3, 9)


# ---- 5. signatures are bound to one store and expire -------------------------------------------------------


def test_a_signed_command_copied_into_another_store_with_the_same_keys_is_refused(
    signed_store: str, new_store: Any, keys: dict[str, str], tmp_path: Path
) -> None:
    other = new_store("other")
    mee = ("--as", "MEE", "--key", keys["MEE"])
    ok(other, "--key", keys["MEE"], "init", "--regulator", "MEE", "--require-signatures")
    for f in ("F1", "F2"):
        ok(other, *mee, "firm", "register", f, "--name", f, "--sector", "power", "--region", "Hubei")
        ok(other, *mee, "actor", "add", f"{f}-desk", "--role", "firm", "--firm", f, "--public-key", pub(keys[f]))
    ok(other, *mee, "year", "open", str(V))
    ok(other, *mee, "issue", "F1", "--unit", "CEA", "--vintage", str(V), "--quantity", "1000", "--basis", "auction")
    line = event_at(signed_store, 10)  # F1's signed transfer in the first store
    copied = {"command": "transfer", "command_id": "t-1", **line["command"]["args"], "actor": "F1-desk",
              "signature": line["signature"]["sig"], "signature_expires": line["signature"]["expires"]}
    f = tmp_path / "copied.jsonl"
    f.write_text(json.dumps(copied) + "\n")
    before = head(other)
    code, _pos, err = failure(other, "import", str(f))
    assert code == 1 and "does not verify" in err, err
    assert head(other) == before


def test_a_refused_signed_command_cannot_be_replayed_after_its_expiry(store_url: str, keys: dict[str, str]) -> None:
    clock = Clock("2024-06-03T09:30:00")
    reg = Registry(store_url, clock=clock)
    try:
        key = signing.load_private(keys["MEE"])
        reg.execute(Command("init", {"regulator": "MEE", "require_signatures": True, "public_key": pub(keys["MEE"])},
                            "i", "MEE", sign_with=key))
        for name, args, cid in (
            ("firm register", {"firm_id": "F1", "name": "F1", "sector": "power", "region": "Hubei"}, "r1"),
            ("firm register", {"firm_id": "F2", "name": "F2", "sector": "power", "region": "Hubei"}, "r2"),
            ("actor add", {"actor_id": "F1-desk", "role": "firm", "firm": "F1", "public_key": pub(keys["F1"])}, "a1"),
            ("year open", {"year": str(V)}, "y"),
        ):
            reg.execute(Command(name, args, cid, "MEE", sign_with=key))
        args = {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": V, "quantity": 10}
        expires = "2024-06-03T09:40:00Z"
        sig = signing.sign_command(signing.load_private(keys["F1"]), reg.store_id, "transfer", "x-1", args, expires)
        seen = Command("transfer", args, "x-1", "F1-desk", sig, expires=expires)
        with pytest.raises(LedgerError) as refused:  # F1 holds nothing yet
            reg.execute(seen)
        assert refused.value.code == "insufficient_holding"
        reg.execute(Command("issue", {"account_id": "F1", "unit": "CEA", "vintage": V, "quantity": 100,
                                      "basis": "auction"}, "iss", "MEE", sign_with=key))
        clock.set("2024-06-03T09:41:00")  # whoever saw the refused command submits it again, too late
        n = reg.head()[0]
        with pytest.raises(LedgerError) as late:
            reg.execute(Command("transfer", args, "x-1", "F1-desk", sig, expires=expires))
        assert late.value.code == "signature_expired"
        assert reg.head()[0] == n
    finally:
        reg.close()
    assert run_main(store_url, "audit", "verify").code == 0


# ---- 6. a checkpoint survives a key rotation ---------------------------------------------------------------


def test_a_checkpoint_verifies_after_its_signer_rotates_its_key(
    signed_store: str, keys: dict[str, str], tmp_path: Path
) -> None:
    s = signed_store
    cp = tmp_path / "old.json"
    cp.write_text(ok(s, "--as", "MEE", "--key", keys["MEE"], "audit", "checkpoint"))
    ok(s, "--as", "MEE", "--key", keys["MEE"], "actor", "key", "MEE", "--public-key", pub(keys["NEW"]))
    ok(s, "--as", "MEE", "--key", keys["NEW"], "year", "open", "2025")
    assert "extends checkpoint 10" in ok(s, "audit", "verify", "--checkpoint", str(cp))
    new_cp = tmp_path / "new.json"
    new_cp.write_text(ok(s, "--as", "MEE", "--key", keys["NEW"], "audit", "checkpoint"))
    assert ok(s, "audit", "verify", "--checkpoint", str(new_cp))
    # the old key cannot sign a checkpoint of a position where it was no longer MEE's
    stale = json.loads(new_cp.read_text())
    stale["public_key"] = pub(keys["MEE"])
    stale["signature"] = signing.sign(signing.load_private(keys["MEE"]),
                                      orjson.dumps({k: stale[k] for k in ("position", "hash", "time", "actor")},
                                                   option=orjson.OPT_SORT_KEYS))
    forged = tmp_path / "stale.json"
    forged.write_text(json.dumps(stale))
    code, _pos, err = failure(s, "audit", "verify", "--checkpoint", str(forged))
    assert code == 3 and "registered" in err, err


# ---- 7. a forged as-of checkpoint of the read models -------------------------------------------------------


def test_an_edited_as_of_checkpoint_is_caught_by_audit_replay(
    signed_store: str, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = signed_store
    monkeypatch.setattr(runner, "CHECKPOINT_EVERY", 5)
    ok(s, "--as", "F1-desk", "--key", keys["F1"], "transfer", "F1", "F2", "--unit", "CEA", "--vintage", str(V),
       "--quantity", "1")
    honest = json.loads(ok(s, "balances", "--as-of", "10", "--json"))
    assert ok(s, "audit", "replay")
    with raw_db(s) as conn:
        (blob,) = conn.execute("SELECT state FROM rm_checkpoint WHERE name = 'balances' AND position = 10").fetchone()
        state = decode(bytes(blob))
        forged = json.dumps(state).replace('"F1"', '"F9"').encode()
        assert forged != bytes(blob)
        conn.execute("UPDATE rm_checkpoint SET state = ? WHERE name = 'balances' AND position = 10", (forged,))
    assert json.loads(ok(s, "balances", "--as-of", "10", "--json")) != honest  # what as-of now answers
    code, pos, err = failure(s, "audit", "replay")
    assert (code, pos) == (3, 10) and "as-of checkpoint" in err, err
