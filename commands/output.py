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


STREAM_ABOVE = 100  # rows: rich lays a table out cell by cell (~1 ms a row); a longer body is written line by line


def _table(title: str, cols: list[str], rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for c in cols:
        sample = rows[0].get(c) if rows else None
        numeric = isinstance(sample, int) or (isinstance(sample, str) and bool(_MONEY.match(sample)))
        t.add_column(c, justify="right" if numeric else "left")
    return t


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    return console


def emit_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    cols = columns or (list(rows[0].keys()) if rows else [])
    t = _table(title, cols, rows)
    cells = [[_cell(c, r.get(c)) for c in cols] for r in rows]
    console = _console()
    if len(cells) > STREAM_ABOVE and _stream(console, t, cells):
        return
    for line in cells:
        t.add_row(*line)
    console.print(t)


def _stream(console: Any, t: Any, cells: list[list[str]]) -> bool:
    """Print the table as rich would, its body written line by line: rich lays out the title, the header and
    the borders around one row of the widest cells, and each row is padded to those widths. False (nothing
    printed) when the table is wider than the console, where rich would wrap cells."""
    from rich.cells import cell_len

    if any("\n" in cell for row in cells for cell in row):
        return False
    n = len(t.columns)
    widths = [cell_len(str(col.header)) for col in t.columns]
    widest = [""] * n
    lens = [[len(cell) if cell.isascii() else cell_len(cell) for cell in row] for row in cells]
    for row, row_lens in zip(cells, lens):
        for i, w in enumerate(row_lens):
            if w > widths[i] or (w == widths[i] and not widest[i]):
                widths[i], widest[i] = w, row[i]
    if sum(widths) + 3 * n + 1 > console.width:
        return False
    t.add_row(*widest)
    with console.capture() as cap:
        console.print(t)
    lines = cap.get().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    template = next((i for i, line in enumerate(lines) if line.startswith("│")), None)
    if template is None or template != len(lines) - 2:
        return False
    right = [col.justify == "right" for col in t.columns]
    out = sys.stdout
    out.write("\n".join(lines[:template]) + "\n")
    chunk: list[str] = []
    for row, row_lens in zip(cells, lens):
        parts = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - row_lens[i])
            parts.append(pad + cell if right[i] else cell + pad)
        chunk.append("│ " + " │ ".join(parts) + " │")
        if len(chunk) >= 1000:
            out.write("\n".join(chunk) + "\n")
            chunk = []
    if chunk:
        out.write("\n".join(chunk) + "\n")
    out.write(lines[-1] + "\n")
    return True


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
