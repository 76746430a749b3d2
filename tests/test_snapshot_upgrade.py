"""A write-side snapshot of an older shape is ignored once and replaced as soon as the state is loaded,
even when the command is refused: not refolded on every command."""

from __future__ import annotations

import sqlite3

import orjson

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
