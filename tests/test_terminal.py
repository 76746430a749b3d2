"""The CLI in a real terminal: `demo`, `simulate`, `import` and `audit replay` run under a pseudo-terminal
(the standard library's pty), as a person runs them. Each must exit 0 with its usual output, show its
progress bar, and leave the cursor visible (rich hides it while a bar is drawn)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest
from ledgerkit import EXE

HIDE_CURSOR = b"\x1b[?25l"
SHOW_CURSOR = b"\x1b[?25h"

pytestmark = pytest.mark.skipif(EXE is None, reason="needs the installed carbon-ledger executable")


def run_in_terminal(cwd: Path, *args: str, timeout: float = 120.0) -> tuple[int, bytes]:
    """Run `carbon-ledger ARGS` with stdin, stdout and stderr on a new pseudo-terminal; (exit code, output)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBON_LEDGER_")}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen([EXE, *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side closed (the process ended)
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"{args} did not finish in {timeout} s: {bytes(out[-500:])!r}")
        return proc.wait(timeout=10), bytes(out)
    finally:
        os.close(master)


def assert_bar_shown_and_cursor_restored(out: bytes) -> None:
    assert HIDE_CURSOR in out, f"no progress bar was drawn: {out[-300:]!r}"
    assert out.rfind(SHOW_CURSOR) > out.rfind(HIDE_CURSOR), "the cursor was left hidden"
    assert b"Traceback" not in out and b"error:" not in out, out[-500:]


def test_demo_in_a_terminal_shows_progress_and_restores_the_cursor(tmp_path: Path) -> None:
    code, out = run_in_terminal(tmp_path, "demo")
    assert code == 0, out[-500:]
    assert_bar_shown_and_cursor_restored(out)
    assert b"chain verified" in out and b"recorded" in out


def test_simulate_in_a_terminal_shows_progress_and_restores_the_cursor(tmp_path: Path) -> None:
    code, out = run_in_terminal(tmp_path, "--store", "sim.db", "simulate", "china-2021-2024", "--scale", "0.01")
    assert code == 0, out[-500:]
    assert_bar_shown_and_cursor_restored(out)
    assert b"simulated china-2021-2024 at scale 0.01" in out


def test_import_and_audit_replay_in_a_terminal_show_progress_and_restore_the_cursor(tmp_path: Path) -> None:
    lines = [{"command": "firm register", "command_id": "f1", "firm_id": "F1", "name": "Unit 1", "sector": "power",
              "region": "Hubei"},
             {"command": "year open", "command_id": "y", "year": "2024"}]
    lines += [{"command": "issue", "command_id": f"i{n}", "account_id": "F1", "unit": "CEA", "vintage": 2024,
               "quantity": 1, "basis": "pre-allocation"} for n in range(3000)]
    (tmp_path / "cmds.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, out = run_in_terminal(tmp_path, "--store", "s.db", "import", "cmds.jsonl", "--batch-size", "500")
    assert code == 0, out[-500:]
    assert_bar_shown_and_cursor_restored(out)
    assert b"applied 3002, already applied 0, refused 0; head 3003" in out

    code, out = run_in_terminal(tmp_path, "--store", "s.db", "audit", "replay")
    assert code == 0, out[-500:]
    assert_bar_shown_and_cursor_restored(out)
    assert b"replay from 0 to 3003 matches the stored read models" in out


def test_piped_output_has_no_progress_bar(tmp_path: Path) -> None:
    r = subprocess.run([EXE, "--store", "sim.db", "simulate", "china-2021-2024", "--scale", "0.01"], cwd=tmp_path,
                       capture_output=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert HIDE_CURSOR not in r.stdout + r.stderr
    assert r.stdout.startswith(b"simulated china-2021-2024")
