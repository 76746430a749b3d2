"""`simulate` and `demo`: run a scenario through the registry's commands, with a progress bar, then report."""

from __future__ import annotations

import os
from typing import Any

import click

from commands.context import Ctx, pass_ctx
from commands.output import progress_bar


def run_simulate(c: Any, scenario: str, scale: float, seed: int, enforce: bool) -> None:
    c.need_local()
    from commands.simulate import simulate

    with progress_bar("simulating") as progress:
        summary = simulate(c.registry, scenario=scenario, scale=scale, seed=seed, progress=progress, enforce=enforce)
    click.echo(f"simulated {scenario} at scale {scale} (seed {seed}): {summary['events']:,} events in "
               f"{summary['seconds']:.1f} s ({summary['events_per_s']:,.0f} events/s)")


DEMO_STORE = "carbon-ledger-demo.db"
# SQLite's header field application_id marks a file the demo made (carbon-ledger's stores leave it 0), so a
# rerun replaces the demo's own store and nothing else.
DEMO_APPLICATION_ID = 0x434C4430  # "CLD0"


def _sqlite_application_id(path: str) -> int | None:
    """The application_id of a SQLite file, or None when the file is not a SQLite database."""
    import sqlite3

    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return None
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("PRAGMA application_id").fetchone()[0]
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return None


def _clear_demo_store(cfg: Any) -> None:
    """Make room for the demo: remove a store the demo made before; refuse anything else that exists."""
    from ledger.errors import BadInput
    from ledger.store import store_exists

    if cfg.kind != "sqlite":
        if store_exists(cfg):
            raise BadInput(f"demo: {cfg.url} is an existing store; the demo records only into a new one")
        return
    path = cfg.path or DEMO_STORE
    if not os.path.lexists(path):
        return
    if _sqlite_application_id(path) != DEMO_APPLICATION_ID:
        raise BadInput(f"demo: {path} exists and is not a store the demo made; it records only into a new"
                       " store (pass --store NEW.db, or remove the file yourself)")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def _mark_demo_store(cfg: Any) -> None:
    import sqlite3

    if cfg.kind == "sqlite":
        conn = sqlite3.connect(cfg.path or DEMO_STORE)
        try:
            conn.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
            conn.commit()
        finally:
            conn.close()


def run_demo(c: Any, enforce: bool) -> None:
    from ledger.store import parse_store

    c.need_local()
    cfg = parse_store(c.store or DEMO_STORE)
    _clear_demo_store(cfg)
    c.store = cfg.url
    click.echo(f"demo store: {cfg.url}")
    from commands.simulate import demo

    c.registry.head()  # opening the registry creates the store: mark it as the demo's before recording
    _mark_demo_store(cfg)
    with progress_bar("simulating") as progress:
        summary = demo(c.registry, progress=progress, enforce=enforce)
    click.echo(f"recorded {summary['events']:,} events in {summary['seconds']:.1f} s "
               f"({summary['events_per_s']:,.0f} events/s)")
    from commands import read
    from commands.audit import run_verify

    for show in (lambda: read.show_market(c, by="year"), lambda: read.show_compliance(c, year=2024),
                 lambda: read.show_balances(c, totals=True), lambda: run_verify(c, None, False)):
        click.echo("")
        show()


SCENARIO_NAMES = ["china-2021-2024", "china-2021-2025"]  # named here: the CLI starts without importing the engine


@click.command()
@click.argument("scenario", type=click.Choice(SCENARIO_NAMES))  # commands.simulate.SCENARIOS (a test checks)
@click.option("--scale", type=click.FloatRange(0.0001, 2.0), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--enforce", is_flag=True, help="Run on an enforced store, as named actors.")
@pass_ctx
def simulate(c: Ctx, scenario: str, scale: float, seed: int, enforce: bool) -> None:
    """Replay a market scenario through the registry's commands."""
    run_simulate(c, scenario, scale, seed, enforce)


@click.command()
@click.option("--enforce", is_flag=True, help="Run on an enforced store, as named actors.")
@pass_ctx
def demo(c: Ctx, enforce: bool) -> None:
    """A small, fast market into a fresh store here; then the market, compliance and audit verify."""
    run_demo(c, enforce)
