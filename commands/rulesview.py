"""`rules show` for people: the rules in force as one table of dotted names and values (`--json` keeps the tree)."""

from __future__ import annotations

from typing import Any


def flatten(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """Nested rules data as rows {"rule", "value"}: dict keys joined by dots, lists of plain values by ", "."""
    if isinstance(data, dict):
        rows: list[dict[str, str]] = []
        for key, value in data.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(data, list) and not any(isinstance(v, (dict, list)) for v in data):
        return [{"rule": prefix, "value": ", ".join(_text(v) for v in data)}]
    if isinstance(data, list):
        return [row for i, v in enumerate(data) for row in flatten(v, f"{prefix}.{i}")]
    return [{"rule": prefix, "value": _text(data)}]


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_rules(data: dict[str, Any]) -> None:
    from commands.output import emit_table

    rows = [r for r in flatten(data) if r["rule"] != "year"]
    emit_table(f"Rules in force for {data.get('year')}", rows, ["rule", "value"])
