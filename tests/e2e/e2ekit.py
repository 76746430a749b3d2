"""Helpers for the end-to-end tests: the installed `carbon-ledger` script in subprocesses, on a scratch store.

Nothing here imports the ledger: these tests see the program only as a user or a script does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

EXE = shutil.which("carbon-ledger", path=os.path.dirname(sys.executable)) or shutil.which("carbon-ledger")


@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str


class CLI:
    """`carbon-ledger --store STORE ...` with a clean environment (no CARBON_LEDGER_* of the caller's shell)."""

    def __init__(self, store: str, *global_args: str, cwd: str | None = None) -> None:
        assert EXE, "the carbon-ledger console script is not installed beside this python"
        self.store = store
        self.global_args = list(global_args)
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CARBON_LEDGER_")}

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> Run:
        p = subprocess.run([EXE, "--store", self.store, *self.global_args, *args], capture_output=True, text=True,
                           input=stdin, env=self.env, cwd=self.cwd, timeout=timeout, check=False)
        return Run(args, p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str, **kw: Any) -> Run:
        r = self.run(*args, **kw)
        assert r.code == 0, f"`carbon-ledger {' '.join(args)}` exit {r.code}: {(r.err or r.out).strip()[:300]}"
        return r

    def js(self, *args: str, **kw: Any) -> Any:
        r = self.ok(*args, "--json", **kw)
        return json.loads(r.out)

    def head(self, *reader: str) -> tuple[int, str]:
        h = self.js(*reader, "audit", "head")
        return h["position"], h["hash"]

    def balances(self, *args: str) -> dict[tuple[str, str, int], int]:
        table: dict[tuple[str, str, int], int] = {}
        for row in self.js("balances", *args)["balances"]:
            key = (row["account_id"], row["unit"], int(row["vintage"]))
            table[key] = table.get(key, 0) + int(row["quantity"])
        return {k: v for k, v in table.items() if v}

    def export(self, *reader: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.ok(*reader, "audit", "export").out.splitlines() if x.strip()]

    def refused(self, codes: tuple[int, ...], *args: str, reader: tuple[str, ...] = (), **kw: Any) -> Run:
        """The command fails with one of `codes`, one line on stderr, no traceback, and nothing appended."""
        before = self.head(*reader)
        r = self.run(*args, **kw)
        assert r.code in codes, f"`{' '.join(args)}` exit {r.code}, wanted {codes}: {r.err.strip()[:200]}"
        assert "Traceback" not in r.err + r.out, f"`{' '.join(args)}` printed a traceback"
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"`{' '.join(args)}` stderr: {r.err!r}"
        assert self.head(*reader) == before, f"`{' '.join(args)}` was refused but the head moved"
        return r


def jsonl(commands: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(c) + "\n" for c in commands)
