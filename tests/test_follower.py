"""`carbon-ledger project --follow` (issue 7) in real subprocesses, on both stores.

The follower keeps every read model current as events arrive from other processes, so that a read
finds them at the head and has nothing to catch up; it stops cleanly on SIGTERM; and killed with
SIGKILL in the middle of catching up a large backlog, it resumes from its last committed position
without applying an event twice: afterwards `audit replay` agrees with the stored read models, and
the stored account history is exactly the replay's rows, with no duplicate.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from ledgerkit import CLI_ENV_CLEAR, EXE, invoke, invoke_json, raw_db, run_exe, run_main

from ledger.registry import Registry
from projections import runner

FOLLOW = ["project", "--follow", "--interval", "0.2"]
TIMEOUT = 30.0  # seconds for any one thing to happen
UNIT = ["--unit", "CEA", "--vintage", "2024"]


def start_follower(store: str, **env: str) -> subprocess.Popen[str]:
    assert EXE, "the carbon-ledger executable is not installed beside this python"
    e = {k: v for k, v in os.environ.items() if k not in CLI_ENV_CLEAR}
    e.update(env)
    return subprocess.Popen(
        [EXE, "--store", store, *FOLLOW], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e
    )


@contextmanager
def follower(store: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """A follower process that is never left running, whatever the test does."""
    proc = start_follower(store, **env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)


def wait_for(what: str, cond: Callable[[], Any], proc: subprocess.Popen[str] | None = None,
             timeout: float = TIMEOUT, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the follower exited ({proc.returncode}) before {what}: {out!r} {err!r}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def read_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The next line the running follower printed (it must come within the timeout)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"the follower printed no line within {timeout}s"
    return proc.stdout.readline().rstrip("\n")


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM; the follower must exit 0 within the timeout."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, (proc.returncode, out, err)
    return out, err


def positions(reg: Registry) -> dict[str, int]:
    return reg.recorder.readmodel_positions()


def all_at(reg: Registry, n: int) -> bool:
    ps = positions(reg)
    return {p.name for p in runner.PROJECTIONS} <= ps.keys() and set(ps.values()) == {n}


def _setup(store: str) -> None:
    r = invoke(store, "firm", "register", "F1", "--name", "U1", "--sector", "power", "--region", "Hubei")
    assert r.exit_code == 0, r.exception
    r = invoke(store, "firm", "register", "F2", "--name", "U2", "--sector", "power", "--region", "Hebei")
    assert r.exit_code == 0, r.exception
    r = invoke(store, "issue", "F1", *UNIT, "--quantity", "1000000", "--basis", "auction")
    assert r.exit_code == 0, r.exception


# ---- keeping the read models current -------------------------------------------------------------------


def test_the_follower_keeps_the_read_models_current_as_other_processes_append(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(store_url)
    reg = Registry(store_url)
    try:
        with follower(store_url) as proc:
            wait_for("the read models to reach the head", lambda: all_at(reg, reg.head()[0]), proc)
            # it says so at once, not when it exits (a supervisor's log shows a running follower's progress)
            assert read_line(proc) == f"read models at position {reg.head()[0]}"
            moved = 0
            for q in (7, 11):
                # an append from another process (the executable), then the follower, unasked, catches up
                r = run_exe(store_url, "transfer", "F1", "F2", *UNIT, "--quantity", str(q))
                assert r.code == 0, r.err
                head = reg.head()[0]
                wait_for(f"the read models to reach {head}", lambda h=head: all_at(reg, h), proc)
                # a read finds them at the head: it applies nothing and writes nothing
                monkeypatch.setattr(runner, "_flush", _must_not_flush)
                bal = invoke_json(store_url, "balances")
                monkeypatch.undo()
                assert bal["position"] == head
                moved += q
                assert ("F2", moved) in {(b["account_id"], b["quantity"]) for b in bal["balances"]}
                assert all_at(reg, head)
            out, err = stop(proc)
    finally:
        reg.close()
    lines = out.splitlines()
    assert lines[-1] == f"stopped at position {head}", out
    assert f"read models at position {head}" in lines
    assert err == ""


def _must_not_flush(*args: Any, **kwargs: Any) -> bool:
    raise AssertionError("a read caught the read models up itself")


def test_the_follower_stops_cleanly_on_sigterm_and_reports_its_position(store_url: str) -> None:
    _setup(store_url)
    reg = Registry(store_url)
    try:
        head = reg.head()[0]
        with follower(store_url) as proc:
            wait_for("the read models to reach the head", lambda: all_at(reg, head), proc)
            out, err = stop(proc)
        with follower(store_url) as again:  # a restart has nothing to apply and stops as cleanly
            first = read_line(again)  # (it has started: a SIGTERM before its handler is set would kill it)
            out2, err2 = stop(again)
        assert all_at(reg, head)
    finally:
        reg.close()
    assert out.splitlines() == [f"read models at position {head}", f"stopped at position {head}"] and err == ""
    assert [first, *out2.splitlines()] == out.splitlines() and err2 == ""


# ---- kill -9 in the middle of a catch-up ---------------------------------------------------------------

TRANSFERS = 3000
FLUSH_EVERY = "10"  # the follower commits every 10 events, so a kill lands between two commits
KILLS = 3


def _backlog(store: str, tmp_path: Path) -> int:
    lines = [
        {"command": "firm register", "command_id": f"f-{f}", "firm_id": f, "name": f, "sector": "power",
         "region": "Hubei"}
        for f in ("F1", "F2", "F3", "F4")
    ]
    lines.append({"command": "issue", "command_id": "i-1", "account_id": "F1", "unit": "CEA", "vintage": 2024,
                  "quantity": 10 * TRANSFERS, "basis": "auction"})
    lines += [
        {"command": "transfer", "command_id": f"t-{i}", "from_account": "F1", "to_account": f"F{2 + i % 3}",
         "unit": "CEA", "vintage": 2024, "quantity": 1 + i % 7}
        for i in range(TRANSFERS)
    ]
    f = tmp_path / "backlog.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = invoke_json(store, "import", str(f))
    assert res["applied"] == len(lines) and res["refused"] == []
    return int(res["position"])


def test_a_follower_killed_mid_catch_up_resumes_without_applying_an_event_twice(
    store_url: str, tmp_path: Path
) -> None:
    head = _backlog(store_url, tmp_path)
    assert head == 4 * 2 + 1 + TRANSFERS
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    reg = Registry(store_url)
    committed: list[int] = []
    try:
        assert positions(reg) == {}  # nobody has caught up yet: the whole log is the backlog
        while len(committed) < KILLS and (not committed or committed[-1] < head):
            before = min(positions(reg).values(), default=0)
            proc = start_follower(store_url, CARBON_LEDGER_FLUSH_EVERY=FLUSH_EVERY)
            try:
                # it has committed something beyond where the last one was killed: it is mid-catch-up
                wait_for("the follower to make progress",
                         lambda b=before: min(positions(reg).values(), default=0) > b, proc, every=0.005)
                time.sleep(rnd.uniform(0.0, 0.05))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == -signal.SIGKILL
            committed.append(min(positions(reg).values()))
            assert committed[-1] > before
        assert any(0 < c < head for c in committed), f"no kill landed mid-catch-up: {committed} of {head}"
        print(f"seed {seed}: killed at {committed} of {head}")
        with follower(store_url, CARBON_LEDGER_FLUSH_EVERY=FLUSH_EVERY) as proc:
            wait_for(f"the read models to reach {head}", lambda: all_at(reg, head), proc, timeout=60)
            out, err = stop(proc)
        assert out.splitlines()[-1] == f"stopped at position {head}" and err == ""
        # the stored read models equal a full replay (and the replay had nothing left to catch up)
        r = run_main(store_url, "audit", "replay")
        assert r.code == 0, f"seed {seed}, killed at {committed}: {r.err}"
        assert all_at(reg, head)
        # the stored history: no (account, position, seq) twice, and exactly the replay's rows
        with raw_db(store_url) as conn:
            dup = conn.execute(
                "SELECT account_id, position, seq, COUNT(*) FROM rm_history"
                " GROUP BY account_id, position, seq HAVING COUNT(*) > 1"
            ).fetchall()
        assert dup == [], f"seed {seed}, killed at {committed}"
        stored = list(reg.recorder.history_rows_all())
        replayed: list[tuple] = []
        runner.rebuild(reg.recorder, on_rows=replayed.extend)
        assert len(stored) == len(replayed) == 1 + 2 * TRANSFERS
        assert sorted(stored, key=lambda x: (x[1], x[2])) == sorted(replayed, key=lambda x: (x[1], x[2])), (
            f"seed {seed}, killed at {committed}"
        )
    finally:
        reg.close()


def test_a_follower_told_to_stop_mid_catch_up_stops_at_its_last_commit(store_url: str, tmp_path: Path) -> None:
    """SIGTERM during a long catch-up: the follower stops after its next flush, not after the whole backlog,
    and what it committed is exactly a prefix (a later follower finishes it)."""
    head = _backlog(store_url, tmp_path)
    reg = Registry(store_url)
    try:
        with follower(store_url, CARBON_LEDGER_FLUSH_EVERY="5") as proc:
            wait_for("the follower to make progress", lambda: min(positions(reg).values(), default=0) > 0, proc,
                     every=0.005)
            out, err = stop(proc)
        stopped_at = int(out.splitlines()[-1].removeprefix("stopped at position "))
        assert err == "" and stopped_at == min(positions(reg).values()) == max(positions(reg).values())
        assert 0 < stopped_at < head, f"stopped at {stopped_at}, the head is {head}: it did not stop mid-catch-up"
        with follower(store_url) as proc:
            wait_for(f"the read models to reach {head}", lambda: all_at(reg, head), proc, timeout=60)
            stop(proc)
        assert run_main(store_url, "audit", "replay").code == 0
    finally:
        reg.close()
