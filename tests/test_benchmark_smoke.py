"""benchmarks/run.py runs end to end on a tiny store and reports every measure (no timing is asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("import_events_per_s", "raw_insert_rows_per_s", "import_ratio", "replay_events_per_s", "raw_read_rows_per_s",
        "replay_ratio", "cli_append_s", "bare_import_s", "cli_ratio", "replay_peak_rss_mb", "events", "as_of_max_s",
        "import_ceiling_ratio", "replay_ceiling_ratio", "replay_history_rows", "audit_replay_events_per_s",
        "catch_up_events_per_s", "verify_events_per_s", "verify_peak_rss_mb")


def test_benchmark_runs_on_a_tiny_store_and_reports_every_measure(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--events", "2000", "--cli-runs", "2", "--json",
         "--workdir", str(tmp_path)],
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=300,
    ).stdout
    r = json.loads(out)
    for key in KEYS:
        assert key in r, key
        assert r[key] > 0, (key, r[key])
    assert r["events"] == 2000
    # The CLI is timed with the project compiled, as an install leaves it (the dependencies it is compared
    # with are): every module has bytecode no older than its source, whatever PYTHONDONTWRITEBYTECODE says.
    import importlib.util

    for package in ("ledger", "commands", "projections"):
        for source in (ROOT / package).rglob("*.py"):
            compiled = Path(importlib.util.cache_from_source(str(source)))
            assert compiled.exists() and compiled.stat().st_mtime >= source.stat().st_mtime, source
    # the replay built the account history's rows , as `audit replay` does
    assert r["replay_history_rows"] > 0
    assert set(r["targets_met"]) == {"import_schema_ratio", "replay_decode_ratio", "cli_ratio", "as_of_max_s",
                                     "verify_events_per_s"}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk, the load generator (apt-get install wrk)")
def test_the_load_benchmark_runs_a_real_server_and_loses_no_command() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load.py"), "--clients", "4", "--seconds", "1", "--json"],
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=300,
    ).stdout
    r = json.loads(out)
    for name in ("sqlite", "sqlite_one_per_request"):
        assert r[name]["transfers"]["requests"] > 0 and r[name]["health"]["requests"] > 0
        assert r[name]["transfers"]["errors"] == 0
        assert r[name]["transfers"]["exhausted"] == 0  # every request posted a transfer of its own
        store = r[name]["store"]
        assert store["conserved"] and store["audit_verify_ok"]
        assert store["answered"] == store["unique_answers"] > 0
        assert store["answered_not_in_log"] == store["twice_in_log"] == 0
        assert store["transfers_in_log"] - store["answered"] == store["in_log_unanswered"] <= 4  # wrk's last ones
    assert r["sqlite_one_per_request"]["writer"]["transactions"] == r["sqlite_one_per_request"]["writer"]["commands"]
    for name in ("sqlite", "sqlite_one_per_request"):
        w = r[name]["writer"]
        assert 0 < w["slowest_ms"] and 0 <= w["over_50_ms"] <= w["transactions"]
    assert r["targets_met"]["no lost or duplicated command"]
    alone = r["writer_alone"]  # the writer's ceiling, in groups of the server's mean size and one per transaction
    w = r["sqlite"]["writer"]
    assert alone["group"] == max(1, round(w["commands"] / w["transactions"]))
    assert alone["grouped"] > 0 and alone["one_per_transaction"] > 0
    assert alone["ratio"] == round(alone["grouped"] / alone["one_per_transaction"], 2)


def test_the_pages_benchmark_serves_every_page_of_a_simulated_store() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pages.py"), "--scale", "0.01", "--requests", "2", "--json"],
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=300,
    ).stdout
    r = json.loads(out)
    assert r["events"] > 1000 and len(r["pages"]) >= 15
    for p in r["pages"]:
        assert p["first_ms"] > 0 and p["median_ms"] > 0 and p["bytes"] > 0, p
