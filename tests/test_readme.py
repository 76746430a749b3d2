"""The README's shell examples are tests: each example block runs on a scratch store and must print what it shows.

The convention (the README's "Examples are tests" section says the same, for its readers):

- An example is a fenced block tagged `console` or `sh`. Every such block is run, unless the line before
  its fence is `<!-- not-tested: REASON -->` (a PostgreSQL server, an install, a long simulation). A block
  whose fence line is preceded by `<!-- continues -->` runs in the same directory and store as the block
  before it; every other block starts in a fresh empty directory.
- Blocks run with bash in that directory, with the installed console script first on PATH (and `.venv`
  linked there to the environment that runs the tests, so `.venv/bin/...` works as from a clone's root),
  CARBON_LEDGER_STORE=carbon-ledger.db in that directory, and no other CARBON_LEDGER_* variable.
- `console` blocks: a line `$ COMMAND` is a command (a trailing backslash continues it on the next line;
  a here-document runs to its end marker). The lines after it, up to the next `$ `, are its whole output.
- `sh` blocks: every line that is not a comment is a command (continued and here-documents likewise).
  Comment lines of the form `#   TEXT` (a hash and at least three spaces) right after a command are its
  whole output; a command with none has its output unchecked. Other comments are prose.
- Output is the command's stdout, then its stderr. Blank lines and the spaces at either end of a line are
  not compared; everything else is, character for character.
- `...` stands for text that changes from run to run (hashes, times, keys): inside a line it matches any
  text, and a line that is only `...` matches any number of lines. Nowhere else is output loosened.
- A command must exit 0, unless its shown output ends with `(exit N)`: then it must exit N.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLE_TAGS = ("console", "sh")
NOT_TESTED = re.compile(r"^<!--\s*not-tested:\s*(.*?)\s*-->$")
CONTINUES = re.compile(r"^<!--\s*continues\s*-->$")
EXIT = re.compile(r"^(.*?)\s*\(exit (\d+)\)$")
SH_OUTPUT = re.compile(r"^#\s{3,}(.*)$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
MAX_NOT_TESTED = 6  # "keep those few": a README that stops testing its examples fails here


@dataclass
class Step:
    line: int  # where the command starts in the README
    command: str
    expected: list[str] | None  # None: output not checked (an `sh` command shown without output)
    exit_code: int = 0


@dataclass
class Block:
    line: int  # the line of the opening fence
    tag: str
    body: list[str]
    not_tested: str | None = None
    continues: bool = False
    steps: list[Step] = field(default_factory=list)


class ConventionError(ValueError):
    """The README breaks the example convention."""


# ---- reading the README ---------------------------------------------------------------------------------

def parse_blocks(text: str) -> list[Block]:
    """Every fenced block tagged console or sh, with its marker; raises ConventionError on a malformed one."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, tag = i, m.group(1)
        j = i + 1
        while j < len(lines) and not re.match(r"^```\s*$", lines[j]):
            j += 1
        if j == len(lines):
            raise ConventionError(f"README.md:{start + 1}: a fenced block is never closed")
        body = lines[start + 1 : j]
        before = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        if tag in EXAMPLE_TAGS:
            block = Block(start + 1, tag, body)
            if (nt := NOT_TESTED.match(before)) is not None:
                if not nt.group(1):
                    raise ConventionError(f"README.md:{start + 1}: not-tested needs a reason")
                block.not_tested = nt.group(1)
            block.continues = bool(CONTINUES.match(before))
            if block.continues and (not blocks or blocks[-1].not_tested):
                raise ConventionError(f"README.md:{start + 1}: continues, but no tested block comes before it")
            if block.not_tested is None:
                block.steps = parse_steps(block)
            blocks.append(block)
        elif any(re.match(r"^(\$ |carbon-ledger (--|[a-z]+( |$))|\.venv/bin/)", x) for x in body):
            raise ConventionError(f"README.md:{start + 1}: shell commands in a block not tagged console or sh")
        i = j + 1
    return blocks


def _take_command(body: list[str], i: int, first: str) -> tuple[str, int]:
    """The command starting with `first` (body[i] without its prompt): continuation lines and here-documents."""
    parts = [first]
    # a trailing backslash continues a command, and so does an open single-quoted string
    while (parts[-1].endswith("\\") or "\n".join(parts).count("'") % 2) and i + 1 < len(body):
        i += 1
        parts.append(body[i])
    for m in HEREDOC.finditer("\n".join(parts)):
        end = m.group(2)
        while i + 1 < len(body):
            i += 1
            parts.append(body[i])
            if body[i] == end:
                break
        else:
            raise ConventionError(f"here-document {end} is never closed")
    return "\n".join(parts), i


def _exit_of(expected: list[str]) -> tuple[list[str], int]:
    if expected and (m := EXIT.match(expected[-1].rstrip())):
        rest = m.group(1)
        return expected[:-1] + ([rest] if rest.strip() else []), int(m.group(2))
    return expected, 0


def parse_steps(block: Block) -> list[Step]:
    steps: list[Step] = []
    body = block.body
    i = 0
    while i < len(body):
        line = body[i]
        where = block.line + 1 + i
        if block.tag == "console":
            if not line.startswith("$ "):
                if line.strip():
                    raise ConventionError(f"README.md:{where}: output before the first `$ ` command")
                i += 1
                continue
            command, i = _take_command(body, i, line[2:])
            expected = []
            while i + 1 < len(body) and not body[i + 1].startswith("$ "):
                i += 1
                expected.append(body[i])
            expected, code = _exit_of(expected)
            steps.append(Step(where, command, expected, code))
        else:
            if not line.strip() or line.lstrip().startswith("#"):
                if SH_OUTPUT.match(line):
                    raise ConventionError(f"README.md:{where}: output shown after no command")
                i += 1
                continue
            command, i = _take_command(body, i, line)
            shown = []
            while i + 1 < len(body) and (m := SH_OUTPUT.match(body[i + 1])):
                i += 1
                shown.append(m.group(1))
            expected, code = _exit_of(shown)
            steps.append(Step(where, command, expected if shown else None, code))
        i += 1
    if not steps:
        raise ConventionError(f"README.md:{block.line}: an example block with no command")
    return steps


# ---- comparing output -----------------------------------------------------------------------------------

def _normal(lines: list[str]) -> list[str]:
    return [x.strip() for x in lines if x.strip()]


def _line_matches(pattern: str, line: str) -> bool:
    if "..." not in pattern:
        return pattern == line
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("...")), line, re.DOTALL) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """`expected` (with `...` placeholders) against `actual`, both normalized."""
    exp, act = _normal(expected), _normal(actual)
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(exp):
                memo[(i, j)] = j == len(act)
            elif exp[i] == "...":
                memo[(i, j)] = match(i + 1, j) or (j < len(act) and match(i, j + 1))
            else:
                memo[(i, j)] = j < len(act) and _line_matches(exp[i], act[j]) and match(i + 1, j + 1)
        return memo[(i, j)]

    return match(0, 0)


# ---- running ----------------------------------------------------------------------------------------------

def scratch_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CARBON_LEDGER_") and k not in ("COLUMNS", "LINES", "PYTHONPATH")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["CARBON_LEDGER_STORE"] = str(workdir / "carbon-ledger.db")
    return env


def run_block(block: Block, workdir: Path, timeout: float = 300) -> list[str]:
    """Run the block's commands in one bash; return a description of every mismatch (empty: it holds)."""
    venv = workdir / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.prefix), target_is_directory=True)
    out = workdir / ".readme-out"
    out.mkdir(exist_ok=True)
    script = ["set +e"]
    for n, step in enumerate(block.steps):
        script.append(f"{{ {step.command}\n}} > {out}/{n}.out 2> {out}/{n}.err < /dev/null; echo $? > {out}/{n}.rc")
    try:
        subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=scratch_env(workdir), timeout=timeout,
                       check=False, capture_output=True)
    except subprocess.TimeoutExpired:
        return [f"README.md:{block.line}: the block did not finish in {timeout} s"]
    problems = []
    for n, step in enumerate(block.steps):
        head = f"README.md:{step.line}: `{step.command.splitlines()[0]}`"
        rc_file = out / f"{n}.rc"
        if not rc_file.exists():
            problems.append(f"{head} did not run")
            continue
        rc = int(rc_file.read_text().strip())
        actual = (out / f"{n}.out").read_text(errors="replace").splitlines() + \
            (out / f"{n}.err").read_text(errors="replace").splitlines()
        if rc != step.exit_code:
            problems.append(f"{head} exited {rc}, the README shows {step.exit_code}; it printed:\n  "
                            + "\n  ".join(actual[:20]))
        if step.expected is not None and not output_matches(step.expected, actual):
            problems.append(f"{head} printed\n  " + "\n  ".join(_normal(actual)[:40])
                            + "\nwhere the README shows\n  " + "\n  ".join(_normal(step.expected)))
    return problems


def chains(blocks: list[Block]) -> list[list[Block]]:
    """Tested blocks grouped so that a `continues` block runs after the one it continues, in one directory."""
    out: list[list[Block]] = []
    for b in blocks:
        if b.not_tested:
            continue
        if b.continues:
            out[-1].append(b)
        else:
            out.append([b])
    return out


def run_chain(chain: list[Block]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="readme-") as d:
        problems = []
        for b in chain:
            problems += run_block(b, Path(d))
        return problems


README_TEXT = README.read_text(encoding="utf-8")  # read once: every test below sees the same text
try:
    BLOCKS, CONVENTION_ERROR = parse_blocks(README_TEXT), None
except ConventionError as e:
    BLOCKS, CONVENTION_ERROR = [], str(e)
CHAINS = chains(BLOCKS)


# ---- the README ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("chain", CHAINS, ids=[f"README.md:{c[0].line}" for c in CHAINS])
def test_the_readme_example_prints_what_it_shows(chain: list[Block]) -> None:
    problems = run_chain(chain)
    assert not problems, "\n\n".join(problems)


def test_the_readme_follows_the_example_convention() -> None:
    assert CONVENTION_ERROR is None, CONVENTION_ERROR


def test_the_readme_runs_most_of_its_examples_and_says_why_not_the_others() -> None:
    tested = [b for b in BLOCKS if not b.not_tested]
    skipped = [b for b in BLOCKS if b.not_tested]
    assert len(tested) >= 5, f"only {len(tested)} README examples run"
    assert len(skipped) <= MAX_NOT_TESTED, [f"{b.line}: {b.not_tested}" for b in skipped]
    assert sum(s.expected is not None for b in tested for s in b.steps) >= 20, "few commands show their output"


def test_the_readme_runs_python_from_the_project_environment() -> None:
    """`python` on a fresh machine is not the interpreter that has the project installed: say `.venv/bin/python`."""
    bare = [f"README.md:{b.line}: {x.strip()}" for b in BLOCKS for x in b.body
            if re.match(r"^\s*(\$ )?(python|pip|pytest)\s", x)]
    bare += re.findall(r"`(?:python|pip|pytest)\s[^`]*`", README_TEXT)
    assert not bare, bare


# ---- the checker itself: it must fail when the README drifts ----------------------------------------------

MINI = """\
Intro.

```console
$ carbon-ledger firm register F1 --name A --sector power --region Hubei
recorded FirmRegistered, AccountOpened at position 1-2
$ carbon-ledger audit head --json
{
  "position": 2,
  "hash": "..."
}
$ carbon-ledger balances F9 --unknown-option
...
(exit 2)
```

<!-- not-tested: needs a PostgreSQL server -->
```sh
carbon-ledger --store postgresql://nowhere/db balances
```

```sh
carbon-ledger firm register F1 --name A --sector power --region Hubei
carbon-ledger firm register F1 --name A --sector power --region Hubei
#   error: ... already registered   (exit 1)
cat > c.jsonl <<'EOF'
{"command": "year open", "command_id": "y", "year": "2024"}
EOF
carbon-ledger import c.jsonl
#   applied 1, already applied 0, refused 0; head 3
```
"""


def _problems(text: str) -> list[str]:
    problems = []
    for chain in chains(parse_blocks(text)):
        problems += run_chain(chain)
    return problems


def test_the_checker_passes_a_readme_that_holds() -> None:
    blocks = parse_blocks(MINI)
    assert [b.not_tested for b in blocks] == [None, "needs a PostgreSQL server", None]
    assert [s.exit_code for s in blocks[0].steps] == [0, 0, 2]
    assert [s.expected is None for s in blocks[2].steps] == [True, False, True, False]
    assert _problems(MINI) == []


@pytest.mark.parametrize("drift", [
    ("at position 1-2", "at position 1-3"),                 # an output line of a console block
    ("head 3", "head 4"),                                   # an output comment of an sh block
    ("(exit 2)", "(exit 1)"),                               # an exit code
    ("  (exit 1)", ""),                                     # a refusal shown as a success
    ('  "position": 2,\n', ""),                             # a line left out
    ("already registered", "already known"),                # text beside a placeholder
])
def test_the_checker_fails_when_an_example_drifts(drift: tuple[str, str]) -> None:
    old, new = drift
    assert old in MINI
    problems = _problems(MINI.replace(old, new, 1))
    assert problems, f"changing {old!r} to {new!r} went unnoticed"


def test_the_checker_fails_the_real_readme_with_one_expected_line_changed(tmp_path: Path) -> None:
    """A temporary copy of README.md with one shown output line changed: its example must fail."""
    lines = README_TEXT.splitlines(keepends=True)
    chain, k = next((c, k) for c in CHAINS for b in c for s in b.steps if s.expected
                    for k in range(s.line, len(lines))
                    if lines[k].strip() and "..." not in lines[k] and lines[k].strip().lstrip("#").strip()
                    in [x.strip() for x in s.expected])
    lines[k] = lines[k].rstrip("\n") + " drifted\n"
    copy = tmp_path / "README.md"
    copy.write_text("".join(lines), encoding="utf-8")
    first = chain[0].line
    (drifted,) = [c for c in chains(parse_blocks(copy.read_text(encoding="utf-8"))) if c[0].line == first]
    assert run_chain(chain) == [], "the unchanged example must hold"
    problems = run_chain(drifted)
    assert problems and f"README.md:" in problems[0], "a changed expected line in README.md went unnoticed"


@pytest.mark.parametrize("bad", [
    "<!-- not-tested: -->\n```sh\ncarbon-ledger audit head\n```\n",  # no reason
    "```\ncarbon-ledger audit head\n```\n",                           # shell commands, untagged
    "```console\nrecorded at 1\n$ carbon-ledger audit head\n```\n",   # output before a command
    "```sh\n#   orphan output\n```\n",                                # output after no command
    "<!-- continues -->\n```sh\ncarbon-ledger audit head\n```\n",     # continues nothing
])
def test_a_readme_that_breaks_the_convention_is_refused(bad: str) -> None:
    with pytest.raises(ConventionError):
        parse_blocks(bad)


def test_placeholders_match_only_where_they_stand() -> None:
    assert output_matches(["head ...; 0 signatures"], ["head abc123; 0 signatures"])
    assert not output_matches(["head ...; 0 signatures"], ["head abc123; 1 signatures"])
    assert output_matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert output_matches(["a", "...", "d"], ["a", "d"])
    assert not output_matches(["a", "d"], ["a", "b", "d"])
    assert output_matches(["  x  ", ""], ["x"])
