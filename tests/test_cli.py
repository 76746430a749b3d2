"""The `carbon-ledger` CLI (issue 2): the append commands as written, JSON output, exit codes,
one-line errors, idempotent command ids, refusals that append nothing, and `import`.

Most tests run in-process (click's CliRunner, or `main()` for the exit-code mapping); a handful run the
installed executable in a subprocess, where the exit code and the one-line stderr are the point.
The tests that use a store run on SQLite and on PostgreSQL (`store_url`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from ledgerkit import export_lines, invoke, invoke_json, is_postgres, raw_db, run_exe, run_main

from ledger.errors import BadInput, Refused, StoreError
from ledger.events import GENESIS_HASH

UNIT = ["--unit", "CEA", "--vintage", "2024"]


def ok(store: str, *args: str) -> str:
    r = invoke(store, *args)
    assert r.exit_code == 0, f"{args}: exit {r.exit_code}: {r.exception!r} {r.stderr}"
    return r.stdout


def head(store: str) -> tuple[int, str]:
    h = invoke_json(store, "audit", "head")
    return h["position"], h["hash"]


def balances(store: str, *args: str) -> dict[tuple[str, str, int], int]:
    out = invoke_json(store, "balances", *args)
    return {(r["account_id"], r["unit"], r["vintage"]): r["quantity"] for r in out["balances"]}


@pytest.fixture
def store(store_url: str) -> str:
    """Two firms, 2024 open, 1,000 t issued to F1: built through the CLI as the issue writes the commands."""
    ok(
        store_url,
        "firm",
        "register",
        "F1",
        "--name",
        "Huaneng Unit 1",
        "--sector",
        "power",
        "--region",
        "Hubei",
    )
    ok(
        store_url,
        "firm",
        "register",
        "F2",
        "--name",
        "Datang Unit 7",
        "--sector",
        "power",
        "--region",
        "Hebei",
    )
    ok(store_url, "year", "open", "2024", "--deadline", "2025-12-31")
    ok(store_url, "issue", "F1", *UNIT, "--quantity", "1000", "--basis", "pre-allocation")
    return store_url


# ---- the append commands as written ------------------------------------------------------------------


def test_the_append_commands_of_the_issue_work_as_written(store: str) -> None:
    ok(store, "account", "open", "T1", "--holder", "F2", "--kind", "trading")
    ok(store, "transfer", "F1", "F2", *UNIT, "--quantity", "100")
    ok(
        store,
        "trade",
        "--buyer",
        "F2",
        "--seller",
        "F1",
        *UNIT,
        "--quantity",
        "50",
        "--price",
        "88.50",
        "--mode",
        "listed",
        "--date",
        "2024-06-03",
    )
    ok(
        store,
        "emissions",
        "verify",
        "F1",
        "--year",
        "2024",
        "--tonnes",
        "800",
        "--output",
        "1000000",
        "--output-unit",
        "MWh",
    )
    ok(store, "surrender", "F1", "--year", "2024", *UNIT, "--quantity", "800")
    ok(store, "cancel", "F2", *UNIT, "--quantity", "10", "--reason", "voluntary")
    assert balances(store) == {("F1", "CEA", 2024): 50, ("F2", "CEA", 2024): 140}
    types = [e["type"] for e in export_lines(store)]
    assert types == [
        "FirmRegistered",
        "AccountOpened",
        "FirmRegistered",
        "AccountOpened",
        "ComplianceYearOpened",
        "AllowancesIssued",
        "AccountOpened",
        "AllowancesTransferred",
        "TradeExecuted",
        "EmissionsVerified",
        "AllowancesSurrendered",
        "AllowancesCancelled",
    ]


def test_an_append_reports_the_events_and_positions_it_recorded(store_url: str) -> None:
    out = ok(store_url, "firm", "register", "F1", "--name", "U1", "--sector", "power", "--region", "Hubei")
    assert out.strip() == "recorded FirmRegistered, AccountOpened at position 1-2"
    res = invoke_json(store_url, "issue", "F1", *UNIT, "--quantity", "7", "--basis", "auction")
    assert res["events"] == ["AllowancesIssued"]
    assert (res["first_position"], res["position"], res["replayed"]) == (3, 3, False)


def test_balances_json_has_the_position_and_leaves_out_empty_rows(store: str) -> None:
    ok(store, "transfer", "F1", "F2", *UNIT, "--quantity", "1000")
    out = invoke_json(store, "balances")
    assert out["position"] == 7
    assert out["balances"] == [{"account_id": "F2", "unit": "CEA", "vintage": 2024, "quantity": 1000}]


def test_balances_of_one_account(store: str) -> None:
    ok(store, "transfer", "F1", "F2", *UNIT, "--quantity", "100")
    assert balances(store, "F2") == {("F2", "CEA", 2024): 100}


def created(store: str) -> bool:
    """Whether a store exists: a SQLite file, or a PostgreSQL schema."""
    if not is_postgres(store):
        return os.path.exists(store)
    import psycopg

    from ledger.store import pg_schema

    with psycopg.connect(store.split("?", 1)[0]) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema(store),)).fetchone() is not None


def test_audit_head_of_a_missing_store_exits_3_naming_it_and_creates_nothing(store_url: str) -> None:
    r = run_main(store_url, "audit", "head")
    assert r.code == 3 and r.err.startswith("error: no store at ") and r.out == ""
    assert not created(store_url)


def test_audit_head_of_a_new_store_is_its_first_position(store_url: str) -> None:
    ok(store_url, "firm", "register", "F1", "--name", "U", "--sector", "power", "--region", "X")
    p, h = head(store_url)
    assert p == 2 and h != GENESIS_HASH and len(h) == 64


def test_audit_head_moves_with_every_append(store: str) -> None:
    p, h = head(store)
    ok(store, "transfer", "F1", "F2", *UNIT, "--quantity", "1")
    p2, h2 = head(store)
    assert p2 == p + 1 and h2 != h


def test_a_read_of_a_missing_store_is_a_store_failure_and_creates_nothing(store_url: str) -> None:
    for args in (["balances", "--json"], ["audit", "verify"], ["audit", "export"], ["project"]):
        r = invoke(store_url, *args)
        assert isinstance(r.exception, StoreError) and "no store at" in str(r.exception), (args, r.exception)
    assert not created(store_url)


def test_the_store_may_be_chosen_by_environment(store_url: str) -> None:
    from click.testing import CliRunner

    from commands.cli import cli

    path = store_url
    r = CliRunner().invoke(
        cli,
        ["firm", "register", "F1", "--name", "U", "--sector", "power", "--region", "X"],
        env={"CARBON_LEDGER_STORE": path, "CARBON_LEDGER_ACTOR": None, "CARBON_LEDGER_KEY": None},
    )
    assert r.exit_code == 0, r.exception
    assert head(path)[0] == 2


def test_export_lines_follow_the_catalogue_contract(store: str) -> None:
    ok(
        store,
        "trade",
        "--buyer",
        "F2",
        "--seller",
        "F1",
        *UNIT,
        "--quantity",
        "50",
        "--price",
        "88.5",
        "--mode",
        "listed",
        "--date",
        "2024-06-03",
    )
    lines = export_lines(store)
    prev = GENESIS_HASH
    for n, line in enumerate(lines, 1):
        assert set(line) >= {
            "position",
            "type",
            "recorded_at",
            "actor",
            "command_id",
            "prev_hash",
            "hash",
            "data",
        }
        assert line["position"] == n and line["prev_hash"] == prev
        assert line["actor"] == "operator"
        prev = line["hash"]
    assert prev == head(store)[1]
    trade = lines[-1]["data"]
    assert trade["price"] == "88.50" and trade["quantity"] == 50 and trade["trade_date"] == "2024-06-03"


# ---- idempotency -------------------------------------------------------------------------------------


def test_the_same_command_id_twice_appends_nothing_and_prints_the_original_result(store: str) -> None:
    args = ["transfer", "F1", "F2", *UNIT, "--quantity", "100", "--command-id", "t-1"]
    first = invoke_json(store, *args)
    before = head(store)
    again = invoke_json(store, *args)
    assert head(store) == before
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    text = ok(store, *args)
    assert text.strip() == f"already recorded: command t-1 at position {first['position']}; nothing appended"
    assert balances(store)[("F2", "CEA", 2024)] == 100


def test_the_same_command_id_with_different_arguments_is_refused(store: str) -> None:
    ok(store, "transfer", "F1", "F2", *UNIT, "--quantity", "100", "--command-id", "t-1")
    before = head(store)
    r = run_main(store, "transfer", "F1", "F2", *UNIT, "--quantity", "101", "--command-id", "t-1")
    assert r.code == 1
    assert "t-1" in r.err and "different command" in r.err
    assert head(store) == before


# ---- refusals: exit codes, one line, nothing appended ------------------------------------------------

REFUSED = [
    (1, ["transfer", "F1", "F2", *UNIT, "--quantity", "1001"]),
    (1, ["transfer", "F1", "NOPE", *UNIT, "--quantity", "1"]),
    (
        1,
        [
            "trade",
            "--buyer",
            "F1",
            "--seller",
            "F1",
            *UNIT,
            "--quantity",
            "1",
            "--price",
            "80.00",
            "--mode",
            "listed",
            "--date",
            "2024-06-03",
        ],
    ),
    (
        1,
        [
            "trade",
            "--buyer",
            "F2",
            "--seller",
            "F1",
            *UNIT,
            "--quantity",
            "100000",
            "--price",
            "80.00",
            "--mode",
            "listed",
            "--date",
            "2024-06-03",
        ],
    ),
    (
        1,
        [
            "trade",
            "--buyer",
            "F2",
            "--seller",
            "F1",
            *UNIT,
            "--quantity",
            "5",
            "--price",
            "80.00",
            "--mode",
            "block",
            "--date",
            "2024-06-03",
        ],
    ),
    (1, ["surrender", "F1", "--year", "2023", *UNIT, "--quantity", "1"]),
    (1, ["surrender", "F1", "--year", "2024", *UNIT, "--quantity", "1"]),  # not verified
    (1, ["firm", "register", "F1", "--name", "again", "--sector", "power", "--region", "Hubei"]),
    (1, ["year", "open", "2024"]),
    (1, ["cancel", "F2", *UNIT, "--quantity", "1"]),
    (2, ["transfer", "F1", "F2", *UNIT, "--quantity", "-5"]),
    (2, ["transfer", "F1", "F2", *UNIT, "--quantity", "1.5"]),
    (2, ["transfer", "F1", "F2", *UNIT, "--quantity", "0"]),
    (
        2,
        [
            "trade",
            "--buyer",
            "F2",
            "--seller",
            "F1",
            *UNIT,
            "--quantity",
            "1",
            "--price",
            "88.505",
            "--mode",
            "listed",
            "--date",
            "2024-06-03",
        ],
    ),
    (
        2,
        [
            "trade",
            "--buyer",
            "F2",
            "--seller",
            "F1",
            *UNIT,
            "--quantity",
            "1",
            "--price",
            "0",
            "--mode",
            "listed",
            "--date",
            "2024-06-03",
        ],
    ),
    (
        2,
        [
            "trade",
            "--buyer",
            "F2",
            "--seller",
            "F1",
            *UNIT,
            "--quantity",
            "1",
            "--price",
            "80",
            "--mode",
            "dark-pool",
            "--date",
            "2024-06-03",
        ],
    ),
    (
        2,
        [
            "trade",
            "--buyer",
            "F2",
            "--seller",
            "F1",
            *UNIT,
            "--quantity",
            "1",
            "--price",
            "80",
            "--mode",
            "listed",
            "--date",
            "2024-02-30",
        ],
    ),
    (
        2,
        ["issue", "F1", "--unit", "XYZ", "--vintage", "2024", "--quantity", "1", "--basis", "pre-allocation"],
    ),
    (2, ["issue", "F1", *UNIT, "--quantity", "1", "--basis", "gift"]),
    (2, ["firm", "register", "F3", "--name", "U", "--sector", "tourism", "--region", "Hubei"]),
    (2, ["year", "open", "2026", "--deadline", "2025-12-31"]),
    (2, ["transfer", "F1", "F2", *UNIT]),  # usage: missing option
    (2, ["no-such-command"]),
]


@pytest.mark.parametrize("code, args", REFUSED, ids=[" ".join(a[:1] + a[-2:]) for _c, a in REFUSED])
def test_every_refused_command_exits_with_its_code_one_line_and_leaves_the_head_unchanged(
    store: str, code: int, args: list[str]
) -> None:
    before = head(store)
    r = run_main(store, *args)
    assert r.code == code, r.err
    assert "Traceback" not in r.err + r.out
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    assert head(store) == before


def test_a_refusal_names_what_was_wrong(store: str) -> None:
    r = run_main(store, "transfer", "F1", "F2", *UNIT, "--quantity", "1001")
    assert r.err.strip() == "error: account F1 holds 1000 t of CEA 2024, fewer than 1001 t"
    r = run_main(store, "transfer", "F1", "F2", *UNIT, "--quantity", "1.5")
    assert "quantity" in r.err and "1.5" in r.err


def test_a_refused_command_through_click_keeps_its_ledger_error(store: str) -> None:
    r = invoke(store, "transfer", "F1", "F2", *UNIT, "--quantity", "1001")
    assert isinstance(r.exception, Refused) and r.exception.code == "insufficient_holding"
    r = invoke(store, "transfer", "F1", "F2", *UNIT, "--quantity", "x")
    assert isinstance(r.exception, BadInput)


# ---- the executable in a subprocess: the whole contract ----------------------------------------------


def test_executable_appends_and_reads_with_exit_0(store_url: str) -> None:
    r = run_exe(store_url, "firm", "register", "F1", "--name", "U1", "--sector", "power", "--region", "Hubei")
    assert r.code == 0 and r.err == ""
    r = run_exe(store_url, "issue", "F1", *UNIT, "--quantity", "1000", "--basis", "pre-allocation")
    assert r.code == 0
    r = run_exe(store_url, "balances", "--json")
    assert r.code == 0
    assert json.loads(r.out) == {
        "position": 3,
        "balances": [{"account_id": "F1", "unit": "CEA", "vintage": 2024, "quantity": 1000}],
        "totals": [
            {
                "unit": "CEA",
                "vintage": 2024,
                "issued": 1000,
                "held": 1000,
                "surrendered": 0,
                "cancelled": 0,
                "withdrawn": 0,
                "carried_in": 0,
                "carried_out": 0,
            }
        ],
        "accounts": [{"account_id": "F1", "state": "open", "reason": None, "until": None, "approvals": 1,
                      "reserved": 0}],
        "pending": [],
    }


def test_executable_refusal_is_exit_1_with_one_line_and_no_traceback(store: str) -> None:
    r = run_exe(store, "transfer", "F1", "F2", *UNIT, "--quantity", "5000")
    assert r.code == 1
    assert r.err.count("\n") == 1 and r.err.startswith("error: ") and "5000" in r.err
    assert r.out == ""


def test_executable_bad_input_is_exit_2_with_one_line(store: str) -> None:
    r = run_exe(
        store,
        "trade",
        "--buyer",
        "F2",
        "--seller",
        "F1",
        *UNIT,
        "--quantity",
        "1",
        "--price",
        "88.505",
        "--mode",
        "listed",
        "--date",
        "2024-06-03",
    )
    assert r.code == 2
    assert r.err.count("\n") == 1 and "88.505" in r.err


def test_executable_store_failure_is_exit_3(tmp_path: Path) -> None:
    r = run_exe(str(tmp_path / "missing.db"), "balances")
    assert r.code == 3 and r.err.startswith("error: ") and r.err.count("\n") == 1


# ---- import ------------------------------------------------------------------------------------------


def _lines(*objs: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


IMPORT_EXAMPLE = _lines(
    {
        "command": "firm register",
        "command_id": "c-1",
        "firm_id": "F0001",
        "name": "Huaneng Unit 1",
        "sector": "power",
        "region": "Hubei",
    },
    {
        "command": "firm register",
        "command_id": "c-1b",
        "firm_id": "F0002",
        "name": "Datang Unit 7",
        "sector": "power",
        "region": "Hebei",
    },
    {
        "command": "issue",
        "command_id": "c-2",
        "account_id": "F0001",
        "unit": "CEA",
        "vintage": 2024,
        "quantity": 1000,
        "basis": "pre-allocation",
    },
    {
        "command": "transfer",
        "command_id": "c-3",
        "from_account": "F0001",
        "to_account": "F0002",
        "unit": "CEA",
        "vintage": 2024,
        "quantity": 100,
    },
    {
        "command": "trade",
        "command_id": "c-4",
        "buyer": "F0002",
        "seller": "F0001",
        "unit": "CEA",
        "vintage": 2024,
        "quantity": 50,
        "price": "88.50",
        "mode": "listed",
        "date": "2024-06-03",
    },
)


def _write(tmp_path: Path, text: str, name: str = "in.jsonl") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_import_applies_the_design_example(store_url: str, tmp_path: Path) -> None:
    res = invoke_json(store_url, "import", _write(tmp_path, IMPORT_EXAMPLE))
    assert (res["applied"], res["already_applied"], res["refused"], res["position"]) == (5, 0, [], 7)
    assert balances(store_url) == {("F0001", "CEA", 2024): 850, ("F0002", "CEA", 2024): 150}
    assert [e["command_id"] for e in export_lines(store_url)][-3:] == ["c-2", "c-3", "c-4"]


def test_import_reads_standard_input(store_url: str) -> None:
    r = invoke(store_url, "import", "-", input=IMPORT_EXAMPLE)
    assert r.exit_code == 0, r.exception
    assert head(store_url)[0] == 7


@pytest.mark.parametrize(
    "bad_line, why",
    [
        (
            '{"command": "transfer", "command_id": "c-9", "from_account": "F0001", "unit": "CEA"}\n',
            "to_account",
        ),
        ("this is not json\n", "not JSON"),
        (
            (
                '{"command": "issue", "account_id": "F0001", "unit": "CEA", "vintage": 2024, "quantity": 5,'
                ' "basis": "auction"}\n'
            ),
            "command_id",
        ),
        ('{"command": "teleport", "command_id": "c-9"}\n', "teleport"),
        (
            (
                '{"command": "transfer", "command_id": "c-9", "from_account": "F0001", "to_account": "F0002",'
                ' "unit": "CEA", "vintage": 2024, "quantity": 1.5}\n'
            ),
            "whole",
        ),
        ("[1, 2]\n", "object"),
    ],
)
def test_a_bad_line_refuses_the_whole_file_before_anything_is_appended(
    store: str, tmp_path: Path, bad_line: str, why: str
) -> None:
    before = head(store)
    lines = IMPORT_EXAMPLE.splitlines(keepends=True)
    text = "".join(lines[:3]) + bad_line + "".join(lines[3:])
    r = run_main(store, "import", _write(tmp_path, text))
    assert r.code == 2
    assert "line 4" in r.err and why in r.err
    assert head(store) == before


@pytest.mark.parametrize(
    "line, why",
    [
        ({"command": "year open", "year": "2026", "deadline": "2025-12-31"}, "before the compliance year"),
        (
            {"command": "emissions verify", "firm_id": "F1", "year": 2024, "tonnes": 5, "output": 10},
            "go together",
        ),
        (
            {
                "command": "firm register",
                "firm_id": "S9",
                "name": "S",
                "sector": "steel",
                "region": "Hebei",
                "unit_type": "gas",
            },
            "power sector",
        ),
        ({"command": "actor add", "actor_id": "D1", "role": "firm"}, "needs --firm"),
        ({"command": "actor add", "actor_id": "X1", "role": "exchange", "firm": "F1"}, "role firm"),
    ],
)
def test_a_line_whose_arguments_contradict_each_other_refuses_the_whole_file(
    store: str, tmp_path: Path, line: dict, why: str
) -> None:
    """No ledger state is needed to see these lines are invalid, so nothing before them is appended either."""
    before = head(store)
    text = IMPORT_EXAMPLE + json.dumps({**line, "command_id": "bad"}) + "\n"
    r = run_main(store, "import", _write(tmp_path, text))
    assert r.code == 2 and "line 6 (bad)" in r.err and why in r.err
    assert head(store) == before


def test_a_bad_line_refuses_even_a_new_store_without_creating_it(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    r = run_main(path, "import", _write(tmp_path, IMPORT_EXAMPLE + "{oops\n"))
    assert r.code == 2 and "line 6" in r.err
    assert not os.path.exists(path)


def test_rerunning_an_import_appends_nothing(store_url: str, tmp_path: Path) -> None:
    f = _write(tmp_path, IMPORT_EXAMPLE)
    invoke_json(store_url, "import", f)
    before = head(store_url)
    res = invoke_json(store_url, "import", f)
    assert (res["applied"], res["already_applied"]) == (0, 5)
    assert head(store_url) == before


def test_rerunning_an_interrupted_import_appends_only_what_is_missing(
    store_url: str, new_store: Callable[[str], str], tmp_path: Path
) -> None:
    lines = IMPORT_EXAMPLE.splitlines(keepends=True)
    invoke_json(store_url, "import", _write(tmp_path, "".join(lines[:2]), "part.jsonl"))  # "crashed" after 2
    res = invoke_json(store_url, "import", _write(tmp_path, IMPORT_EXAMPLE), "--batch-size", "2")
    assert (res["applied"], res["already_applied"]) == (3, 2)
    whole = new_store("whole")
    invoke_json(whole, "import", _write(tmp_path, IMPORT_EXAMPLE))
    strip = [{k: e[k] for k in ("position", "type", "command_id", "data")} for e in export_lines(whole)]
    assert [
        {k: e[k] for k in ("position", "type", "command_id", "data")} for e in export_lines(store_url)
    ] == strip


REFUSING = _lines(
    {
        "command": "transfer",
        "command_id": "r-1",
        "from_account": "F1",
        "to_account": "F2",
        "unit": "CEA",
        "vintage": 2024,
        "quantity": 100,
    },
    {
        "command": "transfer",
        "command_id": "r-2",
        "from_account": "F1",
        "to_account": "F2",
        "unit": "CEA",
        "vintage": 2024,
        "quantity": 5000,
    },
    {
        "command": "transfer",
        "command_id": "r-3",
        "from_account": "F1",
        "to_account": "F2",
        "unit": "CEA",
        "vintage": 2024,
        "quantity": 200,
    },
)


def test_import_stops_at_a_refused_command_by_default(store: str, tmp_path: Path) -> None:
    p0 = head(store)[0]
    r = run_main(store, "import", _write(tmp_path, REFUSING))
    assert r.code == 1
    assert "line 2 (r-2)" in r.err
    assert head(store)[0] == p0 + 1
    assert balances(store)[("F2", "CEA", 2024)] == 100


def test_import_goes_on_past_a_refused_command_when_asked(store: str, tmp_path: Path) -> None:
    p0 = head(store)[0]
    r = run_main(store, "import", _write(tmp_path, REFUSING), "--on-refusal", "continue", "--json")
    assert r.code == 1
    summary = json.loads(r.out)
    assert summary["applied"] == 2 and not summary["stopped"]
    assert [(x["line"], x["command_id"]) for x in summary["refused"]] == [(2, "r-2")]
    assert "line 2 (r-2)" in r.err
    assert head(store)[0] == p0 + 2
    assert balances(store)[("F2", "CEA", 2024)] == 300


def test_import_of_a_fixed_file_after_a_stop_applies_the_rest(store: str, tmp_path: Path) -> None:
    run_main(store, "import", _write(tmp_path, REFUSING))
    fixed = REFUSING.replace('"quantity": 5000', '"quantity": 50')
    res = invoke_json(store, "import", _write(tmp_path, fixed, "fixed.jsonl"))
    assert (res["applied"], res["already_applied"]) == (2, 1)
    assert balances(store)[("F2", "CEA", 2024)] == 350


def test_executable_import_of_a_bad_line_is_exit_2_naming_the_line(store: str) -> None:
    before = head(store)
    r = run_exe(store, "import", "-", stdin=IMPORT_EXAMPLE + '{"command": "issue", "command_id": "z"}\n')
    assert r.code == 2 and "line 6" in r.err and "Traceback" not in r.err
    assert head(store) == before


def test_a_stored_row_edited_behind_the_ledgers_back_fails_audit_verify_in_the_executable(store: str) -> None:
    with raw_db(store) as conn:
        (state,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 6").fetchone()
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = 6",
            (bytes(state).replace(b'"quantity":1000', b'"quantity":9000'),),
        )
    r = run_exe(store, "audit", "verify")
    assert r.code == 3
    assert "position 6" in r.err and r.err.count("\n") == 1
