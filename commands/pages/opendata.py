"""The open-data tables: what the public pages show, as CSV and JSON at stable URLs (/data/v1/...).

Each table's rows are taken, field for field, from the read functions the CLI's `--json` uses
(projections.compliance.rows and coverage, projections.market.report): nothing is recomputed here, only
columns chosen. Quantities are integers, money and prices exact decimal strings (two places), a missing
value is null in JSON and empty in CSV. Nothing private: no holdings, no transfers, no counterparties.

JSON: {"schema_version", "table", "position", "hash", "columns", "rows", ...the table's parameters}.
CSV: a first comment line `# schema_version=1 table=... position=N hash=H` (and the parameters), then the
header row and the rows. docs/open-data.md describes every column (from COLUMNS below)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

SCHEMA_VERSION = 1

# Each column once, with its description (docs/open-data.md and the /audit page list them from here).
COLUMNS: dict[str, str] = {
    "firm_id": "the firm's registry id",
    "name": "the firm's registered name",
    "sector": "its sector (power, steel, cement, aluminium, ...)",
    "region": "its province or region",
    "period": "the compliance period (a year, or first-last for a two-year period)",
    "year": "the first year of the period (compliance tables); the calendar year of trade dates (market)",
    "free_allocation": "allowances allocated free for the period, exemptions included (t)",
    "exemptions": "of which issued as gas-unit and gap-cap exemptions (t)",
    "verified": "verified emissions of the period (t); empty: none verified",
    "obligation": "allowances owed: the verified emissions (t)",
    "surrendered_cea": "CEA surrendered for the period (t)",
    "surrendered_ccer": "CCER surrendered for the period (t)",
    "shortfall": "obligation not surrendered (t)",
    "status": "A surrendered at least the obligation, B less, C no verified emissions, - no obligation;"
              " * changed after the period closed",
    "fine": "fine assessed (yuan, exact decimal)",
    "deduction": "allowances deducted from the next allocation (t)",
    "date": "the trading day (YYYY-MM-DD, trade date)",
    "unit": "the unit traded (CEA, CCER)",
    "vintage": "the product's vintage (each vintage of a unit is its own product)",
    "open": "first listed-agreement price of the day (yuan/t)",
    "high": "highest listed price of the day (yuan/t)",
    "low": "lowest listed price of the day (yuan/t)",
    "close": "volume-weighted average of the day's listed trades; without one, the previous close (yuan/t)."
             " Yearly: the close on its last trading day of the product traded most that year",
    "volume": "tonnes traded, all trade modes",
    "value": "yuan traded (exact decimal), all trade modes",
    "trades": "number of trades",
    "average_price": "value / volume (yuan/t)",
    "firms": "firms registered in the sector",
    "verified_firms": "of which with verified emissions for the year",
    "share": "the sector's share of the year's verified emissions (%)",
}

COMPLIANCE = ["firm_id", "name", "sector", "region", "period", "year", "free_allocation", "exemptions", "verified",
              "obligation", "surrendered_cea", "surrendered_ccer", "shortfall", "status", "fine", "deduction"]
MARKET_DAILY = ["date", "unit", "vintage", "open", "high", "low", "close", "volume", "value", "trades"]
MARKET_YEARLY = ["year", "volume", "value", "trades", "average_price", "close"]
COVERAGE = ["sector", "firms", "verified_firms", "verified", "share"]
FIRM = ["period", "year", "sector", "region", "free_allocation", "exemptions", "verified", "obligation",
        "surrendered_cea", "surrendered_ccer", "shortfall", "status", "fine", "deduction"]

# The files: URL (with its parameter), table columns, what it holds.
FILES: list[tuple[str, list[str], str]] = [
    ("/data/v1/compliance/{year}.csv|.json", COMPLIANCE, "one row per firm for the compliance period of the year"),
    ("/data/v1/market/daily.csv|.json?unit=CEA", MARKET_DAILY, "one row per trading day and product"),
    ("/data/v1/market/yearly.csv|.json?unit=CEA", MARKET_YEARLY, "one row per calendar year of trade dates"),
    ("/data/v1/coverage/{year}.csv|.json", COVERAGE, "one row per sector: firms and verified emissions"),
    ("/data/v1/firms/{firm_id}.csv|.json", FIRM, "one firm's public record, one row per compliance period"),
]


def pick(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    return [{c: r.get(c) for c in columns} for r in rows]


def as_json(table: str, position: int, hash_: str, columns: list[str], rows: list[dict[str, Any]],
            **params: Any) -> bytes:
    return orjson.dumps({"schema_version": SCHEMA_VERSION, "table": table, **params, "position": position,
                         "hash": hash_, "columns": columns, "rows": pick(rows, columns)}, option=orjson.OPT_INDENT_2)


def as_csv(table: str, position: int, hash_: str, columns: list[str], rows: list[dict[str, Any]],
           **params: Any) -> str:
    out = io.StringIO()
    extra = "".join(f" {k}={v}" for k, v in params.items())
    out.write(f"# schema_version={SCHEMA_VERSION} table={table}{extra} position={position} hash={hash_}\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return out.getvalue()


def markdown_columns() -> str:
    """The column table of docs/open-data.md (a test checks the document holds it)."""
    lines = ["| column | meaning |", "| --- | --- |"]
    lines += [f"| `{c}` | {d.replace('|', '/')} |" for c, d in COLUMNS.items()]
    return "\n".join(lines)
