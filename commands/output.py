"""Printing: JSON for scripts, CSV for spreadsheets, rich tables for people."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson


def emit_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def emit_csv(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0].keys()), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})


_MONEY = re.compile(r"^-?\d+\.\d{2}$")
_PLAIN_INTS = ("year", "vintage", "position")


def _cell(column: str, value: Any) -> str:
    """For people: thousands separators on quantities and amounts (JSON and CSV keep plain numbers)."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and column not in _PLAIN_INTS:
        return f"{value:,}"
    if isinstance(value, str) and _MONEY.match(value):
        return f"{Decimal(value):,.2f}"
    return str(value)


def emit_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    cols = columns or (list(rows[0].keys()) if rows else [])
    t = Table(title=title, show_lines=False)
    for c in cols:
        sample = rows[0].get(c) if rows else None
        numeric = isinstance(sample, int) or (isinstance(sample, str) and bool(_MONEY.match(sample)))
        t.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*[_cell(c, r.get(c)) for c in cols])
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    console.print(t)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int | None], None] | None]:
    """A rich progress bar on stderr while the block runs, when stderr is a terminal; else nothing (None).

    The callback takes (done, total); total may be None while it is unknown. The bar is removed and the
    cursor shown again however the block ends."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task(description, total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    bar.start()
    try:
        yield update
    finally:
        bar.stop()
