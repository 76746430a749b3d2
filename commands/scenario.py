"""`simulate` and `demo`: run a scenario through the registry's commands, with a progress bar, then report."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from commands.context import Ctx, pass_ctx


def _progress_bar() -> tuple[Any, Any]:
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                   TimeElapsedColumn(), transient=True)
    bar.start()
    task = bar.add_task("simulating", total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, progress


def run_simulate(c: Any, scenario: str, scale: float, seed: int, enforce: bool) -> None:
    from commands.simulate import simulate

    bar, progress = _progress_bar()
    try:
        summary = simulate(c.registry, scenario=scenario, scale=scale, seed=seed, progress=progress, enforce=enforce)
    finally:
        if bar is not None:
            bar.stop()
    click.echo(f"simulated {scenario} at scale {scale} (seed {seed}): {summary['events']:,} events in "
               f"{summary['seconds']:.1f} s ({summary['events_per_s']:,.0f} events/s)")


def run_demo(c: Any, enforce: bool) -> None:
    from ledger.store import parse_store, store_exists

    cfg = parse_store(c.store or "carbon-ledger-demo.db")
    if cfg.kind == "sqlite" and store_exists(cfg):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists((cfg.path or "") + suffix):
                os.remove((cfg.path or "") + suffix)
    c.store = cfg.url
    click.echo(f"demo store: {cfg.url}")
    from commands.simulate import demo

    bar, progress = _progress_bar()
    try:
        summary = demo(c.registry, progress=progress, enforce=enforce) if enforce else demo(c.registry, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    click.echo(f"recorded {summary['events']:,} events in {summary['seconds']:.1f} s "
               f"({summary['events_per_s']:,.0f} events/s)")
    from commands import read
    from commands.audit import run_verify

    for show in (lambda: read.show_market(c, by="year"), lambda: read.show_compliance(c, year=2024),
                 lambda: read.show_balances(c, totals=True), lambda: run_verify(c, None, False)):
        click.echo("")
        show()


@click.command()
@click.argument("scenario", type=click.Choice(["china-2021-2024"]))
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
