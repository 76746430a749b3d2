"""A registry's operations: frozen and closed accounts, four-eyes transfers, stable refusal codes.

Every test runs on SQLite and PostgreSQL (`store_url`), asserts refusal codes (never messages), and ends with
`audit verify` (re-execution) passing on the store it built: the `audited` fixture checks it at teardown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from ledgerkit import Clock, events, raw_db, refusal, rehash_chain, rewrite_event, run_main

from ledger.errors import Refused
from ledger.events import validate_event
from ledger.registry import Registry

V = 2024
CEA = ("CEA", V)


@pytest.fixture
def audited(store_url: str) -> Iterator[str]:
    """The store; after the test, `audit verify` must pass on it (what every test here builds re-executes)."""
    yield store_url
    r = run_main(store_url, "audit", "verify")
    assert r.code == 0, r.err


@pytest.fixture
def clock() -> Clock:
    return Clock("2025-03-03T09:00:00")


@pytest.fixture
def reg(audited: str, clock: Clock) -> Iterator[Registry]:
    """An enforced store: regulator MEE; firms F1, F2 (Hubei) with desks F1-desk, F1-cfo and F2-desk; the
    government account GOV-HUBEI; compliance year 2024 open; 1,000 t CEA 2024 issued to F1."""
    r = Registry(audited, clock=clock)
    r.init("MEE")
    for f in ("F1", "F2"):
        r.register_firm(f, f, "power", "Hubei", actor="MEE")
    for a, f in (("F1-desk", "F1"), ("F1-cfo", "F1"), ("F2-desk", "F2")):
        r.add_actor(a, "firm", f, actor="MEE")
    r.open_account("GOV-HUBEI", "Hubei", "government", actor="MEE")
    r.open_year(V, actor="MEE")
    r.issue("F1", *CEA, 1000, "auction", actor="MEE")
    try:
        yield r
    finally:
        r.close()


def code(fn: Any, *args: Any, **kw: Any) -> str:
    e = refusal(fn, *args, **kw)
    assert isinstance(e, Refused), e
    return e.code


def held(reg: Registry, account: str) -> int:
    return reg.state.holding(account, *CEA)


# ---- account states --------------------------------------------------------------------------------------


def test_a_frozen_account_receives_but_cannot_send_until_unfrozen(reg: Registry) -> None:
    reg.freeze_account("F1", "judicial", actor="MEE")
    head = reg.head()[0]
    assert code(reg.transfer, "F1", "F2", *CEA, 10, actor="F1-desk") == "account_frozen"
    assert code(reg.cancel, "F1", *CEA, 10, actor="F1-desk") == "account_frozen"
    reg.add_actor("SEEE", "exchange", actor="MEE")
    assert code(reg.trade, "F2", "F1", *CEA, 10, "60.00", "listed", "2025-03-03", actor="SEEE") == "account_frozen"
    reg.verify_emissions("F1", V, 500, actor="MEE")
    assert code(reg.surrender, "F1", V, *CEA, 10, actor="F1-desk") == "account_frozen"
    assert reg.head()[0] == head + 2  # the refusals appended nothing (the actor and the verification did)
    reg.issue("F1", *CEA, 5, "auction", actor="MEE")  # it still receives
    assert held(reg, "F1") == 1005
    assert code(reg.freeze_account, "F1", "default", actor="MEE") == "account_frozen"  # frozen already
    reg.unfreeze_account("F1", actor="MEE")
    assert code(reg.unfreeze_account, "F1", actor="MEE") == "account_not_frozen"
    reg.transfer("F1", "F2", *CEA, 10, actor="F1-desk")
    assert held(reg, "F2") == 10


def test_a_freeze_until_a_date_lapses_after_it_by_the_registrys_clock(reg: Registry, clock: Clock) -> None:
    assert code(reg.freeze_account, "F1", "investigation", "2025-03-02", actor="MEE") == "freeze_until_past"
    reg.freeze_account("F1", "investigation", "2025-03-10", actor="MEE")
    clock.set("2025-03-10T23:59:59")
    assert code(reg.transfer, "F1", "F2", *CEA, 1, actor="F1-desk") == "account_frozen"
    clock.set("2025-03-11T00:00:00")
    reg.transfer("F1", "F2", *CEA, 1, actor="F1-desk")
    assert code(reg.unfreeze_account, "F1", actor="MEE") == "account_not_frozen"


def test_only_the_regulator_freezes_unfreezes_and_closes(reg: Registry) -> None:
    assert code(reg.freeze_account, "F2", "judicial", actor="F2-desk") == "not_permitted"
    reg.freeze_account("F2", "judicial", actor="MEE")
    assert code(reg.unfreeze_account, "F2", actor="F2-desk") == "not_permitted"
    assert code(reg.close_account, "F2", actor="F2-desk") == "not_permitted"


def test_closing_needs_an_empty_account_or_a_sweep_to_a_government_account(reg: Registry) -> None:
    assert code(reg.close_account, "F1", actor="MEE") == "account_not_empty"
    assert code(reg.close_account, "F1", "F2", actor="MEE") == "sweep_not_government"
    assert code(reg.close_account, "F1", "NOPE", actor="MEE") == "unknown_account"
    reg.freeze_account("F1", "default", actor="MEE")
    assert code(reg.close_account, "F1", "GOV-HUBEI", actor="MEE") == "account_frozen"
    reg.unfreeze_account("F1", actor="MEE")
    out = reg.close_account("F1", "GOV-HUBEI", actor="MEE")
    assert out.result["events"] == ["AllowancesTransferred", "AccountClosed"] and out.result["swept"] == 1000
    assert (held(reg, "F1"), held(reg, "GOV-HUBEI")) == (0, 1000)
    assert code(reg.issue, "F1", *CEA, 1, "auction", actor="MEE") == "account_closed"
    assert code(reg.transfer, "GOV-HUBEI", "F1", *CEA, 1, actor="MEE") == "account_closed"
    assert code(reg.close_account, "F1", actor="MEE") == "account_closed"
    reg.close_account("F2", actor="MEE")  # empty: closes without a sweep
    for env in events(reg):
        validate_event(env)


def test_closing_is_refused_while_a_transfer_from_the_account_is_pending(reg: Registry) -> None:
    reg.set_policy("F1", 2, actor="F1-desk")
    pid = reg.transfer("F1", "F2", *CEA, 10, actor="F1-desk").result["transfer_id"]
    assert code(reg.close_account, "F1", "GOV-HUBEI", actor="MEE") == "pending_transfers"
    assert code(reg.close_account, "F2", actor="MEE") == "pending_transfers"  # it is the receiving end
    reg.cancel_transfer(pid, actor="F1-cfo")
    reg.close_account("F1", "GOV-HUBEI", actor="MEE")


# ---- four-eyes transfers ---------------------------------------------------------------------------------


def test_a_four_eyes_transfer_waits_for_a_second_person_of_the_firm(reg: Registry) -> None:
    assert code(reg.set_policy, "F1", 2, actor="F2-desk") == "not_own_account"
    reg.set_policy("F1", 2, actor="F1-desk")
    out = reg.transfer("F1", "F2", *CEA, 600, actor="F1-desk")
    pid = out.result["transfer_id"]
    assert out.result["events"] == ["TransferPending"] and out.result["expires_at"] == "2025-03-10T09:00:00Z"
    assert (held(reg, "F1"), held(reg, "F2")) == (1000, 0)  # reserved, not moved
    assert reg.state.reserved("F1", *CEA) == 600
    assert code(reg.approve_transfer, pid, actor="F1-desk") == "self_approval"
    assert code(reg.approve_transfer, pid, actor="F2-desk") == "not_own_account"
    assert code(reg.approve_transfer, pid, actor="MEE") == "not_permitted"
    out = reg.approve_transfer(pid, actor="F1-cfo")
    assert out.result["events"] == ["TransferApproved", "AllowancesTransferred"]
    assert (held(reg, "F1"), held(reg, "F2"), reg.state.reserved("F1", *CEA)) == (400, 600, 0)
    assert code(reg.approve_transfer, pid, actor="F1-cfo") == "unknown_pending_transfer"
    assert code(reg.cancel_transfer, pid, actor="F1-cfo") == "unknown_pending_transfer"
    for env in events(reg):
        validate_event(env)


def test_reserved_units_cannot_be_spent_twice(reg: Registry) -> None:
    reg.set_policy("F1", 2, actor="F1-desk")
    pid = reg.transfer("F1", "F2", *CEA, 700, actor="F1-desk").result["transfer_id"]
    assert code(reg.transfer, "F1", "F2", *CEA, 301, actor="F1-cfo") == "units_reserved"
    assert code(reg.cancel, "F1", *CEA, 301, actor="F1-desk") == "units_reserved"
    reg.add_actor("SEEE", "exchange", actor="MEE")
    assert code(reg.trade, "F2", "F1", *CEA, 301, "60.00", "listed", "2025-03-03", actor="SEEE") == "units_reserved"
    reg.verify_emissions("F1", V, 900, actor="MEE")
    assert code(reg.surrender, "F1", V, *CEA, 301, actor="F1-desk") == "units_reserved"
    assert code(reg.close_account, "F1", "GOV-HUBEI", actor="MEE") == "pending_transfers"
    reg.transfer("F1", "F2", *CEA, 300, actor="F1-cfo")  # the free 300 t: pending too
    second = [p for p in reg.state.pending if p != pid]
    assert reg.state.reserved("F1", *CEA) == 1000
    reg.approve_transfer(pid, actor="F1-cfo")
    reg.approve_transfer(second[0], actor="F1-desk")
    assert (held(reg, "F1"), held(reg, "F2")) == (0, 1000)


def test_a_pending_transfer_expires_by_the_registrys_clock_and_its_units_are_free_again(
        reg: Registry, clock: Clock) -> None:
    reg.set_policy("F1", 2, actor="F1-desk")
    pid = reg.transfer("F1", "F2", *CEA, 1000, expires_after="1d", actor="F1-desk").result["transfer_id"]
    clock.set("2025-03-04T09:00:00")  # the last second it can be approved
    assert code(reg.transfer, "F1", "F2", *CEA, 1, actor="F1-cfo") == "units_reserved"
    clock.set("2025-03-04T09:00:01")
    assert code(reg.approve_transfer, pid, actor="F1-cfo") == "pending_expired"
    reg.transfer("F1", "F2", *CEA, 1000, actor="F1-cfo")  # the expired one reserves nothing
    reg.cancel_transfer(pid, actor="F1-desk")  # an expired transfer is cancelled to tidy up
    assert pid not in reg.state.pending


def test_expires_after_is_for_four_eyes_accounts_and_bad_durations_are_bad_input(reg: Registry) -> None:
    from ledger.errors import BadInput

    assert code(reg.transfer, "F1", "F2", *CEA, 1, expires_after="1d", actor="F1-desk") == "no_approval_policy"
    for bad in ("0d", "1w", "30s", "400d", "-1d"):
        assert isinstance(refusal(reg.transfer, "F1", "F2", *CEA, 1, expires_after=bad, actor="F1-desk"), BadInput)


def test_only_the_regulator_lowers_the_approvals(reg: Registry) -> None:
    reg.set_policy("F1", 2, actor="F1-desk")
    assert code(reg.set_policy, "F1", 2, actor="F1-cfo") == "policy_unchanged"
    assert code(reg.set_policy, "F1", 1, actor="F1-cfo") == "policy_lowering"
    reg.set_policy("F1", 1, actor="MEE")
    reg.transfer("F1", "F2", *CEA, 1, actor="F1-desk")
    assert held(reg, "F2") == 1


def test_four_eyes_needs_an_enforced_store(audited: str) -> None:
    r = Registry(audited)
    try:
        r.register_firm("F1", "F1", "power", "Hubei")
        assert code(r.set_policy, "F1", 2) == "four_eyes_needs_roles"
    finally:
        r.close()


# ---- the CLI and import ----------------------------------------------------------------------------------


def cli(store: str, *args: str) -> Any:
    r = run_main(store, *args)
    assert r.code == 0, f"{args}: {r.err}"
    return r


def test_the_cli_freezes_refuses_with_a_json_error_and_reads_show_the_state(audited: str) -> None:
    s = audited
    cli(s, "--as", "MEE", "init", "--regulator", "MEE")
    for f in ("F1", "F2"):
        cli(s, "--as", "MEE", "firm", "register", f, "--name", f, "--sector", "power", "--region", "Hubei")
    cli(s, "--as", "MEE", "issue", "F1", "--unit", "CEA", "--vintage", "2024", "--quantity", "100", "--basis",
        "auction")
    cli(s, "--as", "MEE", "actor", "add", "F1-desk", "--role", "firm", "--firm", "F1")
    cli(s, "--as", "MEE", "account", "freeze", "F1", "--reason", "judicial", "--until", "2099-12-31")
    head = json.loads(cli(s, "audit", "head", "--json").out)["position"]
    r = run_main(s, "--as", "F1-desk", "transfer", "F1", "F2", "--unit", "CEA", "--vintage", "2024",
                 "--quantity", "5", "--json")
    assert (r.code, r.out) == (1, "")
    err = json.loads(r.err)
    assert err["error"]["code"] == "account_frozen" and set(err["error"]) == {"code", "message"}
    r = run_main(s, "--as", "F1-desk", "transfer", "F1", "F2", "--unit", "CEA", "--vintage", "2024",
                 "--quantity", "5")
    assert r.code == 1 and r.err.startswith("error: ") and r.err.count("\n") == 1
    r = run_main(s, "--as", "MEE", "account", "freeze", "F2", "--reason", "bankrupt", "--json")
    assert (r.code, json.loads(r.err)["error"]["code"]) == (2, "bad_input")
    r = run_main(s, "account", "freeze", "--json")
    assert (r.code, json.loads(r.err)["error"]["code"]) == (2, "usage")
    assert json.loads(cli(s, "audit", "head", "--json").out)["position"] == head
    bal = json.loads(cli(s, "balances", "F1", "--json").out)
    assert bal["accounts"] == [{"account_id": "F1", "state": "frozen", "reason": "judicial", "until": "2099-12-31",
                                "approvals": 1, "reserved": 0}]
    assert json.loads(cli(s, "history", "F1", "--json").out)["state"] == "frozen"
    assert "frozen" in cli(s, "balances").out and "History of F1 at position" in cli(s, "history", "F1").out


def test_import_runs_the_operations_and_reports_refusal_codes(audited: str, tmp_path: Any) -> None:
    s = audited
    lines = [
        {"command": "firm register", "command_id": "c1", "firm_id": "F1", "name": "F1", "sector": "power",
         "region": "Hubei"},
        {"command": "firm register", "command_id": "c2", "firm_id": "F2", "name": "F2", "sector": "power",
         "region": "Hubei"},
        {"command": "issue", "command_id": "c3", "account_id": "F1", "unit": "CEA", "vintage": 2024,
         "quantity": 50, "basis": "auction"},
        {"command": "account freeze", "command_id": "c4", "account_id": "F1", "reason": "default"},
        {"command": "transfer", "command_id": "c5", "from_account": "F1", "to_account": "F2", "unit": "CEA",
         "vintage": 2024, "quantity": 5},
        {"command": "account close", "command_id": "c6", "account_id": "F2"},
        {"command": "account unfreeze", "command_id": "c7", "account_id": "F1"},
        {"command": "transfer", "command_id": "c8", "from_account": "F1", "to_account": "F2", "unit": "CEA",
         "vintage": 2024, "quantity": 5},
    ]
    f = tmp_path / "ops.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = run_main(s, "import", str(f), "--on-refusal", "continue", "--json")
    assert r.code == 1
    out = json.loads(r.out)
    assert [(x["command_id"], x["code"]) for x in out["refused"]] == [("c5", "account_frozen"),
                                                                      ("c8", "account_closed")]
    assert out["applied"] == 6


# ---- the re-execution audit catches a forged approval ---------------------------------------------------


def test_a_forged_approval_by_the_initiator_is_caught_by_the_audit(reg: Registry, audited: str) -> None:
    reg.set_policy("F1", 2, actor="F1-desk")
    pid = reg.transfer("F1", "F2", *CEA, 10, actor="F1-desk").result["transfer_id"]
    pos = reg.approve_transfer(pid, actor="F1-cfo").first_position
    reg.close()

    def by_initiator(env: dict[str, Any]) -> None:  # as if F1-desk had approved its own transfer
        env["actor"] = "F1-desk"
        env["data"]["approver"] = "F1-desk"

    with raw_db(audited) as conn:
        rewrite_event(conn, pos, by_initiator)
        rehash_chain(conn)
    r = run_main(audited, "audit", "verify")
    assert r.code == 3 and f"position {pos}" in r.err and "refuses" in r.err, r.err
    with raw_db(audited) as conn:  # put it back, so the teardown's audit passes on what the test built
        rewrite_event(conn, pos, lambda env: (env.update(actor="F1-cfo"), env["data"].update(approver="F1-cfo")))
        rehash_chain(conn)


# ---- the refusal codes are documented ---------------------------------------------------------------------


def _refusal_codes() -> tuple[set[str], list[str]]:
    """Every constant code a `Refused(...)` in ledger/, commands/ and projections/ raises; and the calls
    that give none (which would all share the default `refused`)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    codes, missing = set(), []
    for d in ("ledger", "commands", "projections"):
        for p in sorted((root / d).rglob("*.py")):
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
                if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "Refused":
                    kw = {k.arg: k.value for k in n.keywords}
                    if "code" not in kw:
                        missing.append(f"{p.relative_to(root)}:{n.lineno}")
                    elif isinstance(kw["code"], ast.Constant):
                        codes.add(kw["code"].value)
    return codes, missing


def test_every_refusal_has_a_code_and_the_readme_table_lists_each_once() -> None:
    import re
    from pathlib import Path

    codes, missing = _refusal_codes()
    assert not missing, f"Refused without a code at {missing}"
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Refusal codes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)
    assert len(listed) == len(set(listed)), "a code listed twice"
    assert set(listed) == codes, f"undocumented: {codes - set(listed)}; gone: {set(listed) - codes}"
