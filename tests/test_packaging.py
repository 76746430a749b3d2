"""The built wheel holds every module of the three packages, subpackages included: an install that is not
editable (`pip install .`) must have ledger.decisions and commands.simulate too."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_module_of_the_packages(tmp_path: Path) -> None:
    # built from a copy of the sources alone: an editable install's egg-info would hide a missing package
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                             ".hypothesis", ".pytest_cache", "*.db*"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("carbon_ledger-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for top in ("ledger", "commands", "projections")
               for p in (ROOT / top).rglob("*.py")}
    assert {"ledger/decisions/__init__.py", "commands/simulate/__init__.py"} <= sources
    assert sources <= shipped, sorted(sources - shipped)
