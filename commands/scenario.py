"""`simulate` and `demo`: run a scenario through the registry's commands, with a progress bar, then report."""

from __future__ import annotations

import os
import sys
from typing import Any

import click


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
    from commands.cli import cli

    read_as = ["--as", summary["regulator"]] if summary.get("regulator") else []
    for args in (["market", "--by", "year"], ["compliance", "--year", "2024"], ["balances", "--totals"],
                 ["audit", "verify"]):
        click.echo("")
        cli.main(["--store", cfg.url, *read_as, *args], standalone_mode=False)
