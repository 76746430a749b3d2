"""Linked reversals and forced compliance, on SQLite and PostgreSQL; refusals asserted by code; `audit verify`
passes on every store built here (the `audited` fixture of tests/test_operations.py, at teardown)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ledgerkit import events, raw_db, rehash_chain, rewrite_event, run_main
from test_operations import CEA, V, audited, clock, code, held, reg  # noqa: F401 - the shared fixtures

from ledger.events import validate_event
from ledger.registry import Registry

pytestmark = pytest.mark.usefixtures("audited")


def test_a_reversed_transfer_moves_back_and_cannot_be_reversed_twice(reg: Registry, audited: str) -> None:
    pos = reg.transfer("F1", "F2", *CEA, 100, actor="F1-desk").first_position
    assert code(reg.reverse, pos, "wrong account", actor="F1-desk") == "not_permitted"
    out = reg.reverse(pos, "wrong account", actor="MEE")
    assert out.result["events"] == ["EntryReversed"]
    assert (held(reg, "F1"), held(reg, "F2")) == (1000, 0)
    assert code(reg.reverse, pos, "again", actor="MEE") == "already_reversed"
    assert code(reg.reverse, out.position, "a reversal", actor="MEE") == "not_reversible"
    assert code(reg.reverse, 9999, "beyond", actor="MEE") == "not_reversible"
    rows = json.loads(run_main(audited, "history", "F2", "--json").out)["rows"]
    assert [(r["position"], r["quantity"], r.get("reverses")) for r in rows] == [(pos, 100, None),
                                                                                (out.position, -100, pos)]
    for env in events(reg):
        validate_event(env)


def test_a_reversal_needs_the_units_still_there_free_and_unfrozen(reg: Registry) -> None:
    pos = reg.transfer("F1", "F2", *CEA, 100, actor="F1-desk").first_position
    reg.transfer("F2", "F1", *CEA, 1, actor="F2-desk")
    assert code(reg.reverse, pos, "gone", actor="MEE") == "units_gone"
    reg.transfer("F1", "F2", *CEA, 1, actor="F1-desk")
    reg.freeze_account("F2", "judicial", actor="MEE")
    assert code(reg.reverse, pos, "frozen", actor="MEE") == "account_frozen"
    reg.unfreeze_account("F2", actor="MEE")
    reg.add_actor("F2-cfo", "firm", "F2", actor="MEE")
    reg.set_policy("F2", 2, actor="F2-desk")
    reg.transfer("F2", "F1", *CEA, 50, actor="F2-desk")  # pending: 50 of F2's 100 t reserved
    assert code(reg.reverse, pos, "reserved", actor="MEE") == "units_gone"


def test_reversing_an_issuance_a_surrender_and_a_verification(reg: Registry, audited: str) -> None:
    issued = reg.issue("F2", *CEA, 300, "auction", actor="MEE").first_position
    reg.reverse(issued, "issued twice", actor="MEE")
    assert held(reg, "F2") == 0
    v1 = reg.verify_emissions("F1", V, 800, actor="MEE").first_position
    v2 = reg.verify_emissions("F1", V, 600, actor="MEE").first_position
    assert code(reg.reverse, v1, "superseded", actor="MEE") == "superseded"
    s = reg.surrender("F1", V, *CEA, 100, actor="F1-desk").first_position
    reg.reverse(s, "surrendered from the wrong vintage", actor="MEE")
    assert held(reg, "F1") == 1000
    reg.reverse(v2, "verifier's error", actor="MEE")  # v1 is in force again
    assert reg.state.verified[("F1", V)][0] == 800
    rows = json.loads(run_main(audited, "compliance", "--year", str(V), "--firm", "F1", "--json").out)["rows"]
    assert (rows[0]["verified"], rows[0]["surrendered_cea"]) == (800, 0)
    totals = json.loads(run_main(audited, "balances", "--json").out)["totals"]
    assert [(t["issued"], t["held"], t["surrendered"]) for t in totals] == [(1000, 1000, 0)]
    reg.reverse(v1, "no verification", actor="MEE")
    assert ("F1", V) not in reg.state.verified


def test_nothing_of_a_closed_compliance_year_is_reversed(reg: Registry, clock) -> None:
    reg.verify_emissions("F1", V, 500, actor="MEE")
    s = reg.surrender("F1", V, *CEA, 50, actor="F1-desk").first_position
    reg.close_year(V, correct_by="2025-03-10", actor="MEE")
    assert code(reg.reverse, s, "closed", actor="MEE") == "year_closed"  # its statuses stand while firms correct
    clock.set("2025-03-11T09:00:00")
    reg.year_enforce(V, actor="MEE")
    assert code(reg.reverse, s, "too late", actor="MEE") == "not_reversible"  # enforced: kept no longer


def test_forced_compliance_through_the_provinces_account(reg: Registry) -> None:
    reg.freeze_account("F1", "judicial", actor="MEE")
    reg.verify_emissions("F1", V, 700, actor="MEE")
    assert code(reg.surrender, "F1", V, *CEA, 700, actor="F1-desk") == "account_frozen"
    assert code(reg.surrender, "F1", V, *CEA, 700, from_account="GOV-HUBEI", actor="F1-desk") == "not_own_account"
    assert code(reg.surrender, "F1", V, *CEA, 700, from_account="F2", actor="MEE") == "forced_source"
    # another firm provides units for the frozen firm's surrender: a transfer to the authority
    reg.issue("F2", *CEA, 40, "auction", actor="MEE")
    reg.transfer("F2", "GOV-HUBEI", *CEA, 40, actor="F2-desk")
    reg.surrender("F1", V, *CEA, 40, from_account="GOV-HUBEI", actor="MEE")
    rest = reg.state.obligation("F1", reg.state.period_of(V)) - 40
    reg.surrender("F1", V, *CEA, rest, from_account="F1", actor="MEE")  # from the frozen account itself
    assert (held(reg, "F1"), held(reg, "GOV-HUBEI")) == (1000 - rest, 0)
    assert reg.state.surrendered_in("F1", reg.state.period_of(V)) == 40 + rest
    assert code(reg.surrender, "F1", V, *CEA, 1, from_account="F1", actor="MEE") == "beyond_obligation"


def test_an_allocation_to_the_authority_counts_for_the_firm(audited: str) -> None:
    r = Registry(audited)
    try:
        r.register_firm("S1", "Steel 1", "steel", "Hubei")
        r.open_year(V)
        r.verify_emissions("S1", V, 1000, 900, "t")
        assert code(r.allocate, "S1", V, "true-up", to_authority=True) == "no_authority_account"
        r.open_account("GOV-HUBEI", "Hubei", "government")
        out = r.allocate("S1", V, "true-up", to_authority=True)
        issued = out.result["issued"]
        assert issued > 0 and out.result["to_account"] == "GOV-HUBEI"
        assert (r.state.holding("S1", *CEA), r.state.holding("GOV-HUBEI", *CEA)) == (0, issued)
        assert r.state.allocated[("S1", V)] == issued
        r.surrender("S1", V, *CEA, issued, from_account="GOV-HUBEI")
        rows = json.loads(run_main(audited, "compliance", "--year", str(V), "--json").out)["rows"]
        assert (rows[0]["free_allocation"], rows[0]["surrendered_cea"]) == (issued, issued)
        for env in events(r):
            validate_event(env)
    finally:
        r.close()


def test_the_cli_and_import_reverse_and_force(audited: str, tmp_path: Any) -> None:
    s = audited
    for args in (["firm", "register", "F1", "--name", "F1", "--sector", "power", "--region", "Hubei"],
                 ["account", "open", "GOV-HUBEI", "--holder", "Hubei", "--kind", "government"],
                 ["year", "open", "2024"],
                 ["issue", "GOV-HUBEI", "--unit", "CEA", "--vintage", "2024", "--quantity", "90", "--basis", "auction"],
                 ["emissions", "verify", "F1", "--year", "2024", "--tonnes", "90"],
                 ["surrender", "F1", "--year", "2024", "--unit", "CEA", "--vintage", "2024", "--quantity", "18",
                  "--from", "GOV-HUBEI"]):
        assert run_main(s, *args).code == 0, args
    r = run_main(s, "reverse", "7", "--reason", "wrong firm", "--json")  # the forced surrender
    assert r.code == 0 and json.loads(r.out)["reversed_position"] == 7
    assert json.loads(run_main(s, "balances", "GOV-HUBEI", "--json").out)["balances"][0]["quantity"] == 90
    r = run_main(s, "reverse", "7", "--reason", "again", "--json")
    assert (r.code, json.loads(r.err)["error"]["code"]) == (1, "already_reversed")
    f = tmp_path / "rev.jsonl"
    f.write_text(json.dumps({"command": "reverse", "command_id": "r1", "position": 4, "reason": "x"}) + "\n"
                 + json.dumps({"command": "reverse", "command_id": "r2", "position": 7, "reason": "y"}) + "\n")
    r = run_main(s, "import", str(f), "--on-refusal", "continue", "--json")
    assert [x["code"] for x in json.loads(r.out)["refused"]] == ["not_reversible", "already_reversed"]


def test_a_forged_reversal_is_caught_by_the_audit(reg: Registry, audited: str) -> None:
    pos = reg.transfer("F1", "F2", *CEA, 100, actor="F1-desk").first_position
    rev = reg.reverse(pos, "wrong account", actor="MEE").first_position
    reg.close()

    def bigger(env: dict[str, Any]) -> None:  # the forger takes back more than was transferred
        env["data"]["quantity"] = 10
        env["data"]["from_account"], env["data"]["to_account"] = "F1", "F2"
        env["data"]["reversed_position"] = pos

    with raw_db(audited) as conn:
        rewrite_event(conn, rev, bigger)
        rehash_chain(conn)
    r = run_main(audited, "audit", "verify")
    assert r.code == 3 and f"position {rev}" in r.err, r.err
    with raw_db(audited) as conn:  # a reversal that the regulator never recorded: no command at all
        rewrite_event(conn, rev, lambda env: (env.update(actor="F1-desk")))
        rehash_chain(conn)
    r = run_main(audited, "audit", "verify")
    assert r.code == 3 and f"position {rev}" in r.err, r.err
    with raw_db(audited) as conn:  # put it back, so that the teardown's audit passes
        def back(env: dict[str, Any]) -> None:
            env.update(actor="MEE")
            env["data"].update(quantity=100, from_account="F2", to_account="F1")
        rewrite_event(conn, rev, back)
        rehash_chain(conn)


def test_reversing_a_facilitys_verification_restores_the_one_it_replaced(reg: Registry, audited: str) -> None:
    """A firm with facilities is verified facility by facility; a reversal undoes one facility's verification
    and the firm's verified emissions are the sum of what is then in force, in the state and the read model."""
    reg.register_firm("F3", "F3", "power", "Hubei", actor="MEE")
    reg.register_facility("F3-U1", "F3", "coal", rated_mw="600", actor="MEE")
    reg.register_facility("F3-U2", "F3", "gas", actor="MEE")
    first = reg.verify_emissions("F3", V, 800, facility="F3-U1", generated_mwh=1000, actor="MEE").first_position
    second = reg.verify_emissions("F3", V, 900, facility="F3-U1", generated_mwh=1100, actor="MEE").first_position
    reg.verify_emissions("F3", V, 50, facility="F3-U2", generated_mwh=200, actor="MEE")
    assert reg.state.verified[("F3", V)][0] == 950
    assert code(reg.reverse, first, "superseded", actor="MEE") == "superseded"

    def verified_read() -> int | None:
        rows = json.loads(run_main(audited, "compliance", "--firm", "F3", "--json").out)["rows"]
        return rows[0]["verified"]

    out = reg.reverse(second, "verifier's error", actor="MEE")
    assert reg.state.verified[("F3", V)][0] == 850
    assert reg.state.facility_verified[("F3-U1", V)]["generated_mwh"] == 1000  # the first one's data again
    assert events(reg)[-1]["data"]["facility_id"] == "F3-U1"
    assert verified_read() == 850
    reg.reverse(first, "no verification stands", actor="MEE")
    assert reg.state.verified[("F3", V)][0] == 50
    assert ("F3-U1", V) not in reg.state.facility_verified
    assert verified_read() == 50
    assert code(reg.reverse, out.position, "a reversal", actor="MEE") == "not_reversible"


def test_a_reversal_in_the_same_batch_as_the_event_it_undoes(reg: Registry, audited: str) -> None:
    """The state keeps no copy of reversible events: a reversal reads the one it undoes from the log, or from the
    batch being decided when it is not committed yet (an import file that transfers and reverses at once)."""
    from ledger.registry import Command

    pos = reg.head()[0] + 1
    out = reg.execute_batch([Command("transfer", {"from_account": "F1", "to_account": "F2", "unit": "CEA",
                                                  "vintage": V, "quantity": 100}, "t-1", "F1-desk"),
                             Command("reverse", {"position": pos, "reason": "sent by mistake"}, "r-1", "MEE")])
    assert [o.result["events"] for o in out] == [["AllowancesTransferred"], ["EntryReversed"]]
    assert (held(reg, "F1"), held(reg, "F2")) == (1000, 0)
    assert reg.state.reversed == {pos: pos + 1}
    reopened = Registry(audited)
    try:
        assert reopened.state.reversed == {pos: pos + 1}
        assert code(reopened.reverse, pos, "again", actor="MEE") == "already_reversed"
    finally:
        reopened.close()
