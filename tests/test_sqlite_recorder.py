"""The SQLite recorder against the eventsourcing library's own ApplicationRecorderTestCase."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests import persistence as es_tests

from ledger.events import GENESIS_HASH, chain_hash
from ledger.store import LedgerSQLiteRecorder


class TestLedgerSQLiteRecorderLibraryCase(es_tests.ApplicationRecorderTestCase[LedgerSQLiteRecorder]):
    """eventsourcing's ApplicationRecorderTestCase, run on LedgerSQLiteRecorder (file database)."""

    db_uri = ""

    def setUp(self) -> None:
        super().setUp()
        self._tmp = tempfile.TemporaryDirectory()
        self.db_uri = str(Path(self._tmp.name) / "ledger.db")
        self._datastores: list[SQLiteDatastore] = []

    def tearDown(self) -> None:
        for ds in self._datastores:
            ds.close()
        self._tmp.cleanup()
        super().tearDown()

    def create_recorder(self) -> LedgerSQLiteRecorder:
        datastore = SQLiteDatastore(db_name=self.db_uri, pool_size=20, lock_timeout=30)
        self._datastores.append(datastore)
        recorder = LedgerSQLiteRecorder(datastore)
        recorder.create_table()
        return recorder

    def test_performance(self) -> None:
        self.skipTest("timing only (prints inserts per second, asserts nothing)")

    def test_insert_select_in_memory_db(self) -> None:
        self.db_uri = ":memory:"
        super().test_insert_select()

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        super().test_concurrent_no_conflicts(initial_position)
        # And the ledger's addition: the chain covers every event, gapless, in notification order.
        recorder = self.create_recorder()
        rows = list(recorder.chain_rows())
        self.assertEqual([r[0] for r in rows], list(range(1, len(rows) + 1)))
        self.assertEqual([r[1] for r in rows], sorted(r[1] for r in rows))
        self.assertEqual(len(rows), recorder.max_notification_id())
        h = GENESIS_HASH
        for pos, hsh, state in recorder.read_events():
            h = chain_hash(h, state)
            self.assertEqual(h, hsh, f"chain breaks at position {pos}")
        self.assertEqual(recorder.head(), (len(rows), h))


if __name__ == "__main__":
    unittest.main()


def _events(n: int, first_version: int = 1) -> list:
    import uuid

    from eventsourcing.persistence import StoredEvent

    oid = uuid.UUID(int=7)
    return [StoredEvent(originator_id=oid, originator_version=first_version + i, topic="ledger:Event",
                        state=f'{{"n":{first_version + i}}}'.encode()) for i in range(n)]


def _recorder(tmp_path: Path) -> tuple[LedgerSQLiteRecorder, SQLiteDatastore]:
    ds = SQLiteDatastore(db_name=str(tmp_path / "ledger.db"), pool_size=4, lock_timeout=30)
    rec = LedgerSQLiteRecorder(ds)
    rec.create_table()
    return rec, ds


ROWS = 64  # a long batch is 2 x ROWS + 5 rows, a second one ROWS + 1


def test_a_long_batch_is_stored_whole_and_in_order(tmp_path: Path) -> None:
    """A batch of events, chain links and command ids is stored row for row as written, with notification ids,
    positions and the hash chain in order, and every command id found; the next continues from its end."""
    rec, ds = _recorder(tmp_path)
    try:
        n = 2 * ROWS + 5
        events = _events(n)
        commands = [(f"c{i:04d}", "d", i + 1, i + 1, b"{}") for i in range(n)]
        ids = rec.insert_events(events, commands=commands)
        assert list(ids) == list(range(1, n + 1))
        rows = list(rec.raw_rows())
        assert [r[0] for r in rows] == list(range(1, n + 1))
        assert [(r[1], r[3]) for r in rows] == [(e.originator_version, e.state) for e in events]
        h = GENESIS_HASH
        for (pos, nid, link), e in zip(rec.chain_rows(), events, strict=True):
            h = chain_hash(h, e.state)
            assert (nid, link) == (pos, h)
        assert rec.head() == (n, h)
        found = rec.lookup_commands([c[0] for c in commands])
        assert sorted(found) == [c[0] for c in commands]
        assert found["c0130"][1:3] == (131, 131)
        # A second batch continues the numbering and the chain from where the first ended.
        more = _events(ROWS + 1, first_version=n + 1)
        assert list(rec.insert_events(more)) == list(range(n + 1, n + ROWS + 2))
        for e in more:
            h = chain_hash(h, e.state)
        assert rec.head() == (n + ROWS + 1, h)
    finally:
        ds.close()


def test_a_conflict_at_the_end_of_a_batch_leaves_nothing(tmp_path: Path) -> None:
    """A row refused at the end of a batch (a command id used earlier in the same batch) undoes the rows
    before it: no event, no chain link, no command id."""
    import pytest
    from eventsourcing.persistence import IntegrityError

    rec, ds = _recorder(tmp_path)
    try:
        n = 2 * ROWS + 3
        commands = [(f"c{i:04d}", "d", i + 1, i + 1, b"{}") for i in range(n)]
        commands[-1] = ("c0000",) + commands[-1][1:]
        with pytest.raises(IntegrityError):
            rec.insert_events(_events(n), commands=commands)
        assert rec.max_notification_id() in (0, None)
        assert list(rec.chain_rows()) == []
        assert rec.head() == (0, GENESIS_HASH)
        assert rec.lookup_commands(["c0000", "c0001"]) == {}
    finally:
        ds.close()
