"""The store: open a SQLite file (default) or a PostgreSQL database from a URL.

Events are stored by the eventsourcing library's recorders. Our recorder adds, in
the same transaction as the events: the hash chain (`ledger_chain`), the command
ids already applied (`ledger_commands`), a snapshot of the write-side fold
(`ledger_snapshot`), and the read models with their tracked positions
(`rm_state`, `rm_history`, `rm_checkpoint`). This module is the only place with SQL.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.errors import BadInput, StoreError
from ledger.events import GENESIS_HASH, chain_hash

DEFAULT_STORE = "carbon-ledger.db"
PAGE_SIZE = 2000  # events per page when reading the log

EXTRA_TABLES = [
    ("CREATE TABLE IF NOT EXISTS ledger_chain (position INTEGER PRIMARY KEY, notification_id INTEGER NOT NULL,"
     " hash TEXT NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS ledger_commands (command_id TEXT PRIMARY KEY, digest TEXT NOT NULL,"
     " first_position INTEGER NOT NULL, last_position INTEGER NOT NULL, result BLOB NOT NULL)"),
    "CREATE TABLE IF NOT EXISTS ledger_snapshot (name TEXT PRIMARY KEY, position INTEGER NOT NULL, state BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rm_state (name TEXT PRIMARY KEY, position INTEGER NOT NULL, state BLOB NOT NULL)",
    # One row per movement of an account: its signed quantity and the balance after it. What the movement
    # was (type, unit, counterparty, price ...) is read from the event at `position` when it is shown.
    ("CREATE TABLE IF NOT EXISTS rm_history (account_id TEXT NOT NULL, position INTEGER NOT NULL,"
     " seq INTEGER NOT NULL, quantity INTEGER NOT NULL, balance INTEGER NOT NULL,"
     " PRIMARY KEY (account_id, position, seq))"),
    ("CREATE TABLE IF NOT EXISTS rm_checkpoint (name TEXT NOT NULL, position INTEGER NOT NULL, state BLOB NOT NULL,"
     " PRIMARY KEY (name, position))"),
    "CREATE TABLE IF NOT EXISTS rm_format (format INTEGER NOT NULL)",
]
# (name, table, columns). rm_history is read by account (its primary key) and, by `audit replay`, whole in
# event order: without this index each page of that read was a full scan and sort, quadratic in the log.
EXTRA_INDEXES = [("rm_history_by_position", "rm_history", "position, seq")]
# A page of the whole history in event order, after (position, seq): a row-value comparison, so that both
# SQLite and PostgreSQL seek in rm_history_by_position (with `position > ? OR (...)` SQLite walked the index
# from its start on every page).
HISTORY_PAGE_SQL = ("SELECT account_id, position, seq, quantity, balance FROM rm_history"
                    " WHERE (position, seq) > (?, ?) ORDER BY position, seq LIMIT ?")
READ_MODEL_TABLES = ("rm_state", "rm_history", "rm_checkpoint")
# The shape of the read models (their tables, and the states the projections store). Read models are derived
# from the log, so a store recorded with another format (or before formats, which had none) drops them when it
# is opened and the next read rebuilds them. Bump it with any change of that shape.
# 1: history rows held each movement's JSON; 2: history rows are (account, position, seq, quantity, balance);
# 3: the balances state lists the accounts opened (so a read of an account that does not exist says so);
# 4: the market's days are per product (unit and vintage), with the listed trades' open, high, low and close.
# 5: the balances state keeps each account's state and approvals, and the pending transfers.
# 6: the compliance model keeps facilities' verified emissions.
# 7: compliance periods carry their time limit to correct and whether it was enforced.
# 8: the balances totals count units carried over (carried_in, carried_out).
# 9: the compliance model keeps the exemptions issued per firm and year (published apart from the allocation).
READ_MODEL_FORMAT = 9


@dataclass(frozen=True)
class StoreConfig:
    """Where the ledger lives: a SQLite file or a PostgreSQL URL."""

    url: str
    kind: str  # "sqlite" | "postgres"
    path: str | None = None

    def env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path or DEFAULT_STORE,
                "SQLITE_LOCK_TIMEOUT": "30",
                "APPLICATION_RECORDER_TOPIC": "ledger.store:LedgerSQLiteRecorder",
            }
        u = urlparse(self.url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote((u.path or "/").lstrip("/")) or "postgres",
            "POSTGRES_HOST": u.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(u.port or 5432),
            "POSTGRES_USER": unquote(u.username or "") or "postgres",
            "POSTGRES_PASSWORD": unquote(u.password or ""),
            "POSTGRES_SCHEMA": pg_schema(self.url),
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            "POSTGRES_POOL_SIZE": "2",  # a command needs two at once (the writer lock, the insert); more on demand
            "APPLICATION_RECORDER_TOPIC": "ledger.pgstore:LedgerPostgresRecorder",
        }


def pg_schema(url: str) -> str:
    """The schema of a postgresql:// URL (`?schema=NAME`, default public), checked.

    The eventsourcing library looks its composite type up by the unquoted name
    `schema.type`, so only plain lower-case identifiers work.
    """
    schema = parse_qs(urlparse(url).query).get("schema", ["public"])[0]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise BadInput(f"store {url!r}: schema {schema!r} must be a lower-case identifier"
                       " (letters a-z, digits and _, at most 63)")
    return schema


def parse_store(url: str | None) -> StoreConfig:
    url = url or os.environ.get("CARBON_LEDGER_STORE") or DEFAULT_STORE
    if url.startswith(("postgresql://", "postgres://")):
        pg_schema(url)
        return StoreConfig(url=url, kind="postgres")
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    elif "://" in url:
        raise BadInput(f"store {url!r}: use a file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    else:
        path = url
    return StoreConfig(url=url, kind="sqlite", path=path)


def store_exists(cfg: StoreConfig) -> bool:
    """Whether the store has been created (by a first append): reads of a store that does not exist
    fail rather than create it, on PostgreSQL (a schema with the ledger's tables) as on SQLite (a file)."""
    if cfg.kind == "sqlite":
        return os.path.exists(cfg.path or DEFAULT_STORE)
    import psycopg

    env = cfg.env()
    try:
        with psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                             user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"], connect_timeout=5) as conn:
            row = conn.execute("SELECT to_regclass(%s)", (env["POSTGRES_SCHEMA"] + ".ledger_chain",)).fetchone()
    except psycopg.Error as e:
        raise StoreError(f"cannot open store {cfg.url}: {e}") from None
    return row is not None and row[0] is not None


SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_file_kind(path: str) -> str:
    """What a SQLite store's path holds, found without changing it: "missing" (no file, or an empty one),
    "ledger" (a carbon-ledger store), "other" (a SQLite database of something else) or "not-sqlite"."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "not-sqlite"
    if not header:
        return "missing"
    if header != SQLITE_HEADER:
        return "not-sqlite"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_chain'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return "not-sqlite"
    return "ledger" if row else "other"


def read_only(cfg: StoreConfig) -> bool:
    """Whether a SQLite store cannot be written here (file mode, an immutable file, read-only media):
    reads then fold what is missing in memory and write nothing."""
    return cfg.kind == "sqlite" and not os.access(cfg.path or DEFAULT_STORE, os.W_OK)


def check_store_path(cfg: StoreConfig, *, must_exist: bool) -> None:
    """Refuse, before anything opens it, a SQLite path that holds something other than a carbon-ledger store
    (bad input: nothing is written to it); with must_exist (reads), also one that holds nothing yet."""
    if cfg.kind != "sqlite":
        return
    path = cfg.path or DEFAULT_STORE
    kind = sqlite_file_kind(path)
    if kind == "not-sqlite":
        raise BadInput(f"{path} is not a carbon-ledger store (not a SQLite database)")
    if kind == "other" and must_exist:
        raise BadInput(f"{path} is a SQLite database but not a carbon-ledger store; reads leave it unchanged")
    if kind == "missing" and must_exist:
        raise StoreError(f"no store at {path}: record something first, or pass --store")


class LedgerRecorderMixin:
    """The ledger's extra reads and writes, in terms of a DB-API cursor (`?` placeholders)."""

    def _extra_tables(self) -> list[str]:
        return list(EXTRA_TABLES)

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Held by a registry across read-decide-append, where the store needs it to avoid starving writers.

        SQLite needs none: BEGIN IMMEDIATE waits its turn, and a writer that lost a race retries at once.
        """
        yield

    def _insert_many(self, c: Any, table: str, rows: Sequence[tuple]) -> None:
        """Insert rows of whole tuples into one of our tables."""
        c.executemany(self._q(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})"), rows)

    # ---- writes (inside the events' transaction) ----------------------------------------
    def _chain_and_extras(self, c: Any, stored_events: Sequence[StoredEvent], ids: Sequence[int],
                          commands: Sequence[tuple] = (), snapshot: tuple | None = None) -> None:
        c.execute(self._q("SELECT position, hash FROM ledger_chain ORDER BY position DESC LIMIT 1"))
        row = c.fetchone()
        position, h = (row[0], row[1]) if row else (0, GENESIS_HASH)
        chain = []
        for s, nid in zip(stored_events, ids, strict=True):
            position += 1
            h = chain_hash(h, bytes(s.state))
            chain.append((position, nid, h))
        if chain:
            self._insert_many(c, "ledger_chain", chain)
        if commands:
            self._insert_many(c, "ledger_commands", list(commands))
        if snapshot is not None:
            self._upsert(c, "ledger_snapshot", ("name", "position", "state"), snapshot)

    # ---- reads ----------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        with self._read() as c:
            c.execute(self._q("SELECT position, hash FROM ledger_chain ORDER BY position DESC LIMIT 1"))
            row = c.fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def command_count_and_head(self) -> tuple[int, int]:
        """The number of command-id rows and the head position, read by one statement (one snapshot of both)."""
        with self._read() as c:
            c.execute("SELECT (SELECT COUNT(*) FROM ledger_commands),"
                      " (SELECT COALESCE(MAX(position), 0) FROM ledger_chain)")
            row = c.fetchone()
        return int(row[0]), int(row[1])

    def hash_at(self, position: int) -> str | None:
        if position == 0:
            return GENESIS_HASH
        with self._read() as c:
            c.execute(self._q("SELECT hash FROM ledger_chain WHERE position = ?"), (position,))
            row = c.fetchone()
        return row[0] if row else None

    def read_events(self, after: int = 0, upto: int | None = None, page: int = PAGE_SIZE) -> Iterator[tuple]:
        """(position, hash, state bytes) in position order, streamed in pages."""
        while True:
            limit = page if upto is None else min(page, upto - after)
            if limit <= 0:
                return
            with self._read() as c:
                c.execute(
                    self._q(
                        f"SELECT c.position, c.hash, e.state FROM ledger_chain c JOIN {self.events_table_name} e"
                        f" ON e.{self._nid} = c.notification_id WHERE c.position > ? ORDER BY c.position LIMIT ?"
                    ),
                    (after, limit),
                )
                rows = c.fetchall()
            for r in rows:
                yield r[0], r[1], bytes(r[2])
            if len(rows) < limit:
                return
            after = rows[-1][0]

    def raw_rows(self, after_id: int = 0, page: int = PAGE_SIZE) -> Iterator[tuple]:
        """Every stored event row in notification order: (notification id, version, topic, state)."""
        while True:
            with self._read() as c:
                c.execute(
                    self._q(
                        f"SELECT {self._nid}, originator_version, topic, state FROM {self.events_table_name}"
                        f" WHERE {self._nid} > ? ORDER BY {self._nid} LIMIT ?"
                    ),
                    (after_id, page),
                )
                rows = c.fetchall()
            for r in rows:
                yield r[0], r[1], r[2], bytes(r[3])
            if len(rows) < page:
                return
            after_id = rows[-1][0]

    def chain_rows(self, after: int = 0, page: int = PAGE_SIZE) -> Iterator[tuple]:
        while True:
            with self._read() as c:
                c.execute(
                    self._q("SELECT position, notification_id, hash FROM ledger_chain WHERE position > ?"
                            " ORDER BY position LIMIT ?"),
                    (after, page),
                )
                rows = c.fetchall()
            yield from (tuple(r) for r in rows)
            if len(rows) < page:
                return
            after = rows[-1][0]

    def lookup_commands(self, command_ids: Sequence[str]) -> dict[str, tuple[str, int, int, bytes]]:
        out: dict[str, tuple[str, int, int, bytes]] = {}
        ids = list(command_ids)
        with self._read() as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                c.execute(
                    self._q("SELECT command_id, digest, first_position, last_position, result FROM ledger_commands"
                            f" WHERE command_id IN ({','.join('?' * len(chunk))})"),
                    chunk,
                )
                for r in c.fetchall():
                    out[r[0]] = (r[1], r[2], r[3], bytes(r[4]))
        return out

    def load_snapshot(self, name: str = "ledger") -> tuple[int, bytes] | None:
        with self._read() as c:
            c.execute(self._q("SELECT position, state FROM ledger_snapshot WHERE name = ?"), (name,))
            row = c.fetchone()
        return (row[0], bytes(row[1])) if row else None

    def save_snapshot(self, name: str, position: int, state: bytes) -> None:
        """Replace the write-side snapshot, unless a newer one was written meanwhile."""
        with self._write() as c:
            c.execute(self._q("SELECT position FROM ledger_snapshot WHERE name = ?"), (name,))
            row = c.fetchone()
            if row is None or row[0] <= position:
                self._upsert(c, "ledger_snapshot", ("name", "position", "state"), (name, position, state))

    # ---- read models ------------------------------------------------------------------
    def load_readmodel(self, name: str) -> tuple[int, bytes] | None:
        with self._read() as c:
            c.execute(self._q("SELECT position, state FROM rm_state WHERE name = ?"), (name,))
            row = c.fetchone()
        return (row[0], bytes(row[1])) if row else None

    def readmodel_positions(self) -> dict[str, int]:
        with self._read() as c:
            c.execute(self._q("SELECT name, position FROM rm_state"))
            return {r[0]: r[1] for r in c.fetchall()}

    def save_readmodels(self, expected: dict[str, int], states: dict[str, tuple[int, bytes]],
                        history: Sequence[tuple] = (), checkpoints: Sequence[tuple] = ()) -> bool:
        """Write read models and their positions in one transaction, if nobody moved them meanwhile."""
        with self._write() as c:
            c.execute(self._q("SELECT name, position FROM rm_state"))
            now = {r[0]: r[1] for r in c.fetchall()}
            for name, pos in expected.items():
                if now.get(name, 0) != pos:
                    return False
            for name, (pos, blob) in states.items():
                self._upsert(c, "rm_state", ("name", "position", "state"), (name, pos, blob))
            if history:
                self._insert_many(c, "rm_history", list(history))
            for cp in checkpoints:
                self._upsert(c, "rm_checkpoint", ("name", "position", "state"), cp)
        return True

    def history_rows(self, account_id: str, upto: int | None = None) -> list[tuple[int, int, int, int]]:
        """One account's movements in order: (position, seq, quantity, balance)."""
        with self._read() as c:
            if upto is None:
                c.execute(self._q("SELECT position, seq, quantity, balance FROM rm_history WHERE account_id = ?"
                                  " ORDER BY position, seq"), (account_id,))
            else:
                c.execute(self._q("SELECT position, seq, quantity, balance FROM rm_history WHERE account_id = ?"
                                  " AND position <= ? ORDER BY position, seq"), (account_id, upto))
            return [tuple(r) for r in c.fetchall()]

    def history_pages(self, page: int = 20_000) -> Iterator[list[tuple]]:
        """Every stored history row in event order, a page at a time: (account, position, seq, quantity, balance)."""
        after = (0, -1)
        while True:
            with self._read() as c:
                c.execute(self._q(HISTORY_PAGE_SQL), (*after, page))
                rows = [tuple(r) for r in c.fetchall()]
            if rows:
                yield rows
            if len(rows) < page:
                return
            after = (rows[-1][1], rows[-1][2])

    def history_rows_all(self) -> Iterator[tuple]:
        """Every stored history row in event order: (account, position, seq, quantity, balance)."""
        for rows in self.history_pages():
            yield from rows

    def claim_nonce(self, nonce: str, until: float, now: float) -> bool:
        """Record a signed request's nonce for every server process on this store; False when it is there
        already (a replay within its window). Expired nonces are dropped as new ones come."""
        with self._nonce_write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS ledger_nonces (nonce TEXT PRIMARY KEY, expires BIGINT NOT NULL)")
            c.execute(self._q("DELETE FROM ledger_nonces WHERE expires < ?"), (int(now),))
            c.execute(self._q("INSERT INTO ledger_nonces (nonce, expires) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING"),
                      (nonce, int(until) + 1))
            return c.rowcount == 1

    def _nonce_write(self) -> Any:
        return self._write()

    def events_at(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The stored bytes of the events at these positions (those that exist)."""
        out: dict[int, bytes] = {}
        wanted = sorted(set(positions))
        with self._read() as c:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                c.execute(
                    self._q(
                        f"SELECT c.position, e.state FROM ledger_chain c JOIN {self.events_table_name} e"
                        f" ON e.{self._nid} = c.notification_id WHERE c.position IN ({','.join('?' * len(chunk))})"
                    ),
                    chunk,
                )
                out.update((r[0], bytes(r[1])) for r in c.fetchall())
        return out

    def _read_model_format(self, c: Any) -> int | None:
        c.execute(self._q("SELECT format FROM rm_format"))
        row = c.fetchone()
        return None if row is None else (row[0] if isinstance(row, tuple) else row["format"])

    def _drop_read_models(self, c: Any) -> None:
        """Drop every read model table (the caller creates them anew, then records READ_MODEL_FORMAT)."""
        for t in READ_MODEL_TABLES:
            c.execute(f"DROP TABLE IF EXISTS {t}")
        c.execute("DELETE FROM rm_format")

    def checkpoint_keys(self) -> list[tuple[str, int]]:
        """(name, position) of every stored as-of checkpoint."""
        with self._read() as c:
            c.execute(self._q("SELECT name, position FROM rm_checkpoint ORDER BY position, name"))
            return [(r[0], r[1]) for r in c.fetchall()]

    def checkpoint_at(self, name: str, position: int) -> bytes | None:
        with self._read() as c:
            c.execute(self._q("SELECT state FROM rm_checkpoint WHERE name = ? AND position = ?"), (name, position))
            row = c.fetchone()
        return bytes(row[0]) if row else None

    def checkpoint_before(self, name: str, position: int) -> tuple[int, bytes] | None:
        with self._read() as c:
            c.execute(self._q("SELECT position, state FROM rm_checkpoint WHERE name = ? AND position <= ?"
                              " ORDER BY position DESC LIMIT 1"), (name, position))
            row = c.fetchone()
        return (row[0], bytes(row[1])) if row else None


class LedgerSQLiteRecorder(LedgerRecorderMixin, SQLiteApplicationRecorder):
    """SQLite recorder: events, chain and extras in one BEGIN IMMEDIATE transaction."""

    _nid = "rowid"

    @staticmethod
    def _q(sql: str) -> str:
        return sql

    def create_table(self) -> None:
        """The tables, and read models of the present format, under the write lock (BEGIN IMMEDIATE): processes
        opening a store at once take turns. (The library's deferred transaction failed with "database is
        locked" when another opener changed the schema under it.) When nothing is missing, nothing is written."""
        with self._write() as c:
            for statement in self.create_table_statements:
                c.execute(statement)
            if self._read_model_format(c) != READ_MODEL_FORMAT:
                self._drop_read_models(c)
                for statement in self.create_table_statements:
                    c.execute(statement)
                c.execute("INSERT INTO rm_format VALUES (?)", (READ_MODEL_FORMAT,))

    def construct_create_table_statements(self) -> list[str]:
        return (super().construct_create_table_statements() + self._extra_tables()
                + [f"CREATE INDEX IF NOT EXISTS {n} ON {t} ({cols})" for n, t, cols in EXTRA_INDEXES])

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self.datastore.get_connection(commit=True) as conn:
            raw: sqlite3.Connection = conn._sqlite_conn
            cur = raw.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                raw.commit()
            except BaseException as e:
                if raw.in_transaction:
                    raw.rollback()
                if isinstance(e, sqlite3.IntegrityError):
                    raise IntegrityError(e) from e
                if isinstance(e, sqlite3.OperationalError):
                    raise OperationalError(e) from e
                if isinstance(e, sqlite3.Error):
                    raise PersistenceError(e) from e
                raise
            finally:
                cur.close()

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=False) as c:
            yield c

    @staticmethod
    def _upsert(c: Any, table: str, cols: tuple[str, ...], values: tuple) -> None:
        c.execute(f"INSERT OR REPLACE INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", values)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self._write() as c:
            return self._insert_events(c, stored_events, **kwargs)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        c.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}")
        start = (c.fetchone()[0] or 0) + 1
        hexes: dict[Any, str] = {}  # a batch has one or a few originators: convert each id once

        def hex_of(oid: Any) -> str:
            h = hexes.get(oid)
            if h is None:
                h = hexes[oid] = oid.hex if hasattr(oid, "hex") else oid
            return h

        c.executemany(
            self.insert_events_statement,
            [(hex_of(s.originator_id), s.originator_version, s.topic, s.state) for s in stored_events],
        )
        ids = list(range(start, start + len(stored_events)))
        self._chain_and_extras(c, stored_events, ids, kwargs.get("commands", ()), kwargs.get("snapshot"))
        return ids
