"""Helpers for the regular test suite: read a store's events, run the CLI three ways, tamper with rows.

Three ways to run the CLI, from cheapest to most faithful:
- `invoke`: click's CliRunner on `commands.cli.cli` (in-process; a LedgerError stays in `result.exception`);
- `run_main`: `commands.cli.main()` in-process with sys.argv patched (the real exit-code mapping);
- `run_exe`: the installed `carbon-ledger` executable in a subprocess (the whole contract, slowest).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from ledger.errors import LedgerError
from ledger.events import GENESIS_HASH, chain_hash, decode
from ledger.registry import Registry

# Variables a developer's shell may carry; every CLI run here starts without them.
CLI_ENV_CLEAR = {"CARBON_LEDGER_STORE": None, "CARBON_LEDGER_ACTOR": None, "CARBON_LEDGER_KEY": None}

EXE = shutil.which("carbon-ledger", path=os.path.dirname(sys.executable)) or shutil.which("carbon-ledger")


def events(reg_or_recorder: Any) -> list[dict[str, Any]]:
    """Every stored event envelope, in position order."""
    rec = getattr(reg_or_recorder, "recorder", reg_or_recorder)
    return [decode(blob) for _pos, _h, blob in rec.read_events()]


def head(reg: Registry) -> int:
    return reg.head()[0]


def refusal(fn: Any, *args: Any, **kwargs: Any) -> LedgerError:
    """Call a registry command that must be refused; return the error."""
    try:
        fn(*args, **kwargs)
    except LedgerError as e:
        return e
    raise AssertionError(f"{getattr(fn, '__name__', fn)}{args} was not refused")


class Clock:
    """A settable clock for `Registry(clock=...)`, so recorded_at is known to the test."""

    def __init__(self, start: str = "2024-06-03T09:30:00") -> None:
        self.now = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: str) -> None:
        self.now = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)


# ---- the CLI ----------------------------------------------------------------------------------


def invoke(
    store: str, *args: str, input: str | None = None, env: dict[str, str | None] | None = None
) -> Result:
    """`carbon-ledger --store STORE ARGS` through click's CliRunner."""
    from commands.cli import cli

    return CliRunner().invoke(
        cli,
        ["--store", store, *args],
        input=input,
        env={**CLI_ENV_CLEAR, **(env or {})},
        catch_exceptions=True,
    )


def invoke_json(store: str, *args: str, **kw: Any) -> Any:
    r = invoke(store, *args, "--json", **kw)
    assert r.exit_code == 0, f"{args}: exit {r.exit_code}: {r.exception!r} {r.stderr}"
    return json.loads(r.stdout)


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_main(store: str, *args: str, stdin: str | None = None) -> Run:
    """`commands.cli.main()` in-process: the real mapping of errors to exit codes and stderr lines."""
    from commands.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv, old_stdin = sys.argv, sys.stdin
    sys.argv = ["carbon-ledger", "--store", store, *args]
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    saved = {k: os.environ.pop(k) for k in list(CLI_ENV_CLEAR) if k in os.environ}
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.stdin = argv, old_stdin
        os.environ.update(saved)
    return Run(code, out.getvalue(), err.getvalue())


def run_exe(store: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
    """The installed executable in a subprocess."""
    assert EXE, "the carbon-ledger executable is not installed beside this python"
    e = {k: v for k, v in os.environ.items() if k not in CLI_ENV_CLEAR}
    e.update(env or {})
    p = subprocess.run(
        [EXE, "--store", store, *args], capture_output=True, text=True, input=stdin, env=e, timeout=60,
        check=False,
    )
    return Run(p.returncode, p.stdout, p.stderr)


def export_lines(store: str) -> list[dict[str, Any]]:
    r = invoke(store, "audit", "export")
    assert r.exit_code == 0, r.exception
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


# ---- the raw store (what an attacker with file or database access could do) ------------------------

PG_EVENTS_TABLE = Registry.name.lower() + "_events"  # the eventsourcing library's table on PostgreSQL


def is_postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


class PgRaw:
    """A psycopg connection in a store's schema that runs the SQLite-dialect SQL of these helpers and tests:
    `?` -> `%s`, `stored_events` -> the events table, `rowid` -> notification_id, BLOB -> bytea."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @staticmethod
    def sql(statement: str) -> str:
        statement = re.sub(r"\bstored_events\b", PG_EVENTS_TABLE, statement)
        statement = re.sub(r"\browid\b", "notification_id", statement)
        statement = re.sub(r"\bBLOB\b", "bytea", statement)
        return statement.replace("?", "%s")

    def execute(self, statement: str, params: Any = ()) -> Any:
        return self.conn.execute(self.sql(statement), params or None)

    def executemany(self, statement: str, seq: Any) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self.sql(statement), list(seq))


@contextmanager
def raw_db(store: str) -> Iterator[Any]:
    """A raw connection to a store, committed on exit: sqlite3 on a SQLite file, `PgRaw` on PostgreSQL."""
    if is_postgres(store):
        import psycopg
        from psycopg.sql import SQL, Identifier

        from ledger.store import pg_schema

        with psycopg.connect(store.split("?", 1)[0]) as pg:  # commits on a clean exit
            pg.execute(SQL("SET search_path TO {}").format(Identifier(pg_schema(store))))
            yield PgRaw(pg)
        return
    conn = sqlite3.connect(store)
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def stored_rowids(conn: Any) -> list[int]:
    return [r[0] for r in conn.execute("SELECT rowid FROM stored_events ORDER BY rowid")]


def rehash_chain(conn: Any) -> None:
    """Recompute every chain hash from the stored rows, as a forger who knows the scheme would."""
    h = GENESIS_HASH
    rows = conn.execute(
        "SELECT c.position, e.state FROM ledger_chain c JOIN stored_events e"
        " ON e.rowid = c.notification_id ORDER BY c.position"
    ).fetchall()
    for pos, state in rows:
        h = chain_hash(h, bytes(state))
        conn.execute("UPDATE ledger_chain SET hash = ? WHERE position = ?", (h, pos))


def rewrite_event(conn: Any, position: int, change: Any) -> None:
    """Decode the event at `position`, let `change(envelope)` edit it, store it back canonically."""
    from ledger.events import canonical_bytes

    (nid,) = conn.execute(
        "SELECT notification_id FROM ledger_chain WHERE position = ?", (position,)
    ).fetchone()
    (state,) = conn.execute("SELECT state FROM stored_events WHERE rowid = ?", (nid,)).fetchone()
    env = decode(bytes(state))
    change(env)
    conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (canonical_bytes(env), nid))


def rewrite_command(conn: Any, position: int, **fields: Any) -> None:
    """Change fields of the command at `position` and of its event alike, and its command-id row's digest:
    a rewrite that re-execution cannot see on a store without signatures (the forger then rehashes)."""
    from ledger.decisions import command_digest

    def change(e: dict[str, Any]) -> None:
        e["data"].update(fields)
        e["command"]["args"].update(fields)

    rewrite_event(conn, position, change)
    (nid,) = conn.execute("SELECT notification_id FROM ledger_chain WHERE position = ?", (position,)).fetchone()
    env = decode(bytes(conn.execute("SELECT state FROM stored_events WHERE rowid = ?", (nid,)).fetchone()[0]))
    conn.execute("UPDATE ledger_commands SET digest = ? WHERE command_id = ?",
                 (command_digest(env["command"]["name"], env["command"]["args"]), env["command_id"]))


def truncate_after(conn: Any, position: int) -> None:
    """Delete every event after `position` with its chain row and command row (a consistent shorter log)."""
    nids = [
        r[0] for r in conn.execute("SELECT notification_id FROM ledger_chain WHERE position > ?", (position,))
    ]
    conn.executemany("DELETE FROM stored_events WHERE rowid = ?", [(n,) for n in nids])
    conn.execute("DELETE FROM ledger_chain WHERE position > ?", (position,))
    conn.execute("DELETE FROM ledger_commands WHERE last_position > ?", (position,))
    for t in ("ledger_snapshot", "rm_state", "rm_history", "rm_checkpoint"):
        conn.execute(f"DELETE FROM {t}")


def copy_store(src: str, dst: str | Path) -> str:
    """A consistent copy of a SQLite store (the backup API copies WAL content too)."""
    with sqlite3.connect(src) as s, sqlite3.connect(str(dst)) as d:
        s.backup(d)
    return str(dst)
