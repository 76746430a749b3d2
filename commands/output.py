"""Printing: JSON for scripts, CSV for spreadsheets, rich tables for people."""

from __future__ import annotations

import csv
import sys
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


def emit_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    cols = columns or (list(rows[0].keys()) if rows else [])
    t = Table(title=title, show_lines=False)
    for c in cols:
        numeric = bool(rows) and isinstance(rows[0].get(c), int)
        t.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*["" if r.get(c) is None else (f"{r[c]:,}" if isinstance(r.get(c), int) and not isinstance(r.get(c), bool) and c not in ("year", "vintage", "position") else str(r[c])) for c in cols])
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    console.print(t)
