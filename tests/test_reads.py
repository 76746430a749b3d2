"""Reads: a read of something that does not exist says so (exit 2, as writes do); conflicting options are
refused; --as-of-date says which date it means; a read never changes a file that is not a carbon-ledger
store."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from ledgerkit import run_main

FIRM = ["firm", "register", "F1", "--name", "Unit 1", "--sector", "power", "--region", "Hubei"]


@pytest.fixture
def store(store_url: str) -> str:
    assert run_main(store_url, *FIRM).code == 0
    assert run_main(store_url, "year", "open", "2024").code == 0
    assert run_main(store_url, "account", "open", "T1", "--holder", "F1").code == 0
    return store_url


@pytest.mark.parametrize("args, says", [
    (["balances", "F9"], "account F9 does not exist"),
    (["history", "F9"], "account F9 does not exist"),
    (["compliance", "--firm", "NOPE"], "firm NOPE does not exist"),
    (["compliance", "--year", "2030"], "no compliance year 2030"),
])
def test_a_read_of_something_that_does_not_exist_exits_2_and_says_so(store: str, args, says: str) -> None:
    r = run_main(store, *args)
    assert r.code == 2 and r.out == "" and r.err.startswith(f"error: {says}") and r.err.count("\n") == 1, r.err


def test_reads_of_accounts_that_exist_answer_even_when_they_hold_nothing(store: str) -> None:
    for args in (["balances", "T1"], ["history", "T1"], ["compliance", "--firm", "F1"],
                 ["compliance", "--year", "2024"]):
        r = run_main(store, *args, "--json")
        assert r.code == 0, (args, r.err)


def test_an_account_opened_after_the_position_asked_does_not_exist_there(store: str) -> None:
    r = run_main(store, "balances", "T1", "--as-of", "2")
    assert r.code == 2 and "account T1 does not exist (at position 2)" in r.err


@pytest.mark.parametrize("args", [
    ["balances", "--json", "--csv"],
    ["market", "--csv", "--json"],
    ["balances", "--as-of", "1", "--as-of-date", "2024-06-03"],
    ["history", "F1", "--as-of", "1", "--as-of-date", "2024-06-03"],
])
def test_conflicting_options_are_refused(store: str, args) -> None:
    r = run_main(store, *args)
    assert r.code == 2 and "conflict" in r.err and r.out == "", r.err


def test_as_of_date_help_says_it_means_the_recorded_time_not_the_business_date(store: str) -> None:
    for cmd in ("balances", "history", "market", "compliance", "coverage"):
        r = run_main(store, cmd, "--help")
        text = " ".join(r.out.split())
        assert "by the time each event was recorded, not by its business date" in text, cmd


def test_a_read_leaves_a_sqlite_file_of_another_application_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for args in (["balances"], ["history", "F1"], ["audit", "head"], ["audit", "verify"], ["audit", "replay"]):
        r = run_main(str(path), *args)
        assert r.code == 2 and "not a carbon-ledger store" in r.err, (args, r.err)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]


@contextlib.contextmanager
def read_only_file(path: Path):
    """The file made unwritable for this process: chmod for a plain user, the immutable flag for root
    (whom file modes do not stop); skipped where neither works."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("cannot make a file read-only for root here (no chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_reads_and_audits_work_on_a_read_only_store_without_writing(tmp_path: Path) -> None:
    from ledger.registry import Registry

    path = tmp_path / "s.db"
    reg = Registry(str(path))  # appended without the CLI: the read models are not caught up
    try:
        reg.register_firm("F1", "Unit 1", "power", "Hubei")
        reg.open_year(2024)
        reg.issue("F1", "CEA", 2024, 100, "auction")
    finally:
        reg.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with read_only_file(path):
        assert not os.access(path, os.W_OK)
        r = run_main(str(path), "balances", "--json")
        assert r.code == 0, r.err
        assert json.loads(r.out)["balances"] == [{"account_id": "F1", "unit": "CEA", "vintage": 2024, "quantity": 100}]
        r = run_main(str(path), "history", "F1", "--json")
        assert r.code == 0 and [x["quantity"] for x in json.loads(r.out)["rows"]] == [100], r.err
        for args in (["audit", "verify"], ["audit", "head"], ["compliance", "--json"], ["market", "--json"]):
            assert run_main(str(path), *args).code == 0, args
        r = run_main(str(path), "audit", "replay")  # on a copy: the stored read models lag the head here
        assert r.code == 0 and r.out.startswith("replay from 0 to 4 matches the stored read models"), r.err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_trade_is_read_by_its_trade_date_with_market_from_to_not_by_as_of_date(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    for args in (FIRM, ["firm", "register", "F2", "--name", "Unit 2", "--sector", "power", "--region", "Hebei"],
                 ["year", "open", "2024"],
                 ["issue", "F1", "--unit", "CEA", "--vintage", "2024", "--quantity", "1000", "--basis", "auction"],
                 ["trade", "--buyer", "F2", "--seller", "F1", "--unit", "CEA", "--vintage", "2024", "--quantity",
                  "100", "--price", "80.00", "--mode", "listed", "--date", "2024-06-03"]):
        assert run_main(path, *args).code == 0, args
    # recorded today: --as-of-date (the recorded time) of the trade date sees nothing yet
    assert json.loads(run_main(path, "balances", "--as-of-date", "2024-06-03", "--json").out)["balances"] == []
    day = json.loads(run_main(path, "market", "--by", "day", "--from", "2024-06-03", "--to", "2024-06-03",
                              "--json").out)["days"]
    assert [(d["date"], d["volume"]) for d in day] == [("2024-06-03", 100)]
    assert json.loads(run_main(path, "market", "--by", "day", "--from", "2024-06-04", "--json").out)["days"] == []
    r = run_main(path, "market", "--by", "year", "--from", "2024-06-03")
    assert r.code == 2 and "--by day" in r.err
