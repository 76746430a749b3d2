"""`pytest -q` is quiet: failures and a one-line summary, no line per skipped test (the suite skips the
PostgreSQL cases where no server is configured, 200 of them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_quiet_run_prints_no_line_per_skipped_test(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\n@pytest.mark.skip(reason='no server')\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path / "test_skips.py")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SKIPPED" not in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("1 passed, 1 skipped")
