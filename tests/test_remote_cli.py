"""The CLI as a client of `carbon-ledger serve` (`--store http://127.0.0.1:PORT`), run as a user would (the
installed executable in a subprocess): the regulator, a firm and the exchange, each with its own key, run a
compliance year against a real server process; the output is what the same commands print against a local
store, and the exit codes are the local ones (2 bad input, 1 refused with its code, 3 a server out of reach)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledgerkit import CLI_ENV_CLEAR, EXE
from test_server import Server, free_port

from ledger import signing

pytestmark = pytest.mark.skipif(EXE is None, reason="needs the installed carbon-ledger executable")
V = "2024"


def cli(store: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
        cwd: str | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in CLI_ENV_CLEAR}
    e.update(env or {})
    return subprocess.run([EXE, "--store", store, *args], capture_output=True, text=True, input=stdin, env=e,
                          timeout=120, check=False, cwd=cwd)


def ok(store: str, *args: str, **kw) -> str:
    p = cli(store, *args, **kw)
    assert p.returncode == 0, f"{args}: exit {p.returncode}: {p.stderr}"
    return p.stdout


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name in ("MEE", "F1", "F2", "SEEE"):
        out[name] = str(tmp_path / f"{name}.pem")
        signing.generate(out[name])
    return out


def pub(path: str) -> str:
    return signing.public_hex(signing.load_private(path))


def as_(keys: dict[str, str], actor: str) -> tuple[str, ...]:
    return ("--as", actor, "--key", keys[{"MEE": "MEE", "F1-desk": "F1", "F2-desk": "F2", "SEEE": "SEEE"}[actor]])


def _serve(store: str, keys: dict[str, str]) -> Iterator[tuple[str, Server]]:
    """A signed store (made locally: `init` has no server counterpart) and a server on it."""
    ok(store, "--key", keys["MEE"], "init", "--regulator", "MEE", "--require-signatures", "--command-id", "init")
    srv = Server(store)
    try:
        yield store, srv
    finally:
        srv.stop()


@pytest.fixture
def served_any(store_url: str, keys: dict[str, str]) -> Iterator[tuple[str, Server]]:
    """On SQLite and on PostgreSQL (the walkthrough)."""
    yield from _serve(store_url, keys)


@pytest.fixture
def served(tmp_path: Path, keys: dict[str, str]) -> Iterator[tuple[str, Server]]:
    """On SQLite (the server's store does not change what the client does)."""
    yield from _serve(str(tmp_path / "served.db"), keys)


@pytest.fixture
def mirror(tmp_path: Path, keys: dict[str, str]) -> str:
    """A local store made the same way: the same commands must print the same there."""
    path = str(tmp_path / "mirror.db")
    ok(path, "--key", keys["MEE"], "init", "--regulator", "MEE", "--require-signatures", "--command-id", "init")
    return path


def year_steps(keys: dict[str, str]) -> list[tuple[str, ...]]:
    """A compliance year as three actors run it, each command with its id (so --json answers compare)."""
    mee, f1, seee = as_(keys, "MEE"), as_(keys, "F1-desk"), as_(keys, "SEEE")
    return [
        (*mee, "actor", "add", "SEEE", "--role", "exchange", "--public-key", pub(keys["SEEE"])),
        (*mee, "firm", "register", "F1", "--name", "Huaneng Unit 1", "--sector", "power", "--region", "Hubei"),
        (*mee, "firm", "register", "F2", "--name", "Datang", "--sector", "power", "--region", "Hubei", "--json"),
        (*mee, "actor", "add", "F1-desk", "--role", "firm", "--firm", "F1", "--public-key", pub(keys["F1"])),
        (*mee, "actor", "add", "F2-desk", "--role", "firm", "--firm", "F2", "--public-key", pub(keys["F2"])),
        (*mee, "year", "open", V, "--deadline", "2025-12-31"),
        (*mee, "issue", "F1", "--unit", "CEA", "--vintage", V, "--quantity", "1000", "--basis", "auction"),
        (*mee, "issue", "F2", "--unit", "CEA", "--vintage", V, "--quantity", "300", "--basis", "auction", "--json"),
        (*f1, "transfer", "F1", "F2", "--unit", "CEA", "--vintage", V, "--quantity", "100"),
        (*seee, "trade", "--buyer", "F2", "--seller", "F1", "--unit", "CEA", "--vintage", V, "--quantity", "50",
         "--price", "88.50", "--mode", "listed", "--date", "2024-06-03"),
        (*seee, "trade", "--buyer", "F1", "--seller", "F2", "--unit", "CEA", "--vintage", V, "--quantity", "20",
         "--price", "90.10", "--mode", "listed", "--date", "2024-06-04", "--json"),
        (*mee, "emissions", "verify", "F1", "--year", V, "--tonnes", "800"),
        (*mee, "emissions", "verify", "F2", "--year", V, "--tonnes", "600"),
        (*f1, "surrender", "F1", "--year", V, "--unit", "CEA", "--vintage", V, "--quantity", "800"),
        (*mee, "year", "close", V, "--json"),
    ]


def with_id(step: tuple[str, ...], n: int) -> tuple[str, ...]:
    return (*step, "--command-id", f"step-{n}")


def test_three_actors_run_a_compliance_year_over_the_network_as_on_a_local_store(
    served_any: tuple[str, Server], mirror: str, keys: dict[str, str], tmp_path: Path
) -> None:
    store, srv = served_any
    remote = srv.url
    for n, step in enumerate(year_steps(keys)):
        here, there = cli(remote, *with_id(step, n)), cli(mirror, *with_id(step, n))
        assert (here.returncode, here.stdout, here.stderr) == (0, there.stdout, there.stderr), step
    again = cli(remote, *with_id(year_steps(keys)[8], 8))  # a repeated command id appends nothing, as locally
    assert again.returncode == 0 and again.stdout.startswith("already recorded: command step-8")

    # reads: what a local read of the served store prints, table, JSON and CSV alike
    mee, f1, f2 = as_(keys, "MEE"), as_(keys, "F1-desk"), as_(keys, "F2-desk")
    reads = [
        (*mee, "balances"), (*mee, "balances", "--json"), (*mee, "balances", "--totals", "--as-of", "12"),
        (*f1, "balances", "F1"), (*f1, "history", "F1"), (*f2, "history", "F2", "--json", "--as-of", "15"),
        ("market",), ("market", "--by", "day", "--from", "2024-06-04", "--json"), ("market", "--by", "mode", "--csv"),
        ("compliance",), ("compliance", "--year", V, "--firm", "F2", "--json"),
        ("coverage", "--year", V, "--national-total", "10000"), ("audit", "head", "--json"),
        (*mee, "audit", "export", "--as-of", "17"), ("rules", "show"), ("rules", "show", "--year", "2023", "--json"),
    ]
    for args in reads:
        here, there = cli(remote, *args), cli(store, *args)
        assert (here.returncode, here.stdout, here.stderr) == (0, there.stdout, ""), args
    # a firm sees its own accounts only (a local read shows the whole store)
    own = json.loads(ok(remote, *f1, "balances", "--json"))
    assert {r["account_id"] for r in own["balances"]} == {"F1"}
    # anyone else gets the public export: positions, types, times and hashes, the same chain
    public = [json.loads(x) for x in ok(remote, "audit", "export").splitlines()]
    full = [json.loads(x) for x in ok(store, "audit", "export").splitlines()]
    assert [e["hash"] for e in public] == [e["hash"] for e in full] and "data" not in public[0]

    # every command the CLI signed for the server verifies, and a checkpoint signed remotely extends the log
    assert "chain verified" in ok(store, "audit", "verify")
    cp = tmp_path / "checkpoint.json"
    cp.write_text(ok(remote, *mee, "audit", "checkpoint"))
    assert json.loads(cp.read_text())["position"] == int(ok(store, "audit", "head").split()[0])
    assert "extends checkpoint" in ok(store, "audit", "verify", "--checkpoint", str(cp))


def head(srv: Server) -> str:
    return ok(srv.url, "audit", "head")


def test_refusals_exit_as_locally_with_their_codes_and_append_nothing(
    served: tuple[str, Server], mirror: str, keys: dict[str, str]
) -> None:
    store, srv = served
    for n, step in enumerate(year_steps(keys)[:9]):
        ok(srv.url, *with_id(step, n))
        ok(mirror, *with_id(step, n))
    before = head(srv)
    f1, seee = as_(keys, "F1-desk"), as_(keys, "SEEE")
    move = ("transfer", "F1", "F2", "--unit", "CEA", "--vintage", V)
    cases = [  # (exit code, refusal code, args): each as the local store answers it
        (2, "bad_input", (*f1, *move, "--quantity", "1.5")),
        (2, "bad_input", (*f1, *move, "--quantity", "5", "--command-id", "x" * 200)),
        (1, "insufficient_holding", (*f1, *move, "--quantity", "1000000")),
        (1, "not_permitted", (*seee, "issue", "F1", "--unit", "CEA", "--vintage", V, "--quantity", "5",
                              "--basis", "auction")),
        (1, "not_own_account", (*as_(keys, "F2-desk"), *move, "--quantity", "5")),
        (1, "command_id_reused", (*f1, *move, "--quantity", "7", "--command-id", "step-8")),
    ]
    for exit_code, code, args in cases:
        for as_json in (False, True):
            a = (*args, "--json") if as_json else args
            here, there = cli(srv.url, *a), cli(mirror, *a)
            assert (here.returncode, here.stdout, here.stderr) == (exit_code, "", there.stderr), a
            assert len(here.stderr.splitlines()) == 1
            if as_json:
                assert json.loads(here.stderr)["error"]["code"] == code, a
            else:
                assert here.stderr.startswith("error: "), a
    # over the network the signature is all that says who asks: a wrong key, no key, an unknown actor
    for args, code in [(("--as", "F1-desk", "--key", keys["SEEE"], *move, "--quantity", "5"), "bad_signature"),
                       (("--as", "F1-desk", *move, "--quantity", "5"), "unsigned"),
                       (("--as", "NOBODY", "--key", keys["F1"], *move, "--quantity", "5"), "unknown_actor"),
                       (("--as", "F1-desk", "--key", keys["SEEE"], "balances"), "bad_signature"),
                       (("balances",), "unsigned"),
                       ((*f1, "balances", "F2"), "not_own_account"),
                       ((*f1, "history", "F2"), "not_own_account"),
                       ((*seee, "audit", "checkpoint"), "not_permitted")]:
        p = cli(srv.url, *args, "--json") if args[-1] != "checkpoint" else cli(srv.url, *args)
        assert p.returncode == 1 and p.stdout == "", (args, p.stderr)
        if args[-1] != "checkpoint":
            assert json.loads(p.stderr)["error"]["code"] == code, (args, p.stderr)
    for args in [(*as_(keys, "MEE"), "balances", "NOPE"), ("compliance", "--year", "2031"), ("compliance", "--firm", "NOPE"),
                 ("audit", "export", "--as-of", "-1"), (*f1, "balances", "--as-of", "999")]:
        p = cli(srv.url, *args)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, (args, p.stderr)
    assert head(srv) == before  # nothing appended by any refusal
    assert "chain verified" in ok(store, "audit", "verify")


def test_import_goes_through_the_batch_endpoint_with_imports_semantics(
    served: tuple[str, Server], mirror: str, keys: dict[str, str], tmp_path: Path
) -> None:
    _store, srv = served
    for n, step in enumerate(year_steps(keys)[:8]):
        ok(srv.url, *with_id(step, n))
        ok(mirror, *with_id(step, n))
    line = {"command": "transfer", "from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": 2024}
    good = [json.dumps({**line, "command_id": f"i-{i}", "quantity": 5}) for i in range(3)]
    too_much = json.dumps({**line, "command_id": "i-x", "quantity": 10_000_000})
    f1 = as_(keys, "F1-desk")
    for name, lines, flags in [("good", good[:2], ()), ("again", good[:2], ()),
                               ("stop", [good[2], too_much], ("--json",)),
                               ("continue", [too_much], ("--on-refusal", "continue")),
                               ("bad", [good[0], good[1].replace("5", '"five"')], ())]:
        f = tmp_path / f"{name}.jsonl"
        f.write_text("\n".join(lines) + "\n")
        here, there = cli(srv.url, *f1, "import", str(f), *flags), cli(mirror, *f1, "import", str(f), *flags)
        if "--json" in flags:  # the hash differs (another store); the rest is the same
            h, t = json.loads(here.stdout), json.loads(there.stdout)
            assert {**h, "hash": ""} == {**t, "hash": ""}
            assert here.stderr == there.stderr and here.returncode == there.returncode == 1
        else:
            assert (here.returncode, here.stdout, here.stderr) == (there.returncode, there.stdout, there.stderr), name
    assert json.loads(ok(srv.url, *f1, "balances", "F1", "--json"))["balances"][0]["quantity"] == 1000 - 15
    unsigned = tmp_path / "unsigned.jsonl"
    unsigned.write_text(json.dumps({**line, "command_id": "u-1", "quantity": 1, "actor": "F1-desk"}) + "\n")
    p = cli(srv.url, "import", str(unsigned), "--json")
    assert p.returncode == 1 and json.loads(p.stderr)["error"]["code"] == "unsigned"


def test_commands_without_a_server_counterpart_need_a_local_store(served: tuple[str, Server],
                                                                 keys: dict[str, str]) -> None:
    _store, srv = served
    before = head(srv)
    for command, args in [("audit verify", ()), ("audit replay", ()), ("demo", ()),
                          ("simulate", ("china-2021-2024",)), ("init", ("--regulator", "MEE")), ("serve", ()),
                          ("project", ())]:
        p = cli(srv.url, "--key", keys["MEE"], *command.split(), *args)
        assert p.returncode == 2 and p.stderr.splitlines() == [
            f"error: carbon-ledger {command} needs a local store (a file or postgresql://); {srv.url} is a"
            " registry server"], (command, p.stderr)
    assert head(srv) == before


def test_rules_show_against_a_server_shows_the_plans_published_in_its_store(served: tuple[str, Server],
                                                                           keys: dict[str, str],
                                                                           tmp_path: Path) -> None:
    """`rules show` reads the server's store (GET /v1/rules, public): a plan the regulator publishes through the
    server is in force there, and the remote answer is what a local read of the served store prints."""
    store, srv = served
    plan = tmp_path / "p27.json"
    plan.write_text(json.dumps({"version": "power-2027-test", "years": [2027], "source": "a 2027 plan (a test)",
                                "power": {"draft": False, "electricity_t_per_mwh": {"IV": "0.3200"},
                                          "gap_cap_share": "0.10", "sources": {"benchmarks": "annex 2"}}}))
    before = json.loads(ok(srv.url, "rules", "show", "--year", "2027", "--json"))
    assert before["rule_version"] != "power-2027-test"
    ok(srv.url, *as_(keys, "MEE"), "rules", "publish", str(plan))
    for args in (("--year", "2027", "--json"), ("--year", "2027")):
        here, there = cli(srv.url, "rules", "show", *args), cli(store, "rules", "show", *args)
        assert (here.returncode, here.stdout, here.stderr) == (0, there.stdout, ""), args
    shown = json.loads(ok(srv.url, "rules", "show", "--year", "2027", "--json"))
    assert (shown["rule_version"], shown["plans"]["power"]["electricity_t_per_mwh"]["IV"]) == ("power-2027-test",
                                                                                              "0.32")
    bad = cli(srv.url, "rules", "show", "--year", "x")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_a_server_out_of_reach_exits_3_with_one_line(keys: dict[str, str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for args in [("audit", "head"), ("market",), (*as_(keys, "F1-desk"), "transfer", "F1", "F2", "--unit", "CEA",
                                                 "--vintage", V, "--quantity", "5")]:
        p = cli(url, *args, cwd=str(cwd))
        assert p.returncode == 3 and p.stdout == "", (args, p.stderr)
        assert p.stderr.splitlines() == [p.stderr.strip()] and p.stderr.startswith(f"error: cannot reach {url}: ")
    assert list(cwd.iterdir()) == []  # no local store was made on the way
    p = cli("http://10.1.2.3:8080", "market")  # plain http leaves the machine: refused before any request
    assert p.returncode == 2 and "loopback" in p.stderr


def test_a_server_that_stops_mid_session_exits_3(served: tuple[str, Server], keys: dict[str, str]) -> None:
    _store, srv = served
    ok(srv.url, "audit", "head")
    srv.stop()
    p = cli(srv.url, *as_(keys, "MEE"), "year", "open", V)
    assert p.returncode == 3 and p.stderr.startswith(f"error: cannot reach {srv.url}: ")


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


def test_https_is_verified_against_the_system_or_the_given_ca(tmp_path: Path, keys: dict[str, str]) -> None:
    import httpx

    store = str(tmp_path / "tls.db")
    ok(store, "--key", keys["MEE"], "init", "--regulator", "MEE", "--require-signatures")
    certfile, keyfile = _self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen([EXE, "--store", store, "serve", "--port", str(port), "--certfile", certfile,
                             "--keyfile", keyfile], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"https://127.0.0.1:{port}"
    try:
        import time

        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the TLS server did not start"
            try:
                httpx.get(url + "/v1/health", verify=False, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        p = cli(url, "audit", "head")  # a certificate no system CA signed: refused
        assert p.returncode == 3 and p.stderr.startswith(f"error: cannot reach {url}: ") and "CERTIFICATE" in p.stderr.upper()
        expected = ok(store, "audit", "head")
        assert ok(url, "--cacert", certfile, "audit", "head") == expected
        assert ok(url, "audit", "head", env={"CARBON_LEDGER_CACERT": certfile}) == expected
        assert ok(url, "--cacert", certfile, *as_(keys, "MEE"), "year", "open", V).startswith(
            "recorded ComplianceYearOpened")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
