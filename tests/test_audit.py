"""Audit (issues 2 and 3): the hash chain catches any change, deletion, insertion or reordering of stored
events, naming the first bad position; replay rebuilds every read model and catches a doctored one.

Every test runs on SQLite and on PostgreSQL (`store_url`); the rows are edited with sqlite3 or psycopg
through `ledgerkit.raw_db`, the same SQL on both."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from ledgerkit import (
    events,
    invoke,
    invoke_json,
    raw_db,
    rehash_chain,
    rewrite_command,
    rewrite_event,
    run_main,
)

from ledger.events import GENESIS_HASH, canonical_bytes, chain_hash, decode
from ledger.registry import Registry
from ledger.store import HISTORY_PAGE_SQL
from ledger.verify import verify_log

V = 2024


@pytest.fixture
def store(registry: Registry, store_url: str) -> str:
    """Ten events: two firms, a year, an issue, transfers and a trade."""
    r = registry
    r.register_firm("F1", "U1", "power", "Hubei")  # 1-2
    r.register_firm("F2", "U2", "power", "Hebei")  # 3-4
    r.open_year(V)  # 5
    r.issue("F1", "CEA", V, 1000, "pre-allocation")  # 6
    r.transfer("F1", "F2", "CEA", V, 100)  # 7
    r.transfer("F1", "F2", "CEA", V, 200)  # 8
    r.trade("F2", "F1", "CEA", V, 50, "80.00", "listed", "2024-06-03")  # 9
    r.cancel("F2", "CEA", V, 10)  # 10
    assert r.head()[0] == 10
    return store_url


def verify(store: str) -> tuple[int, int | None, str]:
    """`audit verify` through main(): (exit code, the position named on stderr, stderr)."""
    r = run_main(store, "audit", "verify")
    m = re.search(r"position (\d+)", r.err)
    return r.code, int(m.group(1)) if m else None, r.err


def test_an_untouched_store_verifies(store: str) -> None:
    r = run_main(store, "audit", "verify")
    assert r.code == 0 and r.err == ""
    assert "chain verified: 10 events" in r.out
    out = invoke_json(store, "audit", "verify")
    head = invoke_json(store, "audit", "head")
    assert out["ok"] is True and out["position"] == 10 and out["hash"] == head["hash"]


def test_the_chain_is_sha256_over_the_previous_hash_and_the_stored_bytes(store: str) -> None:
    h = GENESIS_HASH
    with raw_db(store) as conn:
        rows = conn.execute(
            "SELECT c.position, c.hash, e.state FROM ledger_chain c JOIN stored_events e"
            " ON e.rowid = c.notification_id ORDER BY c.position"
        ).fetchall()
    for pos, stored_hash, state in rows:
        assert decode(bytes(state))["position"] == pos
        assert canonical_bytes(decode(bytes(state))) == bytes(state)  # stored canonically
        h = chain_hash(h, bytes(state))
        assert h == stored_hash
    assert invoke_json(store, "audit", "head")["hash"] == h


def test_an_edited_stored_event_fails_verify_at_its_position(store: str) -> None:
    with raw_db(store) as conn:
        (state,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 7").fetchone()
        edited = bytes(state).replace(b'"quantity":100', b'"quantity":900')
        assert edited != bytes(state)
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 7", (edited,))
    code, pos, err = verify(store)
    assert (code, pos) == (3, 7), err
    assert err.count("\n") == 1


def test_an_edit_that_keeps_the_json_valid_and_canonical_is_still_caught(store: str) -> None:
    with raw_db(store) as conn:
        rewrite_event(conn, 9, lambda e: e["data"].update(price="8.00"))
    assert verify(store)[:2] == (3, 9)


def test_a_deleted_stored_event_fails_verify_at_its_position(store: str) -> None:
    with raw_db(store) as conn:
        conn.execute("DELETE FROM stored_events WHERE rowid = 4")
    assert verify(store)[:2] == (3, 4)


def test_the_deleted_last_event_fails_verify(store: str) -> None:
    with raw_db(store) as conn:
        conn.execute("DELETE FROM stored_events WHERE rowid = 10")
    assert verify(store)[:2] == (3, 10)


def test_two_swapped_events_fail_verify_at_the_first_of_them(store: str) -> None:
    with raw_db(store) as conn:
        (a,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 7").fetchone()
        (b,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 8").fetchone()
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 7", (b,))
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 8", (a,))
    assert verify(store)[:2] == (3, 7)


def test_swapped_events_with_their_positions_rewritten_and_rehashed_still_fail(store: str) -> None:
    """A forger swaps two events and fixes their position fields: the chain still breaks."""
    with raw_db(store) as conn:
        (a,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 7").fetchone()
        (b,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 8").fetchone()
        ea, eb = decode(bytes(a)), decode(bytes(b))
        ea["position"], eb["position"] = 8, 7
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 7", (canonical_bytes(eb),))
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 8", (canonical_bytes(ea),))
    assert verify(store)[:2] == (3, 7)


def test_an_event_inserted_at_the_end_fails_verify(store: str) -> None:
    with raw_db(store) as conn:
        row = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid = 10"
        ).fetchone()
        env = decode(bytes(row[3]))
        env["position"] = 11
        conn.execute(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state)"
            " VALUES (11, ?, 11, ?, ?)",
            (row[0], row[2], canonical_bytes(env)),
        )
    assert verify(store)[:2] == (3, 11)


def test_an_event_inserted_in_the_middle_fails_verify(store: str) -> None:
    with raw_db(store) as conn:
        template = conn.execute(
            "SELECT originator_id, topic, state FROM stored_events WHERE rowid = 7"
        ).fetchone()
        for rowid in range(10, 5, -1):  # make room after 5
            conn.execute("UPDATE stored_events SET rowid = rowid + 100 WHERE rowid = ?", (rowid,))
        conn.execute("UPDATE stored_events SET rowid = rowid - 99 WHERE rowid > 100")
        conn.execute(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state)"
            " VALUES (6, ?, 106, ?, ?)",
            template,
        )
    code, pos, _err = verify(store)
    assert code == 3 and pos == 6


def test_an_edited_chain_hash_fails_verify(store: str) -> None:
    with raw_db(store) as conn:
        conn.execute("UPDATE ledger_chain SET hash = ? WHERE position = 5", ("0" * 64,))
    assert verify(store)[:2] == (3, 5)


def test_an_edit_rehashed_from_there_on_is_caught_by_re_execution(store: str) -> None:
    """The chain alone cannot catch a full rehash; re-deciding the command can: its event says otherwise."""
    with raw_db(store) as conn:
        rewrite_event(conn, 6, lambda e: e["data"].update(quantity=5000))
        rehash_chain(conn)
    code, pos, err = verify(store)
    assert (code, pos) == (3, 6) and "data.quantity is 5000, the command decides 1000" in err


def test_a_consistent_rewrite_of_an_open_store_needs_a_pinned_head(store: str) -> None:
    """A forger who rewrites a command, its event, its command-id row and the chain of an open (unsigned)
    store passes re-execution: only a published head (or a signed checkpoint) catches it."""
    pinned = invoke_json(store, "audit", "head")
    with raw_db(store) as conn:
        rewrite_command(conn, 6, quantity=5000)
        rehash_chain(conn)
    assert verify(store)[0] == 0
    after = invoke_json(store, "audit", "head")
    assert after["position"] == pinned["position"] and after["hash"] != pinned["hash"]


def test_a_deleted_event_row_is_named_by_its_position(registry: Registry, store: str) -> None:
    with raw_db(store) as conn:
        conn.execute("DELETE FROM stored_events WHERE rowid = 9")
    res = verify_log(registry.recorder)
    assert res["ok"] is False and res["position"] == 9


# ---- replay ----------------------------------------------------------------------------------------


def test_replay_of_a_healthy_store_matches_the_stored_read_models(store: str) -> None:
    invoke_json(store, "balances")  # the read models catch up and are stored
    r = run_main(store, "audit", "replay")
    assert r.code == 0, r.err
    assert "matches" in r.out
    res = invoke_json(store, "audit", "replay")
    assert res["ok"] is True and res["differences"] == [] and res["position"] == 10


def test_replay_catches_a_doctored_balances_read_model(store: str) -> None:
    invoke_json(store, "balances")
    with raw_db(store) as conn:
        (blob,) = conn.execute("SELECT state FROM rm_state WHERE name = 'balances'").fetchone()
        data = json.loads(blob)
        for row in data["holdings"]:
            if row[0] == "F2":
                row[3] += 1000
        conn.execute("UPDATE rm_state SET state = ? WHERE name = 'balances'", (json.dumps(data).encode(),))
    r = run_main(store, "audit", "replay")
    assert r.code == 3
    assert "balances" in r.err


def test_replay_catches_a_doctored_account_history(store: str) -> None:
    invoke_json(store, "history", "F2")
    with raw_db(store) as conn:
        conn.execute("DELETE FROM rm_history WHERE account_id = 'F2' AND position = 8")
    r = run_main(store, "audit", "replay")
    assert r.code == 3 and "history" in r.err


def test_history_refuses_to_show_a_stored_row_that_disagrees_with_its_event(store: str) -> None:
    invoke_json(store, "history", "F2")
    with raw_db(store) as conn:
        conn.execute("UPDATE rm_history SET quantity = 999 WHERE account_id = 'F2' AND position = 8")
    r = run_main(store, "history", "F2")
    assert r.code == 3 and r.out == ""
    assert r.err.strip().splitlines() == [
        ("error: the stored history of F2 disagrees with the event at position 8;"
         " `audit replay` compares every read model with the log")]
    assert run_main(store, "audit", "replay").code == 3


def test_replay_reads_the_stored_history_in_event_order_by_an_index_seek(store: str) -> None:
    """`audit replay` pages through every history row in event order. Each page must seek in an index on
    (position, seq): without the index every page was a full scan and sort of the table, and with a query
    the planner could not seek on it walked the index from its start, either way quadratic in the log."""
    invoke_json(store, "history", "F2")
    query = HISTORY_PAGE_SQL.replace("?", "{}").format(7, 0, 5)
    with raw_db(store) as conn:
        if isinstance(conn, sqlite3.Connection):
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + query))
            assert "SEARCH rm_history USING INDEX rm_history_by_position" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
            rows = conn.execute(query).fetchall()
        else:  # PostgreSQL plans a tiny table with a scan; asked to avoid one, it must have the index to seek in
            conn.execute("SET enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.execute("EXPLAIN " + query))
            assert "rm_history_by_position" in plan and "Index Cond" in plan and "Sort" not in plan, plan
            rows = conn.execute(query).fetchall()
    # and it is the right page: the rows after position 7, seq 0, in order
    assert [(r[1], r[2]) for r in rows] == [(7, 1), (8, 0), (8, 1), (9, 0), (9, 1)]


def test_export_reproduces_every_stored_event(registry: Registry, store: str) -> None:
    r = invoke(store, "audit", "export")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    stored = events(registry)
    assert len(lines) == len(stored) == 10
    for line, env in zip(lines, stored, strict=True):
        assert {k: line[k] for k in env} == env


def test_export_as_of_a_position_stops_there(store: str) -> None:
    r = invoke(store, "audit", "export", "--as-of", "4")
    assert [json.loads(x)["position"] for x in r.stdout.splitlines()] == [1, 2, 3, 4]


def test_verify_reads_the_rows_not_the_cached_state(store: str) -> None:
    """A registry that opened the store before the tampering is no defence: verify reads the rows."""
    other = Registry(store)
    try:
        assert other.head()[0] == 10
        with raw_db(store) as conn:
            conn.execute("UPDATE stored_events SET state = CAST(? AS BLOB) WHERE rowid = 3", ("{}",))
        assert verify_log(other.recorder)["position"] == 3
    finally:
        other.close()


def test_the_history_digest_depends_on_the_rows_not_on_how_they_were_paged() -> None:
    from projections.audit import RowDigest

    rows = [(f"A{i % 7}", i // 2, i % 2, -i, 1000 - i) for i in range(3 * RowDigest.CHUNK + 17)]

    def digest(pages: list[list[tuple]]) -> str:
        d = RowDigest()
        for page in pages:
            d.update(page)
        return d.hexdigest()

    whole = digest([rows])
    assert digest([rows[i : i + 999] for i in range(0, len(rows), 999)]) == whole
    assert digest([rows[:1], rows[1:RowDigest.CHUNK + 5], [], rows[RowDigest.CHUNK + 5 :]]) == whole
    changed = list(rows)
    changed[RowDigest.CHUNK + 3] = (*changed[RowDigest.CHUNK + 3][:4], 0)
    assert digest([changed]) != whole
    assert digest([rows[:-1]]) != whole
