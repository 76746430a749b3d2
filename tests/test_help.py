"""Help and version: bare `carbon-ledger` prints the help (as git and gh do), --version names the version,
and every command's --help ends with one example. Errors stay one line, a database driver's too."""

from __future__ import annotations

import subprocess

import click
import pytest
from ledgerkit import EXE, run_main

from commands.cli import EXAMPLES, cli

pytestmark = pytest.mark.skipif(EXE is None, reason="needs the installed carbon-ledger executable")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_bare_carbon_ledger_prints_the_help_not_an_error() -> None:
    r = run()
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("Usage: carbon-ledger [OPTIONS] COMMAND [ARGS]...\n")
    assert "\n  balances " in r.stdout and "\n  import " in r.stdout  # the command list, one a line


def test_a_group_named_without_its_command_prints_its_help() -> None:
    r = run("actor")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("Usage: carbon-ledger actor [OPTIONS] COMMAND [ARGS]...\n") and "keygen" in r.stdout


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    r = run("--version")
    assert r.returncode == 0 and r.stdout == f"carbon-ledger {version('carbon-ledger')}\n"


def _leaves(group: click.Group, path: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        p = path if cmd.hidden else f"{path} {name}".strip()  # transfer's hidden `send` is `transfer FROM TO`
        out += _leaves(cmd, p) if isinstance(cmd, click.Group) else [(p, cmd)]
    return out


@pytest.mark.parametrize("path", [p for p, _ in _leaves(cli)])
def test_every_command_help_ends_with_an_example_of_itself(path: str) -> None:
    r = run(*path.split(), "--help")
    assert r.returncode == 0, r.stderr
    example = r.stdout.rstrip().splitlines()[-1].strip()
    assert r.stdout.rstrip().splitlines()[-2].strip() == "Example:"
    assert example == EXAMPLES[path] and example.startswith("carbon-ledger ") and f" {path.split()[-1]}" in example


def test_a_refused_postgresql_connection_is_one_line(tmp_path) -> None:
    r = run_main("postgresql://postgres@127.0.0.1:1/test", "balances")
    assert r.code == 3 and r.err.count("\n") == 1 and r.err.startswith("error: cannot open store"), r.err
