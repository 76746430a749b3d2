"""Bad input is refused cleanly: exit 2, a plain line on stderr (never `internal:` or `store failure`), and
nothing appended. Every check that depends only on a line of an import file runs in the validation pass,
before anything is appended; public keys are checked where they are given (the CLI, an import line,
`Registry.init`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledgerkit import events, run_main

from ledger import signing, units
from ledger.errors import BadInput
from ledger.registry import Registry

FIRM = ["firm", "register", "F1", "--name", "Unit 1", "--sector", "power", "--region", "Hubei"]
ZERO_KEY = "00" * 32
IDENTITY_KEY = "01" + "00" * 31  # the neutral point (0, 1)
NOT_ON_CURVE = "02" + "00" * 31  # y = 2 has no x on the curve


def head(store: str) -> int:
    r = run_main(store, "audit", "head")
    return int(r.out.split()[0]) if r.code == 0 else 0


def assert_bad_input(r, *words: str) -> None:
    assert r.code == 2, (r.code, r.err)
    assert r.err.startswith("error: ") and r.err.count("\n") == 1, r.err
    assert "internal" not in r.err and "store failure" not in r.err and "Traceback" not in r.err
    for w in words:
        assert w in r.err, r.err


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "s.db")
    assert run_main(path, *FIRM).code == 0
    assert run_main(path, "year", "open", "2024").code == 0
    return path


def write_lines(tmp_path: Path, *lines: dict | str) -> str:
    f = tmp_path / "cmds.jsonl"
    f.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return str(f)


ISSUE = {"command": "issue", "command_id": "i1", "account_id": "F1", "unit": "CEA", "vintage": 2024,
         "quantity": 10, "basis": "auction"}


# ---- 3: every line-only check before anything is appended ------------------------------------------------
@pytest.mark.parametrize("bad, why", [
    ({"command": "issue", "command_id": "x" * 129, "account_id": "F1", "unit": "CEA", "vintage": 2024,
      "quantity": 1, "basis": "auction"}, "longer than 128"),
    ({"command": "actor add", "command_id": "a1", "actor_id": "MEE", "role": "regulator", "public_key": "zz"},
     "64 hex digits"),
])
def test_a_later_line_failing_a_line_only_check_refuses_the_file_before_line_1_is_appended(
        store: str, tmp_path: Path, bad: dict, why: str) -> None:
    before = head(store)
    r = run_main(store, "import", write_lines(tmp_path, ISSUE, bad))
    assert_bad_input(r, "line 2", why)
    assert head(store) == before


# ---- 4: ids and command ids with newlines or control characters --------------------------------------------
@pytest.mark.parametrize("args", [
    ["firm", "register", "F9\n", "--name", "U", "--sector", "power", "--region", "X"],
    ["account", "open", "T1\n", "--holder", "F1"],
    ["firm", "register", "F9", "--name", "U\nV", "--sector", "power", "--region", "X"],
    ["firm", "register", "F9", "--name", "U", "--sector", "power", "--region", "X", "--command-id", "x\ny"],
    ["firm", "register", "F9", "--name", "U", "--sector", "power", "--region", "X", "--command-id", "x\x07"],
])
def test_ids_names_and_command_ids_with_newlines_or_control_characters_are_refused(store: str, args) -> None:
    before = head(store)
    assert_bad_input(run_main(store, *args))
    assert head(store) == before


def test_an_actor_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    assert_bad_input(run_main(path, "init", "--regulator", "MEE\n"), "actor id")
    assert_bad_input(run_main(path, "actor", "add", "MEE\n", "--role", "regulator"), "actor id")
    assert head(path) == 0


def test_an_import_line_whose_command_id_holds_a_newline_is_refused(store: str, tmp_path: Path) -> None:
    r = run_main(store, "import", write_lines(tmp_path, {**ISSUE, "command_id": "i1\n"}))
    assert_bad_input(r, "line 1", "command id")


# ---- 5: duplicate JSON keys -------------------------------------------------------------------------------
@pytest.mark.parametrize("line", [
    ('{"command": "issue", "command_id": "i1", "account_id": "F1", "unit": "CEA", "vintage": 2024,'
     ' "quantity": 10, "basis": "auction", "quantity": 999999}'),
    ('{"command": "issue", "command_id": "i1", "account_id": "F1", "unit": "CEA", "vintage": 2024,'
     ' "quantity" : 10, "basis": "auction", "quantity" : 999999}'),
    ('{"command": "allocate", "command_id": "a", "firm_id": "F1", "year": 2024, "step": "true-up",'
     ' "factors": {"load": "1.0", "load": "1.1"}}'),
    # a value that starts with a colon, beside a duplicate written with spaces before its colon
    ('{"command": "issue", "command_id": "i1", "account_id": "F1", "unit": "CEA", "vintage": 2024,'
     ' "quantity" : 10, "basis" : "auction", "quantity" : 999999, "reason": ":"}'),
])
def test_a_line_with_a_duplicate_key_is_refused(store: str, tmp_path: Path, line: str) -> None:
    before = head(store)
    assert_bad_input(run_main(store, "import", write_lines(tmp_path, line)), "line 1", "appears twice")
    assert head(store) == before


def test_a_colon_inside_a_value_is_not_taken_for_a_duplicate(store: str, tmp_path: Path) -> None:
    r = run_main(store, "import", write_lines(tmp_path, {**ISSUE, "command_id": "batch:1"}))
    assert r.code == 0, r.err


# ---- 6: bad input that used to be an internal or store failure ------------------------------------------------
def test_a_factor_that_is_not_a_number_is_bad_input(store: str) -> None:
    for raw in ("NaN", "sNaN", "Infinity"):
        r = run_main(store, "allocate", "F1", "--year", "2024", "--step", "true-up", "--factor", f"cooling={raw}")
        assert_bad_input(r, "not a number")


def test_allocate_all_with_a_year_that_is_not_a_year_is_bad_input(store: str) -> None:
    assert_bad_input(run_main(store, "allocate", "--all", "--year", "abc", "--step", "pre"), "year")


def test_an_import_file_that_is_not_utf8_is_bad_input(store: str, tmp_path: Path) -> None:
    f = tmp_path / "latin1.jsonl"
    f.write_bytes(b'{"command": "firm register", "name": "K\xf6ln"}\n')
    assert_bad_input(run_main(store, "import", str(f)), "not UTF-8")


def test_a_plot_to_a_file_that_is_not_png_or_in_no_directory_is_bad_input(store: str, tmp_path: Path) -> None:
    assert_bad_input(run_main(store, "market", "--plot", str(tmp_path / "m.txt")), "PNG")
    assert_bad_input(run_main(store, "compliance", "--plot", "/nonexistent/m.png"), "no directory")
    assert not (tmp_path / "m.txt").exists()


def test_keygen_into_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    r = run_main(str(tmp_path / "s.db"), "actor", "keygen", "--out", "/nonexistent/k")
    assert_bad_input(r, "cannot write key file")


def test_a_store_that_is_not_a_database_is_bad_input_and_left_untouched(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n")
    for args in (["balances"], FIRM, ["audit", "verify"]):
        assert_bad_input(run_main(str(readme), *args), "not a carbon-ledger store")
    assert readme.read_text() == "# notes\n"


# ---- 8: --key reads a bounded amount ---------------------------------------------------------------------------
def test_a_key_file_of_endless_bytes_is_refused_without_reading_it_all(store: str) -> None:
    r = run_main(store, "--key", "/dev/zero", "--as", "MEE", "transfer", "F1", "F1", "--unit", "CEA",
                 "--vintage", "2024", "--quantity", "1")
    assert_bad_input(r, "not a key file")


# ---- public keys: a valid Ed25519 point, and --require-signatures needs one (issue 13, item 8) ----------------------
@pytest.mark.parametrize("key, why", [("zz", "64 hex digits"), (ZERO_KEY, "small order"),
                                      (IDENTITY_KEY, "small order"), (NOT_ON_CURVE, "not a point")])
def test_a_public_key_that_is_not_a_valid_ed25519_point_is_refused(key: str, why: str) -> None:
    with pytest.raises(BadInput, match=why):
        units.parse_public_key(key)


def test_a_generated_public_key_is_accepted_in_lower_case(tmp_path: Path) -> None:
    pub = signing.generate(tmp_path / "k")
    assert units.parse_public_key(pub.upper()) == pub


@pytest.mark.parametrize("key_args", [[], ["--public-key", "zz"], ["--public-key", ZERO_KEY],
                                      ["--public-key", IDENTITY_KEY]])
def test_init_requiring_signatures_without_a_valid_key_is_refused_from_the_cli(tmp_path: Path, key_args) -> None:
    path = str(tmp_path / "s.db")
    assert_bad_input(run_main(path, "init", "--regulator", "MEE", "--require-signatures", *key_args))
    assert head(path) == 0


@pytest.mark.parametrize("extra", [{}, {"public_key": "zz"}, {"public_key": ZERO_KEY}])
def test_init_requiring_signatures_without_a_valid_key_is_refused_from_an_import_line(tmp_path: Path, extra) -> None:
    path = str(tmp_path / "s.db")
    line = {"command": "init", "command_id": "i", "regulator": "MEE", "require_signatures": True, **extra}
    assert_bad_input(run_main(path, "import", write_lines(tmp_path, line)), "line 1")
    assert not os.path.exists(path)


@pytest.mark.parametrize("key", [None, "zz", ZERO_KEY, IDENTITY_KEY])
def test_init_requiring_signatures_without_a_valid_key_is_refused_by_the_registry(registry: Registry, key) -> None:
    with pytest.raises(BadInput):
        registry.init("MEE", require_signatures=True, public_key=key)
    assert events(registry) == []


def test_actor_key_with_a_small_order_key_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    assert run_main(path, "init", "--regulator", "MEE").code == 0
    assert_bad_input(run_main(path, "--as", "MEE", "actor", "key", "MEE", "--public-key", ZERO_KEY), "small order")
    assert_bad_input(run_main(path, "--as", "MEE", "actor", "add", "X", "--role", "exchange",
                              "--public-key", IDENTITY_KEY), "small order")
    assert head(path) == 1


# ---- 16: every bad line is reported (up to a limit, with the count) ----------------------------------------------
def test_an_import_reports_every_bad_line_up_to_twenty_with_their_count(store: str, tmp_path: Path) -> None:
    from commands.importer import MAX_REPORTED

    good = [{**ISSUE, "command_id": f"ok-{n}"} for n in range(3)]
    bad = [{**ISSUE, "command_id": f"bad-{n}", "quantity": -n - 1} for n in range(MAX_REPORTED + 5)]
    before = head(store)
    r = run_main(store, "import", write_lines(tmp_path, *good, *bad, "{oops"))
    lines = r.err.splitlines()
    assert r.code == 2 and len(lines) == MAX_REPORTED + 1
    assert lines[0].startswith("line 4 (bad-0): ") and lines[MAX_REPORTED - 1].startswith(f"line {MAX_REPORTED + 3} ")
    assert lines[-1] == f"error: {MAX_REPORTED + 6} bad lines, the first {MAX_REPORTED} shown; nothing was appended"
    assert head(store) == before


def test_an_import_with_two_bad_lines_reports_both(store: str, tmp_path: Path) -> None:
    r = run_main(store, "import", write_lines(tmp_path, ISSUE, {**ISSUE, "command_id": "b1", "unit": "EUA"},
                                              "[1]"))
    assert r.code == 2
    assert r.err.splitlines() == ["line 2 (b1): unit 'EUA' must be one of: CEA, CCER", "line 3: not a JSON object",
                                  "error: 2 bad lines; nothing was appended"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]),
                          st.one_of(st.integers(), st.text(alphabet=':" \\ab', max_size=4))), max_size=6),
       st.sampled_from(["", " ", "  "]))
def test_the_duplicate_key_check_agrees_with_a_pair_by_pair_parse(pairs: list, space: str) -> None:
    """The quick check (key ends counted against parsed keys) refuses exactly the lines that a parse pair by
    pair finds a duplicate in, whatever colons, quotes and spaces the values hold."""
    from commands.importer import _has_no_duplicate_keys

    line = "{" + ", ".join(f"{json.dumps(k)}{space}:{space}{json.dumps(v)}" for k, v in pairs) + "}"
    has_duplicate = len({k for k, _ in pairs}) < len(pairs)
    try:
        _has_no_duplicate_keys(line, orjson.loads(line))
        refused = False
    except BadInput:
        refused = True
    assert refused == has_duplicate, line
