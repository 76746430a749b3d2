"""`carbon-ledger demo`: it records into a new store, or replaces a store it made itself, and never deletes
or writes into anything else (a registry, a text file), whether named by --store or CARBON_LEDGER_STORE."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from ledgerkit import EXE, run_exe, run_main

pytestmark = pytest.mark.skipif(EXE is None, reason="needs the installed carbon-ledger executable")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_refuses_a_file_that_is_not_its_own_store_and_leaves_it_untouched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    r = run_exe(str(notes), "demo")
    assert r.code == 2
    assert r.err.count("\n") == 1 and "notes.txt exists and is not a store the demo made" in r.err
    assert notes.read_text() == "my notes\n"


def test_demo_refuses_an_existing_registry_named_by_the_environment(tmp_path: Path) -> None:
    store = tmp_path / "registry.db"
    assert run_main(str(store), "firm", "register", "F1", "--name", "U", "--sector", "power",
                    "--region", "X").code == 0
    before = digest(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBON_LEDGER_")}
    r = subprocess.run([EXE, "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**env, "CARBON_LEDGER_STORE": str(store)})
    assert r.returncode == 2 and "registry.db exists and is not a store the demo made" in r.stderr
    assert digest(store) == before
    assert run_main(str(store), "audit", "head").out.startswith("2 ")


def test_demo_replaces_the_store_it_made_itself(tmp_path: Path) -> None:
    store = tmp_path / "demo.db"
    first = run_exe(str(store), "demo")
    assert first.code == 0, first.err
    again = run_exe(str(store), "demo")
    assert again.code == 0, again.err
    import re

    counts = [re.search(r"chain verified: (\d+) events", r.out).group(1) for r in (first, again)]
    assert counts[0] == counts[1]  # a fresh run, not the demo appended twice
    assert run_main(str(store), "audit", "head").out.split()[0] == counts[0]
