"""Upgrades: a write-side snapshot of an older shape is ignored once and replaced as soon as the state is
loaded, even when the command is refused (not refolded on every command); read models of an older shape are
rebuilt."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from typing import Any

import orjson
from ledgerkit import CLI_ENV_CLEAR, EXE, invoke_json, raw_db, run_main

from ledger import registry as registry_module
from ledger.model import SNAPSHOT_VERSION
from ledger.registry import Command, Registry


def test_an_older_snapshot_is_replaced_by_the_next_command(ledger_db: str) -> None:
    reg = Registry(ledger_db)
    reg.execute_batch([Command("firm register", {"firm_id": f"F{i:04d}", "name": "n", "sector": "power",
                                                 "region": "r"}, f"c-{i}") for i in range(600)])
    head = reg.head()[0]
    assert head >= registry_module.SNAPSHOT_EVERY
    reg.close()
    with sqlite3.connect(ledger_db) as con:  # the shape of a snapshot written before versions
        pos, blob = con.execute("SELECT position, state FROM ledger_snapshot").fetchone()
        old = orjson.loads(blob)
        old.pop("version")
        con.execute("UPDATE ledger_snapshot SET state = ?", (orjson.dumps(old),))
    assert pos == head

    reg = Registry(ledger_db)
    refused = reg.execute_batch([Command("transfer", {"from_account": "F0001", "to_account": "F0002", "unit": "CEA",
                                                      "vintage": 2024, "quantity": 1}, "c-t1")])
    assert refused[0].code == "insufficient_holding"
    reg.close()
    with sqlite3.connect(ledger_db) as con:
        pos, blob = con.execute("SELECT position, state FROM ledger_snapshot").fetchone()
    assert pos == head  # replaced at load, by a command that appended nothing
    assert orjson.loads(blob)["version"] == SNAPSHOT_VERSION


def _old_shaped_store(store_url: str) -> tuple[Any, Any]:
    """A store of read-model format 1, whose account history held each row's whole JSON (a `row` column), its
    read models caught up to the head (so nothing but the upgrade would rebuild them). Returns the history
    of F2 and the balances as the store answered before it was given the old shape."""
    reg = Registry(store_url)
    reg.register_firm("F1", "U1", "power", "Hubei")
    reg.register_firm("F2", "U2", "power", "Hebei")
    reg.open_year(2024)
    reg.issue("F1", "CEA", 2024, 1000, "pre-allocation")
    reg.transfer("F1", "F2", "CEA", 2024, 300)
    reg.trade("F2", "F1", "CEA", 2024, 50, "80.00", "listed", "2024-06-03")
    head = reg.head()[0]
    reg.close()
    history, balances = invoke_json(store_url, "history", "F2"), invoke_json(store_url, "balances")
    with raw_db(store_url) as conn:  # such stores recorded no read-model format
        conn.execute("DROP TABLE rm_format")
        conn.execute("DROP TABLE rm_history")
        conn.execute("CREATE TABLE rm_history (account_id TEXT NOT NULL, position INTEGER NOT NULL,"
                     " seq INTEGER NOT NULL, row BLOB NOT NULL, PRIMARY KEY (account_id, position, seq))")
        conn.execute("INSERT INTO rm_history VALUES ('F2', 5, 1, ?)", (b'{"quantity": 300}',))
        assert conn.execute("SELECT MIN(position) FROM rm_state").fetchone()[0] == head
    return history, balances


def test_read_models_of_an_older_shape_are_dropped_on_open_and_rebuilt_by_the_next_read(store_url: str) -> None:
    """The old-shaped store opens, drops its read models (derived, so nothing recorded is lost) and the next
    read rebuilds them from the log."""
    expected, balances = _old_shaped_store(store_url)
    assert invoke_json(store_url, "history", "F2") == expected
    assert invoke_json(store_url, "balances") == balances
    with raw_db(store_url) as conn:
        cols = [r[0] for r in conn.execute("SELECT * FROM rm_history LIMIT 0").description]
    assert cols == ["account_id", "position", "seq", "quantity", "balance"]
    r = run_main(store_url, "audit", "replay")
    assert r.code == 0, r.err
    assert [row["quantity"] for row in expected["rows"]] == [300, 50]  # the transfer in, the purchase


def test_processes_opening_an_old_shaped_store_at_once_all_answer(store_url: str) -> None:
    expected, balances = _old_shaped_store(store_url)
    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV_CLEAR}
    procs = [subprocess.Popen([EXE, "--store", store_url, "balances", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(6)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outs
    assert [json.loads(out) for out, _err in outs] == [balances] * 6
    assert invoke_json(store_url, "history", "F2") == expected
