"""The docs' claims about the code are checkable, and checked: every file, test, function, constant, environment
variable and rule version that README.md or docs/*.md names in backticks exists in the code.

This does not pin the rules' values (docs/domain.md describes them, and `rules show` prints them); it catches
a page that names something the code no longer has.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE = "\n".join(p.read_text(encoding="utf-8") for d in ("ledger", "projections", "commands")
                 for p in sorted((ROOT / d).rglob("*.py")))
TESTS = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests").rglob("*.py")))
FOREIGN = {"OPT_SORT_KEYS", "BEGIN IMMEDIATE", "CCER", "dumps", "sha256"}  # the domain's, orjson's, SQLite's, hashlib's


def _spans(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)  # examples are tests/test_readme.py's
    return re.findall(r"`([^`\n]+)`", text)


def _defined(name: str, source: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*[:=]",
                     source, re.MULTILINE) is not None


def _problems(page: Path) -> list[str]:
    out = []
    name_of_page = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
    for span in _spans(page):
        where = f"{name_of_page}: `{span}`"
        if m := re.fullmatch(r"((?:ledger|projections|commands|tests|benchmarks|docs)/[\w/.-]*)(?:::(\w+))?", span):
            path, name = m.groups()
            if not (ROOT / path).exists():
                out.append(f"{where}: no such file")
            elif name and not _defined(name, (ROOT / path).read_text(encoding="utf-8")):
                out.append(f"{where}: {path} defines no {name}")
        elif re.fullmatch(r"test_\w+", span):
            if not _defined(span, TESTS):
                out.append(f"{where}: no such test")
        elif re.fullmatch(r"_[a-z]\w*", span):  # a private helper named in prose
            if not (_defined(span, CODE) or _defined(span, TESTS)):
                out.append(f"{where}: nothing defines {span}")
        elif re.fullmatch(r"CARBON_LEDGER_\w+", span):
            if span not in CODE + TESTS:
                out.append(f"{where}: no such environment variable")
        elif span in FOREIGN:
            continue
        elif re.fullmatch(r"[A-Z][A-Z0-9_]{3,}", span):
            if not _defined(span, CODE):
                out.append(f"{where}: no such constant")
        elif m := re.fullmatch(r"(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)(?:\(.*\))?", span):
            if "/" not in span and not span.endswith((".md", ".py", ".db", ".png", ".json", ".jsonl", ".key")) \
                    and m.group(1) not in FOREIGN and not (_defined(m.group(1), CODE) or _defined(m.group(1), TESTS)):
                out.append(f"{where}: nothing defines {m.group(1)}")
        elif m := re.fullmatch(r"([a-z_]\w*)\((?:[^()]*)\)", span):
            if m.group(1) not in FOREIGN and not (_defined(m.group(1), CODE) or _defined(m.group(1), TESTS)):
                out.append(f"{where}: nothing defines {m.group(1)}")
        elif re.fullmatch(r"(power|steel|cement|aluminium|new-sectors)-\d{4}(-\d{4})?(-[a-z0-9]+)*", span):
            data = "".join((ROOT / "ledger" / f).read_text(encoding="utf-8") for f in ("rules.py", "plans.py"))
            if f'"{span}"' not in data:
                out.append(f"{where}: ledger/rules.py and ledger/plans.py have no such rule version")
    return out


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_what_the_page_names_in_the_code_exists(page: Path) -> None:
    problems = _problems(page)
    assert not problems, "\n".join(problems)


def test_the_check_notices_a_name_the_code_does_not_have(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("`ledger/nothing.py`, `test_that_does_not_exist`, `NO_SUCH_LIMIT`, `runner.no_such_fold`,"
                    " `power-1999-approx`, `tests/test_docs.py::test_gone`, `_gone_helper`, and `PRICE_BAND`, `rules.obligation`,"
                    " `tests/test_docs.py::test_the_check_notices_a_name_the_code_does_not_have` that exist.\n")
    problems = [p.split(": ", 1)[1] for p in _problems(page)]
    assert problems == ["`ledger/nothing.py`: no such file", "`test_that_does_not_exist`: no such test",
                        "`NO_SUCH_LIMIT`: no such constant", "`runner.no_such_fold`: nothing defines no_such_fold",
                        "`power-1999-approx`: ledger/rules.py and ledger/plans.py have no such rule version",
                        "`tests/test_docs.py::test_gone`: tests/test_docs.py defines no test_gone",
                        "`_gone_helper`: nothing defines _gone_helper"]


def test_no_file_holds_an_unresolved_merge_conflict() -> None:
    """A conflict left in a page reads as documentation (one was, in docs/events.md): no tracked text file has
    the markers git writes."""
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    marker = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)
    found = []
    for name in files:
        path = root / name
        if path.suffix in (".png", ".db") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if marker.search(text):
            found.append(name)
    assert files and not found, f"merge conflict markers in {found}"


def _documented_limits() -> dict[str, tuple[str, str]]:
    """The limits table of docs/security.md: constant -> (value as written, module path)."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## Limits on input and load", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \| `([^`]+)` \|", section, re.MULTILINE)
    return {name: (value.strip(), module) for name, value, module in rows}


def _as_number(written: str) -> float:
    number, _, unit = written.replace(",", "").partition(" ")
    scale = {"KiB": 1024, "MiB": 1024 * 1024}.get(unit, 1)
    return float(number) * scale


def test_every_limit_of_the_server_is_documented_with_its_value() -> None:
    import importlib

    documented = _documented_limits()
    limits = (ROOT / "commands" / "limits.py").read_text()
    named = set(re.findall(r"^([A-Z_]+) = ", limits, re.MULTILINE))
    assert named and named <= set(documented), f"limits not in docs/security.md: {sorted(named - set(documented))}"
    for name, (written, path) in documented.items():
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert float(getattr(module, name)) == _as_number(written), f"{name}: docs say {written}"
