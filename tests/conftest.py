"""Shared test configuration and fixtures."""

# ---- fixtures of the regular suite (tests/test_*.py) ----------------------------------------------
from collections.abc import Iterator as _Iterator  # noqa: E402
from pathlib import Path as _Path  # noqa: E402
from typing import Any as _Any  # noqa: E402

import pytest as _pytest  # noqa: E402


@_pytest.fixture
def ledger_db(tmp_path: _Path) -> str:
    """The path of a fresh SQLite store in tmp_path (created by its first command)."""
    return str(tmp_path / "ledger.db")


@_pytest.fixture
def registry(ledger_db: str) -> _Iterator[_Any]:
    """An open (not enforced) Registry on a fresh SQLite store, closed afterwards."""
    from ledger.registry import Registry

    reg = Registry(ledger_db)
    try:
        yield reg
    finally:
        reg.close()
