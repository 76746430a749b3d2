"""The CLI contract (docs/cli.md, docs/events.md) end to end: the installed console script, in subprocesses.

Each test builds a scratch store through `carbon-ledger` exactly as a user or a script would and checks
what the contract promises: the append commands and their refusals, idempotent command ids, price bands
and lot sizes, reads as of past positions, the read commands' JSON and CSV, allocation and penalties as
the rules in force compute them, roles on an enforced store, and the export's hash chain.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from e2ekit import CLI, EXE, jsonl

ROOT = Path(__file__).resolve().parents[2]
CEA24 = ("--unit", "CEA", "--vintage", "2024")


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(str(tmp_path / "e2e.db"), cwd=str(tmp_path))


def _register(cli: CLI, *firms: tuple[str, str]) -> None:
    for fid, sector in firms:
        cli.ok("firm", "register", fid, "--name", f"Firm {fid}", "--sector", sector, "--region", "Hubei")


# ---- appends, rules and refusals --------------------------------------------------------------------

def test_the_append_commands_record_what_the_contract_says_and_refusals_append_nothing(cli: CLI) -> None:
    _register(cli, ("F1", "power"), ("F2", "power"))
    cli.ok("year", "open", "2024", "--deadline", "2025-12-31")
    cli.ok("issue", "F1", *CEA24, "--quantity", "1000", "--basis", "pre-allocation")
    cli.ok("transfer", "F1", "F2", *CEA24, "--quantity", "100", "--command-id", "t-1")
    buy = ("trade", "--buyer", "F2", "--seller", "F1", *CEA24)
    # the first trading day has no band; its close is its VWAP, (50 x 88.50 + 10 x 97.00) / 60 = 89.92
    cli.ok(*buy, "--quantity", "50", "--price", "88.50", "--mode", "listed", "--date", "2024-06-03")
    cli.ok(*buy, "--quantity", "10", "--price", "97.00", "--mode", "listed", "--date", "2024-06-03")
    cli.ok(*buy, "--quantity", "5", "--price", "81.00", "--mode", "listed", "--date", "2024-06-04")  # within 10%
    cli.ok("emissions", "verify", "F1", "--year", "2024", "--tonnes", "800")
    cli.ok("surrender", "F1", "--year", "2024", *CEA24, "--quantity", "800")
    assert cli.balances() == {("F1", "CEA", 2024): 35, ("F2", "CEA", 2024): 165}

    one = ("--quantity", "1", "--mode", "listed", "--date", "2024-06-04")
    cli.refused((1,), "transfer", "F1", "F2", *CEA24, "--quantity", "36")  # more than held
    cli.refused((1,), "transfer", "F1", "NOPE", *CEA24, "--quantity", "1")  # no such account
    cli.refused((2,), "transfer", "F1", "F2", *CEA24, "--quantity", "-5")
    cli.refused((2,), "transfer", "F1", "F2", *CEA24, "--quantity", "1.5")  # not whole tonnes
    cli.refused((2,), *buy, *one, "--price", "88.505")  # three decimals
    cli.refused((1,), *buy, *one, "--price", "99.00")  # beyond +10% of the VWAP close 89.92
    cli.refused((1,), *buy, "--quantity", "5", "--price", "89.00", "--mode", "block", "--date", "2024-06-04")
    cli.refused((1,), "trade", "--buyer", "F1", "--seller", "F1", *CEA24, *one, "--price", "88.00")  # self-trade
    cli.refused((1,), "surrender", "F1", "--year", "2023", *CEA24, "--quantity", "1")  # no such year open
    cli.refused((1,), "firm", "register", "F1", "--name", "again", "--sector", "power", "--region", "Hubei")
    cli.refused((2,), "issue", "F1", "--unit", "XYZ", "--vintage", "2024", "--quantity", "1",
                "--basis", "pre-allocation")
    cli.refused((2,), "no-such-command")
    verify = cli.ok("audit", "verify")
    assert verify.out.startswith("chain verified: ")


def test_a_repeated_command_id_appends_nothing_and_says_so_and_another_command_under_it_is_refused(
        cli: CLI) -> None:
    _register(cli, ("F1", "power"), ("F2", "power"))
    cli.ok("year", "open", "2024")
    cli.ok("issue", "F1", *CEA24, "--quantity", "1000", "--basis", "pre-allocation")
    first = cli.js("transfer", "F1", "F2", *CEA24, "--quantity", "100", "--command-id", "t-1")
    assert first["replayed"] is False and first["position"] == 7
    again = cli.ok("transfer", "F1", "F2", *CEA24, "--quantity", "100", "--command-id", "t-1")
    assert again.out.strip() == "already recorded: command t-1 at position 7; nothing appended"
    again_json = cli.js("transfer", "F1", "F2", *CEA24, "--quantity", "100", "--command-id", "t-1")
    assert again_json == {**first, "replayed": True}
    r = cli.refused((1,), "transfer", "F1", "F2", *CEA24, "--quantity", "5", "--command-id", "t-1")
    assert "t-1" in r.err and "different command" in r.err
    assert cli.head()[0] == 7


def test_a_trade_carries_the_previous_close_as_reference_price_except_on_the_first_trading_day(cli: CLI) -> None:
    _register(cli, ("F1", "power"), ("F2", "power"))
    cli.ok("year", "open", "2024")
    cli.ok("issue", "F1", *CEA24, "--quantity", "1000", "--basis", "pre-allocation")
    buy = ("trade", "--buyer", "F2", "--seller", "F1", *CEA24, "--mode", "listed")
    cli.ok(*buy, "--quantity", "50", "--price", "88.50", "--date", "2024-06-03")
    cli.ok(*buy, "--quantity", "10", "--price", "90.00", "--date", "2024-06-04")
    trades = [e["data"] for e in cli.export() if e["type"] == "TradeExecuted"]
    assert "reference_price" not in trades[0]
    assert trades[1]["reference_price"] == "88.50"


def test_audit_head_and_verify_print_the_whole_head_hash(cli: CLI) -> None:
    _register(cli, ("F1", "power"))
    position, h = cli.head()
    assert position == 2 and re.fullmatch(r"[0-9a-f]{64}", h)
    assert cli.ok("audit", "head").out.split() == ["2", h]
    assert f"head {h};" in cli.ok("audit", "verify").out
    assert cli.js("audit", "verify")["hash"] == h


def test_rules_show_prints_a_table_for_people_and_json_only_with_json(cli: CLI) -> None:
    data = cli.js("rules", "show", "--year", "2024")
    assert data["year"] == 2024 and data["rule_version"]
    text = cli.ok("rules", "show", "--year", "2024").out
    with pytest.raises(ValueError):
        json.loads(text)
    assert "Rules in force for 2024" in text
    assert re.search(rf"rule_version\s*│\s*{re.escape(data['rule_version'])}\s", text)


# ---- the read side ------------------------------------------------------------------------------------

def _market_script(seed: int = 7) -> tuple[list[list[dict]], dict[str, int]]:
    """Rounds of commands for a small market: transfers and trades within the bands, T+1 respected."""
    rnd = random.Random(seed)
    firms = [f"F{i:02d}" for i in range(6)]
    held = {f: rnd.randrange(5000, 20000) for f in firms}
    setup = [{"command": "year open", "command_id": "y", "year": "2024", "deadline": "2025-12-31"}]
    setup += [{"command": "issue", "command_id": f"i-{f}", "account_id": f, "unit": "CEA", "vintage": 2024,
               "quantity": q, "basis": "pre-allocation"} for f, q in held.items()]
    rounds, price, n = [setup], Decimal("80.00"), 0
    for day in range(3, 13):
        price = (price * Decimal(str(1 + rnd.uniform(-0.05, 0.05)))).quantize(Decimal("0.01"), ROUND_HALF_UP)
        bought: set[str] = set()
        cmds = []
        for _ in range(6):
            a, b = rnd.sample(firms, 2)
            q = rnd.randrange(1, 500)
            if held[a] < q or a in bought:
                continue
            n += 1
            if rnd.random() < 0.5:
                cmds.append({"command": "transfer", "command_id": f"c-{n}", "from_account": a, "to_account": b,
                             "unit": "CEA", "vintage": 2024, "quantity": q})
            else:  # one price a day: the day's VWAP close is that price, and the next day stays within 5% of it
                cmds.append({"command": "trade", "command_id": f"c-{n}", "buyer": b, "seller": a, "unit": "CEA",
                             "vintage": 2024, "quantity": q, "price": str(price), "mode": "listed",
                             "date": f"2024-06-{day:02d}"})
                bought.add(b)
            held[a] -= q
            held[b] += q
        rounds.append(cmds)
    return rounds, held


def test_reads_as_of_past_positions_equal_what_was_read_then_and_every_read_answers(cli: CLI) -> None:
    _register(cli, ("F00", "power"), ("F01", "power"), ("F02", "power"), ("F03", "power"), ("F04", "cement"),
              ("F05", "aluminium"))
    rounds, held = _market_script()
    snapshots = []
    for cmds in rounds:
        if cmds:
            cli.ok("import", "-", stdin=jsonl(cmds))
        snapshots.append((cli.head()[0], cli.balances()))
    # F00 surrenders what it owes (A); F03 surrenders nothing (B)
    cli.ok("emissions", "verify", "F00", "--year", "2024", "--tonnes", "4000")
    cli.ok("emissions", "verify", "F03", "--year", "2024", "--tonnes", str(held["F03"] - 50))
    cli.ok("surrender", "F00", "--year", "2024", *CEA24, "--quantity", "4000")
    snapshots.append((cli.head()[0], cli.balances()))
    assert len({p for p, _ in snapshots}) == len(snapshots)
    for position, then in snapshots:
        assert cli.balances("--as-of", str(position)) == then, f"balances as of {position}"
    assert cli.balances() == {(f, "CEA", 2024): q - (4000 if f == "F00" else 0) for f, q in held.items()}

    market = cli.js("market")
    assert {"position", "cumulative", "days", "years", "modes"} <= set(market)
    trades = [c for r in rounds for c in r if c["command"] == "trade"]
    assert market["cumulative"]["volume"] == sum(t["quantity"] for t in trades)
    assert Decimal(market["cumulative"]["value"]) == sum(Decimal(t["price"]) * t["quantity"] for t in trades)
    assert market["cumulative"]["trades"] == len(trades)
    statuses = {r["firm_id"]: r["status"].rstrip("*") for r in cli.js("compliance", "--year", "2024")["rows"]}
    assert statuses["F00"] == "A" and statuses["F03"] == "B"
    coverage = cli.js("coverage", "--year", "2024", "--national-total", "100000")
    assert {s["sector"] for s in coverage["sectors"]} >= {"power"}
    history = cli.js("history", "F00")
    assert history["rows"][-1]["balance"] == held["F00"] - 4000
    csv = cli.ok("market", "--csv", "--by", "day").out.splitlines()
    assert csv[0].split(",")[:2] == ["date", "unit"] and len(csv) == 1 + len(market["days"])
    assert cli.ok("audit", "replay").out.startswith("replay from 0 to ")


def test_a_read_of_a_missing_store_is_a_store_failure(tmp_path: Path) -> None:
    cli = CLI(str(tmp_path / "none.db"))
    r = cli.run("balances")
    assert r.code == 3 and r.err.startswith("error: no store at ") and not (tmp_path / "none.db").exists()


# ---- the rules in force: allocation, penalty, deduction -----------------------------------------------------

def _numbers(d: object) -> list[int]:
    if isinstance(d, dict):
        return [n for v in d.values() for n in _numbers(v)]
    if isinstance(d, list):
        return [n for v in d for n in _numbers(v)]
    if isinstance(d, int) and not isinstance(d, bool):
        return [d]
    return []


def test_allocation_carries_its_inputs_the_fine_uses_the_month_before_the_deadline_and_next_year_deducts(
        cli: CLI) -> None:
    _register(cli, ("S1", "steel"))
    cli.ok("firm", "register", "P1", "--name", "Coal 600MW", "--sector", "power", "--region", "Shanxi")
    cli.ok("year", "open", "2023", "--deadline", "2024-12-31")
    cli.ok("emissions", "verify", "P1", "--year", "2023", "--tonnes", "850000", "--output", "1000000",
           "--output-unit", "MWh")
    cli.ok("year", "open", "2024", "--deadline", "2025-12-31")
    cli.ok("allocate", "P1", "--year", "2024", "--step", "pre")
    (pre,) = [e["data"] for e in cli.export() if e["type"] == "AllowancesIssued"]
    # the rules in force decide the basis (base-year output x benchmark, or verified emissions); either way
    # the event carries what it was computed from
    if pre.get("benchmark") is not None and pre.get("output") is not None:
        expect = Decimal(pre["share"]) * pre["output"] * Decimal(pre["benchmark"])
    else:
        assert 850000 in _numbers(pre), f"the pre-allocation carries no inputs: {sorted(pre)}"
        expect = Decimal("0.7") * 850000
    assert expect * Decimal("0.8") <= pre["quantity"] <= expect * Decimal("1.2"), (pre, expect)

    cli.ok("emissions", "verify", "S1", "--year", "2024", "--tonnes", "50000", "--output", "40000",
           "--output-unit", "t")
    cli.ok("allocate", "S1", "--year", "2024", "--step", "true-up")
    s1 = sum(e["data"]["quantity"] for e in cli.export()
             if e["type"] == "AllowancesIssued" and e["data"]["account_id"] == "S1")
    assert s1 == 50000, "a new sector's first-year allocation is its verified emissions"

    tr = ("--buyer", "S1", "--seller", "P1", *CEA24, "--mode", "listed")
    cli.ok("trade", *tr, "--quantity", "1000", "--price", "70.00", "--date", "2025-11-10")
    cli.ok("trade", *tr, "--quantity", "3000", "--price", "72.00", "--date", "2025-11-20")
    cli.ok("trade", *tr, "--quantity", "2000", "--price", "71.50", "--date", "2025-12-10")  # same average
    cli.ok("emissions", "verify", "P1", "--year", "2024", "--tonnes", "1000000", "--output", "1000000",
           "--output-unit", "MWh")
    cli.ok("allocate", "P1", "--year", "2024", "--step", "true-up")
    cli.ok("surrender", "P1", "--year", "2024", *CEA24, "--quantity", "700000")
    cli.ok("year", "close", "2024", "--correct-by", "2099-12-31")
    (penalty,) = [e["data"] for e in cli.export() if e["type"] == "PenaltyAssessed" and e["data"]["firm_id"] == "P1"]
    shortfall = int(penalty["shortfall"])
    assert shortfall > 0
    assert Decimal(penalty["fine"]) == (5 * shortfall * Decimal("71.50")).quantize(Decimal("0.01"))
    rows = {r["firm_id"]: r for r in cli.js("compliance", "--year", "2024")["rows"]}
    assert rows["P1"]["status"].rstrip("*") == "B"
    # IR art. 24: closing orders correction by a time limit (here a far one); until then a late surrender
    # is taken, and the deduction waits for `year enforce`, which is refused while the limit runs
    cli.ok("surrender", "P1", "--year", "2024", *CEA24, "--quantity", "1")
    rows = {r["firm_id"]: r for r in cli.js("compliance", "--year", "2024")["rows"]}
    assert (rows["P1"]["status"], rows["P1"]["shortfall"]) == ("B", shortfall - 1)
    assert rows["P1"]["correct_by"] > date.today().isoformat()
    cli.refused((1,), "year", "enforce", "2024")
    cli.refused((1,), "allocate", "P1", "--year", "2025", "--step", "pre")  # 2025 is not open yet
    cli.ok("year", "open", "2025", "--deadline", "2026-12-31")
    cli.ok("allocate", "P1", "--year", "2025", "--step", "pre")
    cut = [e["data"] for e in cli.export() if e["type"] == "AllowancesWithdrawn"
           and e["data"]["account_id"] == "P1" and e["data"]["vintage"] == 2025]
    assert cut == []  # not enforced yet: nothing deducted


# ---- authority ------------------------------------------------------------------------------------------

def test_an_enforced_store_refuses_every_actor_without_the_right_and_records_the_actor_of_every_event(
        cli: CLI) -> None:
    mee = ("--as", "MEE")
    cli.ok("init", "--regulator", "MEE")
    cli.ok(*mee, "actor", "add", "SEEE", "--role", "exchange")
    for f in ("F1", "F2"):
        cli.ok(*mee, "firm", "register", f, "--name", f, "--sector", "power", "--region", "Hubei")
        cli.ok(*mee, "actor", "add", f"{f}-desk", "--role", "firm", "--firm", f)
    cli.ok(*mee, "year", "open", "2024", "--deadline", "2025-12-31")
    issue = ("issue", "F1", *CEA24, "--quantity", "1000", "--basis", "pre-allocation")
    for who in (("--as", "F1-desk"), ("--as", "SEEE"), (), ("--as", "nobody")):
        cli.refused((1, 2), *who, *issue, reader=mee)
    cli.ok(*mee, *issue)
    transfer = ("transfer", "F1", "F2", *CEA24, "--quantity", "10")
    cli.refused((1,), "--as", "F2-desk", *transfer, reader=mee)  # not its account
    cli.ok("--as", "F1-desk", *transfer)
    trade = ("trade", "--buyer", "F2", "--seller", "F1", *CEA24, "--quantity", "5", "--price", "80.00",
             "--mode", "listed", "--date", "2024-06-03")
    cli.refused((1,), "--as", "F1-desk", *trade, reader=mee)
    cli.ok("--as", "SEEE", *trade)
    cli.refused((1,), "--as", "F1-desk", "actor", "add", "X", "--role", "regulator", reader=mee)
    cli.refused((1,), "--as", "F2-desk", "surrender", "F1", "--year", "2024", *CEA24, "--quantity", "1", reader=mee)
    events = cli.export(*mee)
    assert all(e["actor"] for e in events)
    actors = {e["type"]: e["actor"] for e in events}
    assert actors["TradeExecuted"] == "SEEE" and actors["AllowancesIssued"] == "MEE"
    assert actors["AllowancesTransferred"] == "F1-desk"
    assert "roles enforced" in cli.ok(*mee, "audit", "verify").out


# ---- the export recomputes the chain, by the recipe of docs/events.md ------------------------------------------

def _recipe() -> str:
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    (script,) = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return script


def _recompute(cli: CLI, *reader: str) -> str:
    export = cli.ok(*reader, "audit", "export").out
    p = subprocess.run([sys.executable, "-c", _recipe()], input=export, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_the_chain_recomputed_from_the_export_by_the_documented_recipe_is_the_head(cli: CLI, tmp_path: Path) -> None:
    _register(cli, ("F1", "power"), ("F2", "power"))
    cli.ok("year", "open", "2024")
    cli.ok("issue", "F1", *CEA24, "--quantity", "1000", "--basis", "pre-allocation")
    cli.ok("firm", "register", "F3", "--name", "Ünïcode 电厂", "--sector", "power", "--region", "Hubei")
    position, h = cli.head()
    assert _recompute(cli) == f"{position} events, head {h}"

    signed = CLI(str(tmp_path / "signed.db"), cwd=str(tmp_path))
    seee_pub = signed.ok("actor", "keygen", "--out", str(tmp_path / "seee.key")).out.strip()
    signed.ok("actor", "keygen", "--out", str(tmp_path / "mee.key"))
    mee = ("--as", "MEE", "--key", str(tmp_path / "mee.key"))
    signed.ok("--key", str(tmp_path / "mee.key"), "init", "--regulator", "MEE", "--require-signatures")
    signed.ok(*mee, "actor", "add", "SEEE", "--role", "exchange", "--public-key", seee_pub)
    signed.ok(*mee, "firm", "register", "F1", "--name", "Huaneng", "--sector", "power", "--region", "Hubei")
    assert any("signature" in e for e in signed.export(*mee))
    position, h = signed.head(*mee)
    assert _recompute(signed, *mee) == f"{position} events, head {h}"

    # and the recipe does catch a changed export line
    lines = cli.ok("audit", "export").out.splitlines()
    lines[5] = lines[5].replace('"quantity":1000', '"quantity":1001')
    p = subprocess.run([sys.executable, "-c", _recipe()], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, check=False)
    assert p.returncode != 0 and "chain breaks at position 6" in p.stderr


# ---- atomicity: an import killed mid-run ------------------------------------------------------------------

def _head_of(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            row = c.execute("SELECT MAX(position) FROM ledger_chain").fetchone()
    except sqlite3.OperationalError:
        return 0
    return row[0] or 0


def test_an_import_killed_mid_run_leaves_whole_batches_and_a_rerun_completes_it(cli: CLI, tmp_path: Path) -> None:
    transfers = 120_000
    setup = [{"command": "firm register", "command_id": f"r-{f}", "firm_id": f, "name": f, "sector": "power",
              "region": "Hubei"} for f in ("F1", "F2")]
    setup += [{"command": "year open", "command_id": "y", "year": "2024"},
              {"command": "issue", "command_id": "i", "account_id": "F1", "unit": "CEA", "vintage": 2024,
               "quantity": 1000, "basis": "pre-allocation"}]
    moves = [{"command": "transfer", "command_id": f"t-{n}", "from_account": "F1" if n % 2 == 0 else "F2",
              "to_account": "F2" if n % 2 == 0 else "F1", "unit": "CEA", "vintage": 2024, "quantity": 1}
             for n in range(transfers)]
    path = tmp_path / "commands.jsonl"
    path.write_text(jsonl(setup + moves))
    db = Path(cli.store)
    batch = 1000  # commands per atomic batch: the first holds the 4 setup commands (6 events) and 996 transfers
    proc = subprocess.Popen([EXE, "--store", cli.store, "import", str(path), "--batch-size", str(batch)],
                            env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _head_of(db) < 3 * batch and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    total = 6 + transfers
    head = cli.head()[0]
    if head >= total:
        pytest.skip("the import finished before it could be killed (a very fast machine)")
    assert head > 0 and (head - (6 + batch - 4)) % batch == 0, f"head {head} is not at a batch boundary"
    assert cli.ok("audit", "verify").out.startswith(f"chain verified: {head} events")
    done = cli.js("import", str(path), "--batch-size", str(batch))
    assert done["applied"] + done["already_applied"] == len(setup) + transfers
    assert done["already_applied"] == 4 + (head - 6)
    assert cli.head()[0] == total
    assert cli.balances() == {("F1", "CEA", 2024): 1000}  # an even number of one-tonne moves back and forth
