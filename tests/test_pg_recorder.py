"""The PostgreSQL recorder against a real server: the eventsourcing library's own
ApplicationRecorderTestCase, then the ledger's additions (schema, chain, extras, errors).

Needs CARBON_LEDGER_TEST_POSTGRES=postgresql://USER@HOST:PORT/DB; each test works in a
fresh schema that is dropped afterwards.
"""

from __future__ import annotations

import os
import threading
import unittest
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.tests import persistence as es_tests
from psycopg.conninfo import conninfo_to_dict
from psycopg.sql import SQL, Identifier

from ledger.events import GENESIS_HASH, chain_hash
from ledger.pgstore import LedgerPostgresRecorder
from ledger.store import EXTRA_TABLES, parse_store

PG_ENV = "CARBON_LEDGER_TEST_POSTGRES"
PG_URL = os.environ.get(PG_ENV, "").strip()
SKIP_REASON = f"PostgreSQL tests need {PG_ENV}=postgresql://USER@HOST:PORT/DB (scratch schemas)"

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)]


def _base_url() -> str:
    return PG_URL.split("?", 1)[0]


def new_datastore(schema: str, pool_size: int = 4) -> PostgresDatastore:
    info = conninfo_to_dict(_base_url())
    return PostgresDatastore(
        dbname=str(info.get("dbname") or "postgres"),
        host=str(info.get("host") or "127.0.0.1"),
        port=str(info.get("port") or "5432"),
        user=str(info.get("user") or "postgres"),
        password=str(info.get("password") or ""),
        schema=schema,
        pool_size=pool_size,
        max_overflow=0,
    )


def drop_schema(schema: str) -> None:
    with psycopg.connect(_base_url(), autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


def new_schema() -> str:
    return "t_" + uuid.uuid4().hex[:16]


# ---- the library's test case ---------------------------------------------------------------------------
@unittest.skipUnless(PG_URL, SKIP_REASON)
class TestLedgerPostgresRecorderLibraryCase(es_tests.ApplicationRecorderTestCase[LedgerPostgresRecorder]):
    """eventsourcing's ApplicationRecorderTestCase, run on LedgerPostgresRecorder."""

    def setUp(self) -> None:
        super().setUp()
        self.schema = new_schema()
        # The library's concurrency test runs 10 writer threads and 2 readers at once.
        self.datastore = new_datastore(self.schema, pool_size=12)

    def tearDown(self) -> None:
        self.datastore.close()
        drop_schema(self.schema)
        super().tearDown()

    def create_recorder(self) -> LedgerPostgresRecorder:
        recorder = LedgerPostgresRecorder(self.datastore, events_table_name="stored_events")
        recorder.create_table()
        return recorder

    def test_performance(self) -> None:
        self.skipTest("timing only (prints inserts per second, asserts nothing)")

    def test_insert_subscribe(self) -> None:
        # Optional in the library's case; the PostgreSQL recorder supports subscriptions (LISTEN/NOTIFY).
        self.optional_test_insert_subscribe()

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        super().test_concurrent_no_conflicts(initial_position)
        # And the ledger's addition: the chain covers every event, gapless, in notification (= commit) order.
        recorder = self.create_recorder()
        _assert_chain_ok(self, recorder)


def _assert_chain_ok(tc: unittest.TestCase, recorder: LedgerPostgresRecorder) -> None:
    rows = list(recorder.chain_rows())
    n = recorder.max_notification_id() or 0
    tc.assertEqual([r[0] for r in rows], list(range(1, len(rows) + 1)))
    nids = [r[1] for r in rows]
    tc.assertEqual(nids, sorted(nids))
    tc.assertEqual(len(rows), len(list(recorder.raw_rows())))
    if rows:
        tc.assertEqual(nids[-1], n)
    h = GENESIS_HASH
    for (pos, hsh, state), (cpos, _nid, chash) in zip(recorder.read_events(), rows, strict=True):
        h = chain_hash(h, state)
        tc.assertEqual((pos, hsh), (cpos, chash))
        tc.assertEqual(h, hsh, f"chain breaks at position {pos}")
    tc.assertEqual(recorder.head(), (len(rows), h))


# ---- the ledger's additions ------------------------------------------------------------------------
@pytest.fixture
def recorder() -> Iterator[LedgerPostgresRecorder]:
    schema = new_schema()
    datastore = new_datastore(schema)
    try:
        rec = LedgerPostgresRecorder(datastore, events_table_name="carbonledger_events")
        rec.create_table()
        yield rec
    finally:
        datastore.close()
        drop_schema(schema)


def _events(originator: uuid.UUID, versions: range | list[int]) -> list[StoredEvent]:
    return [StoredEvent(originator_id=originator, originator_version=v, topic="t", state=b'{"v":%d}' % v)
            for v in versions]


def test_tables_live_in_the_schema_with_pg_types(recorder: LedgerPostgresRecorder) -> None:
    with psycopg.connect(_base_url()) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s",
            (recorder.schema,),
        ).fetchall()
    cols = {(t, c): d for t, c, d in rows}
    tables = {t for t, _ in cols}
    expected = {ddl.split()[5] for ddl in EXTRA_TABLES} | {"carbonledger_events"}
    assert tables == expected
    assert cols[("ledger_chain", "position")] == "bigint"
    assert cols[("ledger_chain", "notification_id")] == "bigint"
    assert cols[("ledger_commands", "result")] == "bytea"
    assert cols[("rm_history", "balance")] == "bigint"
    assert cols[("rm_checkpoint", "position")] == "bigint"
    # create_table again is harmless (another process opening the same store)
    recorder.create_table()


def test_concurrent_create_table_on_a_fresh_schema() -> None:
    schema = new_schema()
    stores = [new_datastore(schema, pool_size=1) for _ in range(6)]
    errors: list[BaseException] = []
    go = threading.Barrier(len(stores))

    def create(ds: PostgresDatastore) -> None:
        try:
            rec = LedgerPostgresRecorder(ds, events_table_name="carbonledger_events")
            go.wait()
            rec.create_table()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    try:
        threads = [threading.Thread(target=create, args=(ds,)) for ds in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        for ds in stores:
            ds.close()
        drop_schema(schema)


def test_insert_chains_and_records_extras(recorder: LedgerPostgresRecorder) -> None:
    oid = uuid.uuid4()
    ids = recorder.insert_events(_events(oid, range(1, 4)),
                                 commands=[("c-1", "d1", 1, 3, b'{"r":1}')],
                                 snapshot=("ledger", 3, b"snap"))
    assert ids == [1, 2, 3]
    assert recorder.lookup_commands(["c-1", "nope"]) == {"c-1": ("d1", 1, 3, b'{"r":1}')}
    assert recorder.load_snapshot() == (3, b"snap")
    recorder.insert_events(_events(oid, [4]), snapshot=("ledger", 4, b"snap2"))
    assert recorder.load_snapshot() == (4, b"snap2")
    assert [e[0] for e in recorder.read_events(after=1, upto=3)] == [2, 3]
    assert recorder.hash_at(0) == GENESIS_HASH
    assert recorder.hash_at(4) == recorder.head()[1]
    assert recorder.hash_at(5) is None
    _assert_chain_ok(unittest.TestCase(), recorder)


def test_unique_violation_is_integrity_error_and_writes_nothing(recorder: LedgerPostgresRecorder) -> None:
    oid = uuid.uuid4()
    recorder.insert_events(_events(oid, [1, 2]))
    head = recorder.head()
    with pytest.raises(IntegrityError):
        recorder.insert_events(_events(oid, [3, 2]), commands=[("c-x", "d", 3, 4, b"{}")],
                               snapshot=("ledger", 4, b"s"))
    assert recorder.head() == head
    assert recorder.lookup_commands(["c-x"]) == {}
    assert recorder.load_snapshot() is None
    # The failed insert used up notification ids; the chain stays gapless and maps around the gap.
    ids = recorder.insert_events(_events(oid, [3]))
    assert ids is not None and ids[0] > 3
    rows = list(recorder.chain_rows())
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[2][1] == ids[0]
    assert [e[2] for e in recorder.read_events()] == [b'{"v":1}', b'{"v":2}', b'{"v":3}']
    _assert_chain_ok(unittest.TestCase(), recorder)
    # A command id recorded twice is an IntegrityError too, and rolls back its events.
    recorder.insert_events(_events(oid, [4]), commands=[("c-y", "d", 4, 4, b"{}")])
    with pytest.raises(IntegrityError):
        recorder.insert_events(_events(oid, [5]), commands=[("c-y", "d", 5, 5, b"{}")])
    assert recorder.head()[0] == 4


def test_read_models(recorder: LedgerPostgresRecorder) -> None:
    assert recorder.load_readmodel("balances") is None
    assert recorder.save_readmodels({}, {"balances": (5, b"b5")}, [("A", 3, 0, 30, 30), ("A", 5, 0, -5, 25)],
                                    [("balances", 5, b"c5")])
    assert not recorder.save_readmodels({"balances": 4}, {"balances": (6, b"b6")})
    assert recorder.save_readmodels({"balances": 5}, {"balances": (6, b"b6")}, (), [("balances", 5, b"c5'")])
    assert recorder.load_readmodel("balances") == (6, b"b6")
    assert recorder.readmodel_positions() == {"balances": 6}
    assert recorder.history_rows("A") == [(3, 0, 30, 30), (5, 0, -5, 25)]
    assert recorder.history_rows("A", upto=4) == [(3, 0, 30, 30)]
    assert recorder.checkpoint_before("balances", 10) == (5, b"c5'")
    assert recorder.checkpoint_before("balances", 4) is None


def test_store_url_opens_this_recorder_in_the_schema(pg_schema_url: str) -> None:
    from ledger.registry import Registry

    cfg = parse_store(pg_schema_url)
    schema = cfg.env()["POSTGRES_SCHEMA"]
    assert schema.startswith("t_")
    reg = Registry(pg_schema_url)
    try:
        assert isinstance(reg.recorder, LedgerPostgresRecorder)
        assert reg.recorder.schema == schema
        reg.register_firm("F0001", "Unit 1", "power", "Hubei", command_id="c-1")
        again = reg.register_firm("F0001", "Unit 1", "power", "Hubei", command_id="c-1")
        assert again.replayed
        assert reg.head()[0] == 2
        with psycopg.connect(_base_url()) as conn:
            count = SQL("SELECT count(*) FROM {}.{}").format(Identifier(schema), Identifier("ledger_chain"))
            n = conn.execute(count).fetchone()
        assert n == (2,)
    finally:
        reg.close()
