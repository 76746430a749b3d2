"""The PostgreSQL store: eventsourcing's PostgreSQL application recorder plus the ledger's tables.

`Registry("postgresql://user@host:port/db?schema=NAME")` opens this recorder (see
`StoreConfig.env`). Everything lives in one schema, created if missing: the library's
events table (`carbonledger_events`) and the ledger's extra tables of
`ledger.store.EXTRA_TABLES`, translated to PostgreSQL types.

Writes follow the library's protocol: `insert_events` takes the events table's
EXCLUSIVE lock, inserts the events and then, in the same transaction and still under
that lock, appends the hash chain and the command ids and snapshot. Transactions that
insert events therefore commit in the order of their notification ids, and chain
positions 1..N are gapless in commit order even when a failed insert leaves a gap in
the notification id sequence (`ledger_chain` maps position -> notification_id).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Connection
from psycopg.errors import DuplicateObject
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composable, Identifier

from ledger.store import (
    EXTRA_INDEXES,
    EXTRA_TABLES,
    READ_MODEL_FORMAT,
    LedgerRecorderMixin,
)

# Primary keys of the tables written with `_upsert` (SQLite's INSERT OR REPLACE).
UPSERT_KEYS: dict[str, tuple[str, ...]] = {
    "ledger_snapshot": ("name",),
    "rm_state": ("name",),
    "rm_checkpoint": ("name", "position"),
}


def pg_ddl(sqlite_ddl: str) -> str:
    """One of `EXTRA_TABLES` in PostgreSQL types: BLOB -> bytea, INTEGER -> bigint."""
    out = re.sub(r"\bBLOB\b", "bytea", sqlite_ddl)
    return re.sub(r"\bINTEGER\b", "bigint", out)


def _table_name(ddl: str) -> str:
    m = re.match(r"\s*CREATE TABLE IF NOT EXISTS (\w+)", ddl)
    if m is None:  # pragma: no cover - EXTRA_TABLES are all of this form
        raise ValueError(f"unexpected DDL: {ddl!r}")
    return m.group(1)


def _column_types(ddl: str) -> list[str]:
    """The PostgreSQL types of the columns of one of `EXTRA_TABLES`, in order."""
    body = pg_ddl(ddl)
    inner = body[body.index("(") + 1 : body.rindex(")")]
    parts = [p.strip() for p in re.split(r",(?![^()]*\))", inner)]
    return [p.split()[1].lower() for p in parts if not p.upper().startswith("PRIMARY KEY")]


ARRAY_TYPES = {_table_name(ddl): _column_types(ddl) for ddl in EXTRA_TABLES}


def _as_uuid(oid: Any) -> UUID:
    return oid if isinstance(oid, UUID) else UUID(str(oid))


class LedgerPostgresRecorder(LedgerRecorderMixin, PostgresApplicationRecorder):
    """PostgreSQL recorder: events, chain and extras in one transaction under the events table lock."""

    _nid = "notification_id"

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.schema = self.datastore.schema
        self._set_search_path = SQL("SET search_path TO {}").format(Identifier(self.schema))
        self._configured: weakref.WeakSet[Connection[Any]] = weakref.WeakSet()
        self._writer_held = threading.local()  # writer_lock's depth in this thread
        # The extra tables, created by create_table() in the same schema as the events.
        for ddl in self._extra_tables():
            name = _table_name(ddl)
            self.check_identifier_length(name)
            body = pg_ddl(ddl).split(name, 1)[1]
            self.sql_create_statements.append(
                SQL("CREATE TABLE IF NOT EXISTS {}.{}").format(Identifier(self.schema), Identifier(name))
                + SQL(body)  # type: ignore[arg-type]
            )
        # The events as four column arrays, each sent in binary (`_insert_stored_events`).
        self._insert_columns = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{}[], %b::bigint[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(Identifier(self.schema), Identifier(self.events_table_name),
                 Identifier(self.datastore.originator_id_type))
        for name, table, cols in EXTRA_INDEXES:
            self.sql_create_statements.append(
                SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} ({})").format(
                    Identifier(name), Identifier(self.schema), Identifier(table),
                    SQL(", ").join(Identifier(c.strip()) for c in cols.split(",")))
            )

    # ---- schema ---------------------------------------------------------------------------
    def create_table(self) -> None:
        """Create the schema (if missing), the composite type, the tables and the index.

        One transaction, serialized by an advisory lock on the schema's name, so that
        processes opening a fresh store at the same time do not trip over each other's
        CREATE ... IF NOT EXISTS (which is not safe against concurrent creation).
        """
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("carbon-ledger:ddl:" + self.schema,))
            curs.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            # (not CREATE SCHEMA IF NOT EXISTS: that needs the CREATE right even when the schema exists)
            if curs.fetchone() is None:
                curs.execute(SQL("CREATE SCHEMA {}").format(Identifier(self.schema)))
            for statement in self.sql_create_statements:
                if "CREATE TYPE" in statement.as_string():
                    # No IF NOT EXISTS for types: try in a savepoint and keep the existing one.
                    with suppress(DuplicateObject), curs.connection.transaction():
                        curs.execute(statement, prepare=False)
            self._create_table(curs)
            curs.execute(SQL("SET LOCAL search_path TO {}").format(Identifier(self.schema)))
            if self._read_model_format(curs) != READ_MODEL_FORMAT:  # see ledger.store.READ_MODEL_FORMAT
                self._drop_read_models(curs)
                self._create_table(curs)
                curs.execute("INSERT INTO rm_format VALUES (%s)", (READ_MODEL_FORMAT,))
        self.datastore.register_type_adapters()

    # ---- the mixin's primitives ---------------------------------------------------------
    @staticmethod
    def _q(sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        """A pooled connection whose search_path is our schema (set once per connection).

        The mixin's SQL names tables unqualified; with the search_path holding only our
        schema, a missing table is an error rather than a silent read of another schema.
        """
        with self.datastore.get_connection() as conn:
            if conn not in self._configured:
                conn.execute(self._set_search_path)
                self._configured.add(conn)
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            yield c

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One transaction, serialized against the other `_write`s on this schema (like BEGIN IMMEDIATE)."""
        with self._connection() as conn, conn.transaction(), conn.cursor(row_factory=tuple_row) as c:
            c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("carbon-ledger:write:" + self.schema,))
            yield c

    @contextmanager
    def _nonce_write(self) -> Iterator[Any]:
        """A transaction without the write lock: ON CONFLICT makes a nonce's claim atomic by itself."""
        with self._connection() as conn, conn.transaction(), conn.cursor(row_factory=tuple_row) as c:
            yield c

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """A session advisory lock held across a command's read-decide-append.

        Without it, PostgreSQL's lock queue lets a writer that waited for the table lock find
        its decision stale every time under sustained load (it starves); with it, the
        registry's writers take turns in the order they asked.
        """
        held = getattr(self._writer_held, "depth", 0)
        if held:  # this thread holds it already (GroupCommit's lease over several groups): no round trips
            self._writer_held.depth = held + 1
            try:
                yield
            finally:
                self._writer_held.depth = held
            return
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", ("carbon-ledger:writer:" + self.schema,))
            self._writer_held.depth = 1
            try:
                yield
            finally:
                self._writer_held.depth = 0
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", ("carbon-ledger:writer:" + self.schema,))

    def _upsert(self, c: Any, table: str, cols: tuple[str, ...], values: tuple) -> None:
        key = UPSERT_KEYS[table]
        rest = [col for col in cols if col not in key]
        statement: Composable = SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO ").format(
            Identifier(table),
            SQL(",").join(map(Identifier, cols)),
            SQL(",").join(SQL("%s") for _ in cols),
            SQL(",").join(map(Identifier, key)),
        )
        if rest:
            statement += SQL("UPDATE SET ") + SQL(",").join(
                SQL("{0} = EXCLUDED.{0}").format(Identifier(col)) for col in rest
            )
        else:
            statement += SQL("NOTHING")
        c.execute(statement, values)

    def _insert_many(self, c: Any, table: str, rows: Sequence[tuple]) -> None:
        """One INSERT ... SELECT FROM unnest(column arrays) for all the rows: executemany would send a
        statement a row, even in a pipeline."""
        statement = SQL("INSERT INTO {} SELECT * FROM unnest({})").format(
            Identifier(table), SQL(", ").join(SQL("%b::" + t + "[]") for t in ARRAY_TYPES[table])  # type: ignore[arg-type]
        )
        c.execute(statement, [list(column) for column in zip(*rows, strict=True)])

    # ---- writing events ----------------------------------------------------------------
    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], **_: Any) -> None:
        """As the library's: the events table's lock, its NOTIFY, one INSERT ... RETURNING notification_id; but
        the events go as four column arrays in binary, not as one array of the library's composite type, which
        psycopg sends as text, escaping each byte of every event's state by regular expression (a third of the
        writer's time per transfer on PostgreSQL, benchmarks/load.py)."""
        self._lock_table(curs)
        self._notify_channel(curs)
        originator = _as_uuid if self.datastore.originator_id_type == "uuid" else str
        curs.execute(self._insert_columns, [
            [originator(e.originator_id) for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [bytes(e.state) for e in stored_events]])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert events, then chain them and write the extras, in one transaction under the table lock.

        A unique violation (another writer took an originator version) raises
        eventsourcing.persistence.IntegrityError and nothing of the call is written.
        """
        commands = kwargs.get("commands", ())
        snapshot = kwargs.get("snapshot")
        ids: list[int] = []
        exc: Exception | None = None
        # Pipelined, as in the library, so that the table lock is held for few round trips:
        # BEGIN, SET LOCAL lock_timeout, LOCK TABLE, NOTIFY, INSERT ... RETURNING (sync);
        # the chain head (fetch); chain rows, command rows, snapshot and COMMIT.
        with self._connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction():
                with conn.cursor() as curs:
                    self._insert_events(curs, stored_events, **kwargs)  # library hook (a no-op here)
                if stored_events:
                    with conn.cursor() as curs:
                        try:
                            self._insert_stored_events(curs, stored_events, **kwargs)
                            # Sync now, so that a unique violation is raised here (and becomes
                            # IntegrityError), not as an InternalError at commit.
                            pipeline.sync()
                            fetched = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
                            ids = list(fetched or [])
                        except Exception as e:  # noqa: BLE001 - re-raised after the pipeline has exited, as the library does
                            exc = e
                if exc is None and (stored_events or commands or snapshot is not None):
                    with conn.cursor(row_factory=tuple_row) as c:
                        self._chain_and_extras(c, stored_events, ids, commands, snapshot)
            if exc is not None:
                raise exc
        return ids
