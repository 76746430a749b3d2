"""The repository stands alone: no file in it refers to documents or checks that live outside it.

Its documentation is docs/; its end-to-end checks are tests/e2e and tests/test_readme.py. Only the CI
script (.ci/run) may also run checks that lie beside the repository, when they are there.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Spelled in pieces so that this file does not match itself.
OUTSIDE = ["DESIGN" + ".md", "DOMAIN" + ".md", "STYLE" + ".md", ".." + "/shared"]
SKIP_DIRS = {".git", ".ci", ".venv", ".hypothesis", ".pytest_cache", "__pycache__", "build", "dist"}


def _text_files() -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix in (".png", ".db", ".pyc", ".key"):
                continue
            try:
                path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            out.append(path)
    return out


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    hits = []
    for path in _text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            hits += [f"{path.relative_to(ROOT)}:{n}: {word}" for word in OUTSIDE if word in line]
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_the_check_sees_the_repository_files() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _text_files()}
    assert {"README.md", "docs/cli.md", "ledger/events.py", "tests/test_standalone.py"} <= names


def test_the_readme_links_the_pages_of_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = ["architecture.md", "events.md", "cli.md", "invariants.md", "domain.md", "security.md"]
    assert all((ROOT / "docs" / p).exists() for p in pages)
    missing = [p for p in pages if f"(docs/{p})" not in readme]
    assert not missing, f"README.md does not link docs/{missing}"


def test_relative_links_in_the_docs_resolve() -> None:
    import re

    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links: " + ", ".join(broken)
