"""What every decision shares: its return type and the plans' rounding."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

# A decision returns the events to record, as (type, data) pairs in order, and extra fields for the result.
Decided = tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]


def floor_t(x: Decimal) -> int:
    """Whole tonnes, rounded down (the allocation plans floor at the unit)."""
    return int(x.to_integral_value(rounding=ROUND_FLOOR))
