"""Shared test configuration and fixtures."""

# ---- Hypothesis profiles (tests/property) ------------------------------------------------------------
# `ci` is the default: derandomized, no deadline, sized so that tests/property runs in a minute or two on a
# 2-core machine. `long` is for soaks: `pytest --hypothesis-profile=long tests/property` (the plugin applies
# the option after this file is imported, so it overrides the default). A failure prints the minimal
# example; for the stateful test, the shrunk command sequence.
import os as _os

from hypothesis import HealthCheck as _HealthCheck
from hypothesis import settings as _settings

_settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=120,
    stateful_step_count=60,
    database=None,
    suppress_health_check=[_HealthCheck.too_slow, _HealthCheck.data_too_large],
)
_settings.register_profile(
    "long",
    deadline=None,
    max_examples=2_000,
    stateful_step_count=150,
    database=None,
    print_blob=True,
    suppress_health_check=[_HealthCheck.too_slow, _HealthCheck.data_too_large],
)
_settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ---- fixtures of the regular suite (tests/test_*.py) ----------------------------------------------
from collections.abc import Iterator as _Iterator
from pathlib import Path as _Path
from typing import Any as _Any

import pytest as _pytest


@_pytest.fixture
def ledger_db(tmp_path: _Path) -> str:
    """The path of a fresh SQLite store in tmp_path (created by its first command)."""
    return str(tmp_path / "ledger.db")


@_pytest.fixture
def registry(store_url: str) -> _Iterator[_Any]:
    """An open (not enforced) Registry on a fresh store, closed afterwards: runs on SQLite and PostgreSQL.

    A test that also reads the store through the CLI asks for `store_url` (the same store)."""
    from ledger.registry import Registry

    reg = Registry(store_url)
    try:
        yield reg
    finally:
        reg.close()


# ---- stores: `store_url` runs a test on a SQLite file and on a fresh PostgreSQL schema ----------------
# The PostgreSQL server is CARBON_LEDGER_TEST_POSTGRES (e.g. postgresql://postgres@127.0.0.1:5432/test);
# without it the PostgreSQL cases are skipped. Each PostgreSQL case gets its own schema, dropped afterwards.
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_ENV = "CARBON_LEDGER_TEST_POSTGRES"
PG_SKIP_REASON = f"PostgreSQL tests need {PG_ENV}=postgresql://USER@HOST:PORT/DB (scratch schemas)"


def _drop_pg_schema(base_url: str, schema: str) -> None:
    import psycopg
    from psycopg.sql import SQL, Identifier

    with psycopg.connect(base_url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL naming a fresh PostgreSQL schema `t_<random>` (created on first open), dropped afterwards."""
    base = os.environ.get(PG_ENV, "").strip()
    if not base:
        pytest.skip(PG_SKIP_REASON)
    schema = "t_" + uuid.uuid4().hex[:16]
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    finally:
        _drop_pg_schema(base, schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
    else:
        yield request.getfixturevalue("pg_schema_url")


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


@pytest.fixture
def new_store(store_url: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """`new_store(name)`: another fresh store of the same kind as `store_url` (a second SQLite file in
    tmp_path, or another PostgreSQL schema, dropped afterwards), for tests that compare two stores."""
    schemas: list[str] = []
    base = os.environ.get(PG_ENV, "").strip()

    def make(name: str) -> str:
        if not _is_postgres(store_url):
            return str(tmp_path / f"{name}.db")
        schemas.append("t_" + uuid.uuid4().hex[:16])
        return f"{base}{'&' if '?' in base else '?'}schema={schemas[-1]}"

    try:
        yield make
    finally:
        for schema in schemas:
            _drop_pg_schema(base, schema)
