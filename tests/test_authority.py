"""Authority (issue 9): roles on a store created by `init --regulator`, the open store, Ed25519 signatures on
commands, and signed checkpoints that catch a truncated or rewritten history."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ledgerkit import (
    copy_store,
    events,
    export_lines,
    invoke,
    invoke_json,
    is_postgres,
    raw_db,
    refusal,
    rehash_chain,
    rewrite_command,
    rewrite_event,
    run_main,
    truncate_after,
)

from ledger import signing
from ledger.errors import Refused
from ledger.inputs import parse_command
from ledger.registry import Command, Registry

# ---- an enforced store ---------------------------------------------------------------------------------

ACTORS = ["MEE", "SEEE", "MRV", "F1-desk", "F2-desk", "nobody", None]


def _build_enforced(path: str) -> None:
    r = Registry(path)
    try:
        r.init("MEE")
        r.add_actor("SEEE", "exchange", actor="MEE")
        r.add_actor("MRV", "verifier", actor="MEE")
        for f in ("F1", "F2"):
            r.register_firm(f, f"Unit {f}", "power", "Hubei", actor="MEE")
            r.add_actor(f"{f}-desk", "firm", f, actor="MEE")
        r.open_account("T1", "F1", "trading", actor="MEE")
        r.open_year(2023, "2024-12-31", actor="MEE")
        r.open_year(2024, "2025-12-31", actor="MEE")
        r.verify_emissions("F1", 2023, 850_000, 1_000_000, "MWh", actor="MRV")
        r.verify_emissions("F1", 2024, 500, actor="MRV")
        r.issue("F1", "CEA", 2024, 1000, "auction", actor="MEE")
        r.issue("T1", "CEA", 2024, 1000, "auction", actor="MEE")
    finally:
        r.close()


@pytest.fixture(scope="module")
def enforced_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("enforced") / "template.db")
    _build_enforced(path)
    return path


def _open_enforced(template: str, url: str) -> Iterator[Registry]:
    if is_postgres(url):
        _build_enforced(url)
    else:
        copy_store(template, url)
    reg = Registry(url)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def enforced(enforced_template: str, store_url: str) -> Iterator[Registry]:
    """init --regulator MEE; exchange SEEE, verifier MRV; firms F1, F2 with desks; F1 holds CEA, has a trading
    account T1 and verified emissions; 2023 and 2024 are open. (On SQLite a copy of a store built once per
    module; on PostgreSQL built in the test's schema.)"""
    yield from _open_enforced(enforced_template, store_url)


@pytest.fixture
def enforced_sqlite(enforced_template: str, ledger_db: str) -> Iterator[Registry]:
    """The enforced store on SQLite only, for the full role matrix (the rules do not depend on the store; the
    per-command test below runs on both stores)."""
    yield from _open_enforced(enforced_template, ledger_db)


Attempt = Callable[[Registry, Any], Any]

# command -> (an attempt that succeeds when allowed, the actors allowed)
MATRIX: dict[str, tuple[Attempt, set[str]]] = {
    "actor add": (lambda r, a: r.add_actor("X1", "exchange", actor=a), {"MEE"}),
    "actor key": (
        lambda r, a: r.execute(Command("actor key", {"actor_id": "SEEE", "public_key": "11" * 32}, actor=a)),
        {"MEE"},
    ),
    "firm register": (lambda r, a: r.register_firm("F3", "Unit 3", "power", "Hubei", actor=a), {"MEE"}),
    "account open": (lambda r, a: r.open_account("T9", "F2", "trading", actor=a), {"MEE"}),
    "year open": (lambda r, a: r.open_year(2025, actor=a), {"MEE"}),
    "year close": (lambda r, a: r.close_year(2024, actor=a), {"MEE"}),
    "issue": (lambda r, a: r.issue("F2", "CEA", 2024, 10, "auction", actor=a), {"MEE"}),
    "allocate": (lambda r, a: r.allocate("F1", 2024, "pre", actor=a), {"MEE"}),
    "emissions verify": (lambda r, a: r.verify_emissions("F2", 2024, 100, actor=a), {"MEE", "MRV"}),
    "trade": (
        lambda r, a: r.trade("F2", "F1", "CEA", 2024, 10, "80.00", "listed", "2024-06-03", actor=a),
        {"SEEE"},
    ),
    "transfer": (lambda r, a: r.transfer("F1", "F2", "CEA", 2024, 10, actor=a), {"F1-desk"}),
    "transfer from a firm's trading account": (
        lambda r, a: r.transfer("T1", "F2", "CEA", 2024, 10, actor=a),
        {"F1-desk"},
    ),
    "surrender": (lambda r, a: r.surrender("F1", 2024, "CEA", 2024, 10, actor=a), {"F1-desk"}),
    "cancel": (lambda r, a: r.cancel("F1", "CEA", 2024, 10, actor=a), {"F1-desk"}),
}

CASES = [(cmd, actor) for cmd in MATRIX for actor in ACTORS]


def _expected_code(cmd: str, actor: str | None) -> str | None:
    allowed = MATRIX[cmd][1]
    if actor in allowed:
        return None
    if actor is None:
        return "no_actor"
    if actor == "nobody":
        return "unknown_actor"
    if actor == "F2-desk" and "F1-desk" in allowed:
        return "not_own_account"  # a firm's desk, but not this firm's account
    if actor == "MEE" and cmd.startswith(("transfer", "cancel")):
        return "not_own_account"  # a regulator moves units only out of government accounts
    return "not_permitted"


@pytest.mark.parametrize("cmd, actor", CASES, ids=[f"{c}-as-{a}" for c, a in CASES])
def test_each_role_is_allowed_or_refused_per_command(
    enforced_sqlite: Registry, cmd: str, actor: str | None
) -> None:
    enforced = enforced_sqlite
    attempt, _allowed = MATRIX[cmd]
    code = _expected_code(cmd, actor)
    before = enforced.head()
    if code is None:
        out = attempt(enforced, actor)
        assert out.position > before[0]
        assert {e["actor"] for e in out.events} == {actor}
    else:
        e = refusal(attempt, enforced, actor)
        assert isinstance(e, Refused) and e.code == code, f"{e.code}: {e}"
        assert enforced.head() == before
        if actor not in (None, "nobody"):
            assert actor in str(e) and cmd.split(" from ")[0] in str(e)


@pytest.mark.parametrize("cmd", list(MATRIX))
def test_each_command_refuses_every_actor_without_the_right_then_records_one_with_it(
    enforced: Registry, cmd: str
) -> None:
    """The matrix above, one store per command: every refusal appends nothing; an allowed actor is recorded."""
    attempt, allowed = MATRIX[cmd]
    before = enforced.head()
    for actor in ACTORS:
        code = _expected_code(cmd, actor)
        if code is not None:
            e = refusal(attempt, enforced, actor)
            assert isinstance(e, Refused) and e.code == code, f"{actor}: {e.code}: {e}"
            assert enforced.head() == before
    actor = min(allowed)
    out = attempt(enforced, actor)
    assert out.position > before[0] and {e["actor"] for e in out.events} == {actor}
    assert {e["actor"] for e in events(enforced)[before[0]:]} == {actor}


def test_a_regulator_cannot_move_or_cancel_a_firms_allowances(enforced: Registry) -> None:
    for attempt in (MATRIX["transfer"][0], MATRIX["cancel"][0]):
        before = enforced.head()
        e = refusal(attempt, enforced, "MEE")
        assert e.code == "not_own_account" and "MEE" in str(e)
        assert enforced.head() == before


def test_a_regulator_moves_units_out_of_a_government_account(enforced: Registry) -> None:
    enforced.open_account("GOV-RESERVE", "MEE", "government", actor="MEE")
    enforced.issue("GOV-RESERVE", "CEA", 2024, 500, "reserve", actor="MEE")
    out = enforced.transfer("GOV-RESERVE", "F1", "CEA", 2024, 200, actor="MEE")
    assert out.events[0]["actor"] == "MEE"
    enforced.cancel("GOV-RESERVE", "CEA", 2024, 100, "correction", actor="MEE")
    assert enforced.state.holding("GOV-RESERVE", "CEA", 2024) == 200


def test_a_refusal_for_lack_of_a_right_names_the_actor_and_the_right(
    store_url: str, enforced: Registry
) -> None:
    before = enforced.head()
    r = run_main(
        store_url,
        "--as",
        "SEEE",
        "issue",
        "F1",
        "--unit",
        "CEA",
        "--vintage",
        "2024",
        "--quantity",
        "1",
        "--basis",
        "auction",
    )
    assert r.code == 1
    assert r.err.strip() == "error: actor SEEE (exchange) lacks the right to issue (needs regulator)"
    r = run_main(
        store_url,
        "--as",
        "F2-desk",
        "transfer",
        "F1",
        "F2",
        "--unit",
        "CEA",
        "--vintage",
        "2024",
        "--quantity",
        "1",
    )
    assert r.code == 1 and "F2-desk" in r.err and "F1" in r.err and r.err.count("\n") == 1
    r = run_main(
        store_url,
        "issue",
        "F1",
        "--unit",
        "CEA",
        "--vintage",
        "2024",
        "--quantity",
        "1",
        "--basis",
        "auction",
    )
    assert r.code == 1 and "--as" in r.err
    assert enforced.head() == before


def test_the_actor_may_come_from_the_environment(store_url: str, enforced: Registry) -> None:
    r = invoke(store_url, "year", "open", "2026", env={"CARBON_LEDGER_ACTOR": "MEE"})
    assert r.exit_code == 0, r.exception
    assert export_lines(store_url)[-1]["actor"] == "MEE"


def test_a_firm_desk_may_only_be_added_for_a_registered_firm(enforced: Registry) -> None:
    assert refusal(enforced.add_actor, "F9-desk", "firm", "F9", actor="MEE").code == "unknown_firm"
    assert refusal(enforced.add_actor, "MRV", "verifier", actor="MEE").code == "duplicate_actor"


def test_every_event_records_the_actor_that_ran_its_command(store_url: str, enforced: Registry) -> None:
    enforced.trade("F2", "F1", "CEA", 2024, 5, "80.00", "listed", "2024-06-03", actor="SEEE")
    lines = export_lines(store_url)
    by_type: dict[str, set] = {}
    for line in lines:
        by_type.setdefault(line["type"], set()).add(line["actor"])
    assert by_type["LedgerInitialized"] == {"MEE"}
    assert by_type["EmissionsVerified"] == {"MRV"}
    assert by_type["TradeExecuted"] == {"SEEE"}
    assert by_type["AllowancesIssued"] == {"MEE"}


def test_an_enforced_store_cannot_be_initialised_again(enforced: Registry) -> None:
    assert refusal(enforced.init, "ROGUE").code == "store_not_empty"
    assert enforced.state.enforced


def test_an_open_store_with_events_cannot_be_turned_into_an_enforced_one(registry: Registry) -> None:
    registry.register_firm("F1", "U1", "power", "Hubei")
    assert refusal(registry.init, "MEE").code == "store_not_empty"


def test_an_enforced_store_says_so_in_audit_verify(store_url: str, enforced: Registry) -> None:
    r = run_main(store_url, "audit", "verify")
    assert r.code == 0 and "roles enforced" in r.out and "not enforced" not in r.out
    assert invoke_json(store_url, "audit", "verify")["roles_enforced"] is True


# ---- the open store -------------------------------------------------------------------------------------


def test_an_open_store_records_the_operator_and_audit_verify_says_roles_are_not_enforced(
    store_url: str,
) -> None:
    for args in (
        ["firm", "register", "F1", "--name", "U1", "--sector", "power", "--region", "Hubei"],
        ["issue", "F1", "--unit", "CEA", "--vintage", "2024", "--quantity", "5", "--basis", "auction"],
    ):
        assert invoke(store_url, *args).exit_code == 0
    assert {line["actor"] for line in export_lines(store_url)} == {"operator"}
    r = run_main(store_url, "audit", "verify")
    assert r.code == 0 and "open store: roles are not enforced" in r.out
    assert invoke_json(store_url, "audit", "verify")["roles_enforced"] is False


def test_an_open_store_records_the_operator_even_when_a_name_is_given(registry: Registry) -> None:
    out = registry.register_firm("F1", "U1", "power", "Hubei", actor="MEE")
    assert {e["actor"] for e in out.events} == {"operator"}  # nobody was authenticated, so no name is claimed


def test_the_open_store_operator_name_cannot_be_taken_by_an_actor(enforced: Registry) -> None:
    assert refusal(enforced.add_actor, "operator", "regulator", actor="MEE").code == "duplicate_actor"


# ---- keys and signatures ------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_file_of_mode_0600_and_prints_the_public_key(tmp_path: Path) -> None:
    path = tmp_path / "mee.pem"
    r = invoke(str(tmp_path / "unused.db"), "actor", "keygen", "--out", str(path))
    assert r.exit_code == 0
    pub = r.stdout.strip()
    assert len(pub) == 64 and int(pub, 16) >= 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signing.public_hex(signing.load_private(path)) == pub
    assert b"PRIVATE KEY" in path.read_bytes()


def test_keygen_never_overwrites_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "mee.pem"
    signing.generate(path)
    before = path.read_bytes()
    r = run_main(str(tmp_path / "unused.db"), "actor", "keygen", "--out", str(path))
    assert r.code == 2 and "exists" in r.err
    assert path.read_bytes() == before


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("MEE", "SEEE", "F1-desk", "F2-desk", "ROGUE"):
        out[name] = tmp_path / f"{name}.pem"
        signing.generate(out[name])
    return out


def pub(path: Path) -> str:
    return signing.public_hex(signing.load_private(path))


LATER = "2999-01-01T00:00:00Z"  # an expiry no test's clock reaches


def signed(reg: Registry, name: str, args: dict[str, Any], command_id: str, actor: str, key: Path,
           expires: str = LATER) -> Command:
    """A command signed for `reg`'s store, as a client would sign it."""
    sig = signing.sign_command(signing.load_private(key), reg.store_id, name, command_id,
                               parse_command(name, args), expires)
    return Command(name, args, command_id, actor, sig, expires=expires)


TRANSFER = {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": 2024, "quantity": 10}


@pytest.fixture
def signed_store(store_url: str, keys: dict[str, Path]) -> Iterator[Registry]:
    """init --require-signatures; every setup command signed by its actor's key."""
    reg = Registry(store_url)
    k = keys

    def run(name: str, args: dict[str, Any], actor: str, cid: str) -> None:
        reg.execute(signed(reg, name, args, cid, actor, k[actor]))

    run("init", {"regulator": "MEE", "require_signatures": True, "public_key": pub(k["MEE"])}, "MEE", "s-0")
    run("actor add", {"actor_id": "SEEE", "role": "exchange", "public_key": pub(k["SEEE"])}, "MEE", "s-1")
    for n, f in enumerate(("F1", "F2")):
        run(
            "firm register", {"firm_id": f, "name": f, "sector": "power", "region": "Hubei"}, "MEE", f"s-2{n}"
        )
        run(
            "actor add",
            {"actor_id": f"{f}-desk", "role": "firm", "firm": f, "public_key": pub(k[f"{f}-desk"])},
            "MEE",
            f"s-3{n}",
        )
    run(
        "issue",
        {"account_id": "F1", "unit": "CEA", "vintage": 2024, "quantity": 1000, "basis": "auction"},
        "MEE",
        "s-4",
    )
    try:
        yield reg
    finally:
        reg.close()


def test_a_correctly_signed_command_is_recorded_with_its_signature(
    signed_store: Registry, keys: dict
) -> None:
    out = signed_store.execute(signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F1-desk"]))
    first = out.events[0]
    sig = first["signature"]
    assert first["actor"] == "F1-desk" and first["command"] == {"name": "transfer", "args": TRANSFER}
    assert len(sig["sig"]) == 128 and sig["expires"] == LATER
    assert signed_store.state.holding("F2", "CEA", 2024) == 10


def test_an_unsigned_command_is_refused_where_signatures_are_required(signed_store: Registry) -> None:
    before = signed_store.head()
    e = refusal(signed_store.execute, Command("transfer", TRANSFER, "c-1", "F1-desk"))
    assert e.code == "unsigned"
    assert signed_store.head() == before


def test_a_forged_signature_is_refused(signed_store: Registry) -> None:
    before = signed_store.head()
    e = refusal(signed_store.execute, Command("transfer", TRANSFER, "c-1", "F1-desk", "ab" * 64))
    assert e.code == "bad_signature"
    e = refusal(signed_store.execute, Command("transfer", TRANSFER, "c-1", "F1-desk", "not hex"))
    assert e.code == "bad_signature"
    assert signed_store.head() == before


def test_a_signature_by_the_wrong_actor_is_refused(signed_store: Registry, keys: dict) -> None:
    before = signed_store.head()
    # F2's desk signs a transfer out of F1 and presents it as F1's desk
    e = refusal(signed_store.execute, signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F2-desk"]))
    assert e.code == "bad_signature"
    # a key nobody registered, presented as the regulator
    e = refusal(
        signed_store.execute,
        signed(
            signed_store,
            "issue",
            {"account_id": "F2", "unit": "CEA", "vintage": 2024, "quantity": 5, "basis": "auction"},
            "c-2",
            "MEE",
            keys["ROGUE"],
        ),
    )
    assert e.code == "bad_signature"
    assert signed_store.head() == before


def test_a_signature_replayed_with_another_command_id_is_refused(signed_store: Registry, keys: dict) -> None:
    first = signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F1-desk"])
    signed_store.execute(first)
    before = signed_store.head()
    e = refusal(signed_store.execute, Command("transfer", TRANSFER, "c-2", "F1-desk", first.signature,
                                                         expires=LATER))
    assert e.code == "bad_signature"
    # the same signed command again, with its own id, is an idempotent repeat: nothing appended
    assert signed_store.execute(first).replayed
    assert signed_store.head() == before
    assert signed_store.state.holding("F2", "CEA", 2024) == 10


def test_a_signature_over_other_arguments_is_refused(signed_store: Registry, keys: dict) -> None:
    good = signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F1-desk"])
    e = refusal(
        signed_store.execute,
        Command("transfer", {**TRANSFER, "quantity": 900}, "c-1", "F1-desk", good.signature, expires=LATER),
    )
    assert e.code == "bad_signature"


def test_a_signature_of_an_actor_without_a_registered_key_is_refused(registry: Registry, keys: dict) -> None:
    registry.init("MEE")
    e = refusal(registry.execute, signed(registry, "year open", {"year": "2024"}, "c-1", "MEE", keys["MEE"]))
    assert e.code == "no_public_key"


def test_signatures_are_checked_even_where_they_are_not_required(registry: Registry, keys: dict) -> None:
    registry.init("MEE", public_key=pub(keys["MEE"]))
    registry.open_year(2024, actor="MEE")  # unsigned: fine on this store
    e = refusal(registry.execute, signed(registry, "year open", {"year": "2025"}, "c-1", "MEE", keys["ROGUE"]))
    assert e.code == "bad_signature"


def test_signing_through_the_cli_with_key(store_url: str, keys: dict) -> None:
    mee = ["--as", "MEE", "--key", str(keys["MEE"])]
    assert (
        run_main(
            store_url, "--key", str(keys["MEE"]), "init", "--regulator", "MEE", "--require-signatures"
        ).code
        == 0
    )
    assert (
        run_main(
            store_url, *mee, "actor", "add", "SEEE", "--role", "exchange", "--public-key", pub(keys["SEEE"])
        ).code
        == 0
    )
    r = run_main(store_url, "--as", "MEE", "year", "open", "2024")
    assert r.code == 1 and "requires signed commands" in r.err
    r = run_main(store_url, "--as", "MEE", "--key", str(keys["SEEE"]), "year", "open", "2024")
    assert r.code == 1 and "signature" in r.err
    assert run_main(store_url, *mee, "year", "open", "2024").code == 0
    r = run_main(store_url, "audit", "verify", "--json")
    assert r.code == 0 and json.loads(r.out)["signatures_checked"] == 3


def test_require_signatures_needs_the_regulators_key(store_url: str) -> None:
    r = run_main(store_url, "init", "--regulator", "MEE", "--require-signatures")
    assert r.code == 2
    assert invoke_json(store_url, "audit", "head")["position"] == 0


# ---- audit verify checks the stored signatures -----------------------------------------------------------


def test_audit_verify_checks_every_signature(store_url: str, signed_store: Registry, keys: dict) -> None:
    signed_store.execute(signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F1-desk"]))
    out = invoke_json(store_url, "audit", "verify")
    assert out["ok"] and out["signatures_checked"] == 8


def test_a_stored_signature_replaced_and_rehashed_fails_audit_verify(
    store_url: str, signed_store: Registry, keys: dict
) -> None:
    out = signed_store.execute(signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F1-desk"]))
    pos = out.position
    forged = signing.sign(
        signing.load_private(keys["ROGUE"]),
        signing.command_payload(signed_store.store_id, "transfer", "c-1", parse_command("transfer", TRANSFER), LATER),
    )
    with raw_db(store_url) as conn:
        rewrite_event(conn, pos, lambda e: e["signature"].update(sig=forged))
        rehash_chain(conn)
    r = run_main(store_url, "audit", "verify")
    assert r.code == 3 and f"position {pos}" in r.err and "signature" in r.err


def test_a_stored_event_whose_arguments_were_changed_and_rehashed_fails_audit_verify(
    store_url: str, signed_store: Registry, keys: dict
) -> None:
    out = signed_store.execute(signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F1-desk"]))

    def inflate(e: dict) -> None:
        e["data"]["quantity"] = 900
        e["command"]["args"]["quantity"] = 900

    with raw_db(store_url) as conn:
        rewrite_event(conn, out.position, inflate)
        rehash_chain(conn)
    r = run_main(store_url, "audit", "verify")
    assert r.code == 3 and f"position {out.position}" in r.err


def test_a_signature_stripped_from_a_store_that_requires_them_fails_audit_verify(
    store_url: str, signed_store: Registry, keys: dict
) -> None:
    out = signed_store.execute(signed(signed_store, "transfer", TRANSFER, "c-1", "F1-desk", keys["F1-desk"]))
    with raw_db(store_url) as conn:
        rewrite_event(conn, out.position, lambda e: e.pop("signature"))
        rehash_chain(conn)
    r = run_main(store_url, "audit", "verify")
    assert r.code == 3 and f"position {out.position}" in r.err and "requires signed commands" in r.err


# ---- signed checkpoints ----------------------------------------------------------------------------------


@pytest.fixture
def checkpointed(store_url: str, enforced: Registry, keys: dict, tmp_path: Path) -> tuple[str, Path, int]:
    """MEE's key registered; a checkpoint at the head; then three more events."""
    enforced.execute(Command("actor key", {"actor_id": "MEE", "public_key": pub(keys["MEE"])}, actor="MEE"))
    r = run_main(store_url, "--as", "MEE", "--key", str(keys["MEE"]), "audit", "checkpoint")
    assert r.code == 0, r.err
    cp = json.loads(r.out)
    path = tmp_path / "checkpoint.json"
    path.write_text(r.out)
    assert (cp["position"], cp["hash"]) == enforced.head()
    assert set(cp) == {"position", "hash", "time", "actor", "public_key", "signature"}
    for q in (1, 2, 3):
        enforced.transfer("F1", "F2", "CEA", 2024, q, actor="F1-desk")
    return store_url, path, cp["position"]


def test_a_log_that_extends_the_checkpoint_verifies(checkpointed: tuple[str, Path, int]) -> None:
    store, cp, n = checkpointed
    r = run_main(store, "audit", "verify", "--checkpoint", str(cp))
    assert r.code == 0, r.err
    assert f"extends checkpoint {n}" in r.out
    out = json.loads(run_main(store, "audit", "verify", "--checkpoint", str(cp), "--json").out)
    assert out["checkpoint"]["position"] == n


def test_a_log_truncated_below_the_checkpoint_is_caught(checkpointed: tuple[str, Path, int]) -> None:
    store, cp, n = checkpointed
    with raw_db(store) as conn:
        truncate_after(conn, n - 2)  # the last events before the checkpoint go, with their chain rows
    assert run_main(store, "audit", "verify").code == 0  # consistent on its own
    r = run_main(store, "audit", "verify", "--checkpoint", str(cp))
    assert r.code == 3 and f"position {n}" in r.err and "shorter" in r.err


def test_a_rewritten_and_rehashed_history_is_caught_by_the_checkpoint(
    checkpointed: tuple[str, Path, int],
) -> None:
    store, cp, n = checkpointed
    with raw_db(store) as conn:
        issue_pos = next(
            p
            for p, s in conn.execute(
                "SELECT c.position, e.state FROM ledger_chain c JOIN "
                "stored_events e ON e.rowid = c.notification_id"
            )
            if b'"AllowancesIssued"' in bytes(s)
        )
        rewrite_command(conn, issue_pos, quantity=1_000_000)
        rehash_chain(conn)
    assert run_main(store, "audit", "verify").code == 0  # unsigned and consistent: only the checkpoint sees it
    r = run_main(store, "audit", "verify", "--checkpoint", str(cp))
    assert r.code == 3 and f"position {n}" in r.err and "rewritten" in r.err


def test_an_edited_checkpoint_file_is_refused(checkpointed: tuple[str, Path, int], tmp_path: Path) -> None:
    store, cp, n = checkpointed
    data = json.loads(cp.read_text())
    data["position"] = n + 2
    data["hash"] = invoke_json(store, "audit", "head")["hash"]
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(data))
    r = run_main(store, "audit", "verify", "--checkpoint", str(forged))
    assert r.code == 3 and "signature" in r.err


def test_a_checkpoint_signed_with_another_key_than_the_regulators_is_refused(
    checkpointed: tuple[str, Path, int], keys: dict, tmp_path: Path
) -> None:
    """A forger who rewrote the log signs a fresh checkpoint of it with a key of their own, claiming MEE."""
    store, _cp, _n = checkpointed
    from ledger.verify import checkpoint_payload

    pos, h = invoke_json(store, "audit", "head")["position"], invoke_json(store, "audit", "head")["hash"]
    cp = {
        "position": pos,
        "hash": h,
        "time": "2025-01-01T00:00:00Z",
        "actor": "MEE",
        "public_key": pub(keys["ROGUE"]),
    }
    cp["signature"] = signing.sign(signing.load_private(keys["ROGUE"]), checkpoint_payload(cp))
    forged = tmp_path / "rogue.json"
    forged.write_text(json.dumps(cp))
    r = run_main(store, "audit", "verify", "--checkpoint", str(forged))
    assert r.code == 3 and "regulator" in r.err


def test_only_a_regulator_signs_a_checkpoint_and_only_with_its_registered_key(
    checkpointed: tuple[str, Path, int], keys: dict
) -> None:
    store, _cp, _n = checkpointed
    r = run_main(store, "--as", "F1-desk", "--key", str(keys["F1-desk"]), "audit", "checkpoint")
    assert r.code == 1 and "regulator" in r.err
    r = run_main(store, "--as", "MEE", "--key", str(keys["ROGUE"]), "audit", "checkpoint")
    assert r.code == 1 and "registered key" in r.err
    r = run_main(store, "--as", "MEE", "audit", "checkpoint")
    assert r.code == 2 and "--key" in r.err


def test_every_authority_event_fits_the_catalogue(
    checkpointed: tuple[str, Path, int], store_url: str
) -> None:
    from ledger.events import validate_event

    types = set()
    for line in export_lines(store_url):
        validate_event(line)
        types.add(line["type"])
    assert {"LedgerInitialized", "ActorAdded", "ActorKeyRegistered"} <= types


def test_every_signed_event_fits_the_catalogue(signed_store: Registry) -> None:
    from ledger.events import validate_event

    for env in events(signed_store):
        validate_event(env)


# ---- import on an enforced store ---------------------------------------------------------------------------


def test_import_on_an_enforced_store_runs_each_line_as_its_actor(
    store_url: str, enforced: Registry, tmp_path: Path
) -> None:
    lines = [
        {"command": "year open", "command_id": "i-1", "actor": "MEE", "year": "2026"},
        {
            "command": "trade",
            "command_id": "i-2",
            "actor": "SEEE",
            "buyer": "F2",
            "seller": "F1",
            "unit": "CEA",
            "vintage": 2024,
            "quantity": 5,
            "price": "80.00",
            "mode": "listed",
            "date": "2024-06-03",
        },
        {
            "command": "issue",
            "command_id": "i-3",
            "actor": "SEEE",
            "account_id": "F2",
            "unit": "CEA",
            "vintage": 2024,
            "quantity": 5,
            "basis": "auction",
        },
    ]
    f = tmp_path / "cmds.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    before = enforced.head()[0]
    r = run_main(store_url, "import", str(f))
    assert r.code == 1 and "line 3 (i-3)" in r.err and "SEEE" in r.err
    exported = export_lines(store_url)
    assert [(e["command_id"], e["actor"]) for e in exported[before:]] == [("i-1", "MEE"), ("i-2", "SEEE")]
    # --as gives lines without their own actor an actor; a line's own actor wins
    r = run_main(store_url, "--as", "MEE", "import", str(f), "--on-refusal", "continue")
    assert r.code == 1 and "i-3" in r.err


def test_allocate_all_signs_each_firms_command_with_the_key(
    store_url: str, signed_store: Registry, keys: dict
) -> None:
    mee = ["--as", "MEE", "--key", str(keys["MEE"])]
    for args in (
        ["year", "open", "2023"],
        ["year", "open", "2024"],
        [
            "emissions",
            "verify",
            "F1",
            "--year",
            "2023",
            "--tonnes",
            "850",
            "--output",
            "1000",
            "--output-unit",
            "MWh",
        ],
    ):
        assert run_main(store_url, *mee, *args).code == 0
    r = run_main(store_url, *mee, "allocate", "--all", "--year", "2024", "--step", "pre", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert [(a["firm_id"], a["issued"]) for a in out["allocated"]] == [("F1", 595)]  # P23 5(1): 0.7 x 850 verified
    assert [s["firm_id"] for s in out["skipped"]] == [
        "F2"
    ]  # no base-year output, not for want of a signature
    assert "signed" not in out["skipped"][0]["reason"]
    verified = json.loads(run_main(store_url, "audit", "verify", "--json").out)
    assert verified["ok"] and verified["signatures_checked"] == 11


def test_import_signs_each_line_with_the_key_and_is_refused_unsigned(store_url: str, tmp_path: Path) -> None:
    key = str(tmp_path / "mee.key")
    assert run_main(store_url, "actor", "keygen", "--out", key).code == 0
    assert run_main(store_url, "--key", key, "init", "--regulator", "MEE", "--require-signatures").code == 0
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        '{"command": "firm register", "command_id": "c1", "firm_id": "F1", "name": "A", "sector": "power",'
        ' "region": "Hubei"}\n{"command": "year open", "command_id": "c2", "year": "2024"}\n'
    )
    unsigned = run_main(store_url, "--as", "MEE", "import", str(lines))
    assert unsigned.code == 1 and "requires signed commands" in unsigned.err
    signed = run_main(store_url, "--as", "MEE", "--key", key, "import", str(lines))
    assert signed.code == 0
    signed_names = [e["command"]["name"] for e in export_lines(store_url) if "signature" in e]
    assert signed_names == ["init", "firm register", "year open"]
    assert run_main(store_url, "audit", "verify").code == 0
