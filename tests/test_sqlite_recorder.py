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
