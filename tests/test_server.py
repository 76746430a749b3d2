"""`carbon-ledger serve` as a real server process on loopback: signed commands over HTTP with the CLI's results
and stable error codes (400, 401, 403, 409; never a 500), idempotent command ids, group commit of concurrent
requests into one gapless chain that re-executes, and a server that will not serve writes on an open store."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledgerkit import EXE, export_lines, run_main

from ledger import signing

pytestmark = pytest.mark.skipif(EXE is None, reason="needs the installed carbon-ledger executable")
V = 2024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ok(store: str, *args: str) -> str:
    r = run_main(store, *args)
    assert r.code == 0, f"{args}: exit {r.code}: {r.err}"
    return r.out


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name in ("MEE", "F1", "SEEE"):
        out[name] = str(tmp_path / f"{name}.key")
        signing.generate(out[name])
    return out


def pub(path: str) -> str:
    return signing.public_hex(signing.load_private(path))


@pytest.fixture
def registry_store(store_url: str, keys: dict[str, str]) -> str:
    s, mee = store_url, ("--as", "MEE", "--key", keys["MEE"])
    ok(s, "--key", keys["MEE"], "init", "--regulator", "MEE", "--require-signatures")
    for f in ("F1", "F2"):
        ok(s, *mee, "firm", "register", f, "--name", f, "--sector", "power", "--region", "Hubei")
    ok(s, *mee, "actor", "add", "F1-desk", "--role", "firm", "--firm", "F1", "--public-key", pub(keys["F1"]))
    ok(s, *mee, "actor", "add", "SEEE", "--role", "exchange", "--public-key", pub(keys["SEEE"]))
    ok(s, *mee, "year", "open", str(V))
    ok(s, *mee, "issue", "F1", "--unit", "CEA", "--vintage", str(V), "--quantity", "100000", "--basis", "auction")
    return s


class Server:
    def __init__(self, store: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([EXE, "--store", store, "serve", "--port", str(self.port), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the server did not answer within 30 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def server(registry_store: str) -> Iterator[Server]:
    srv = Server(registry_store)
    try:
        yield srv
    finally:
        srv.stop()


def signed_line(server: Server, key: str, actor: str, name: str, command_id: str, args: dict[str, Any],
                lifetime_s: int = 600) -> dict[str, Any]:
    """A command as a client in any language would send it: signed for this store, from its /v1/head."""
    from ledger.inputs import parse_command

    store_id = httpx.get(server.url + "/v1/head").json()["store_id"]
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = signing.sign_command(signing.load_private(key), store_id, name, command_id, parse_command(name, args),
                               expires)
    return {"command": name, "command_id": command_id, **args, "actor": actor, "signature": sig,
            "signature_expires": expires}


def transfer(q: int = 10) -> dict[str, Any]:
    return {"from_account": "F1", "to_account": "F2", "unit": "CEA", "vintage": V, "quantity": q}


def post(server: Server, body: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/commands", content=json.dumps(body) if not isinstance(body, str) else body,
                      timeout=30)


def test_a_signed_command_is_recorded_and_answers_as_the_cli_does(server: Server, keys: dict[str, str],
                                                                   registry_store: str) -> None:
    r = post(server, signed_line(server, keys["F1"], "F1-desk", "transfer", "t-1", transfer()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["events"] == ["AllowancesTransferred"] and body["replayed"] is False
    again = post(server, signed_line(server, keys["F1"], "F1-desk", "transfer", "t-1", transfer()))
    assert again.status_code == 200 and again.json()["replayed"] is True  # idempotent, as on the CLI
    assert json.loads(ok(registry_store, "balances", "F2", "--json"))["balances"][0]["quantity"] == 10
    head = httpx.get(server.url + "/v1/head").json()
    assert head["position"] == body["position"]


def test_errors_have_stable_codes_and_statuses_and_append_nothing(server: Server, keys: dict[str, str]) -> None:
    before = httpx.get(server.url + "/v1/head").json()
    cases = [
        (400, "bad_input", "not json"),
        (400, "bad_input", {**signed_line(server, keys["F1"], "F1-desk", "transfer", "b-1", transfer()),
                            "quantity": "ten"}),
        (401, "unsigned", {"command": "transfer", "command_id": "u-1", **transfer(), "actor": "F1-desk"}),
        (401, "bad_signature", signed_line(server, keys["SEEE"], "F1-desk", "transfer", "w-1", transfer())),
        (401, "signature_expired", signed_line(server, keys["F1"], "F1-desk", "transfer", "e-1", transfer(), -60)),
        (403, "not_permitted", signed_line(server, keys["SEEE"], "SEEE", "transfer", "r-1", transfer())),
        (409, "insufficient_holding", signed_line(server, keys["F1"], "F1-desk", "transfer", "h-1",
                                                  transfer(10_000_000))),
    ]
    for status, code, body in cases:
        r = post(server, body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (code, r.text)
        assert r.json()["error"]["message"]
    assert httpx.get(server.url + "/v1/head").json() == before


def test_concurrent_commands_are_group_committed_into_one_chain_that_re_executes(
    server: Server, keys: dict[str, str], registry_store: str
) -> None:
    lines = [signed_line(server, keys["F1"], "F1-desk", "transfer", f"c-{i}", transfer(1)) for i in range(120)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda b: post(server, b), lines))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
    positions = sorted(a.json()["position"] for a in answers)
    assert len(set(positions)) == 120 and positions == list(range(positions[0], positions[0] + 120))
    assert json.loads(ok(registry_store, "balances", "F2", "--json"))["balances"][0]["quantity"] == 120
    writer = httpx.get(server.url + "/v1/health").json()["writer"]
    assert writer["commands"] == 120 and writer["transactions"] < 120  # gathered, each with its own answer
    assert "chain verified" in ok(registry_store, "audit", "verify")


def test_two_server_processes_on_one_store_keep_one_gapless_chain(
    server: Server, keys: dict[str, str], registry_store: str
) -> None:
    """Several servers (or workers) on one store: each gathers its own batches, and the store's writer lock and
    position check order them into one chain without a gap, each command recorded once."""
    other = Server(registry_store)
    try:
        servers = (server, other)
        lines = [(servers[i % 2], signed_line(server, keys["F1"], "F1-desk", "transfer", f"two-{i}", transfer(1)))
                 for i in range(80)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda sb: post(sb[0], sb[1]), lines))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
        positions = sorted(a.json()["position"] for a in answers)
        assert positions == list(range(positions[0], positions[0] + 80))  # gapless, none twice
        again = post(other, lines[0][1])  # a repeat at the other server: idempotent there too
        assert again.json()["replayed"] is True
        assert json.loads(ok(registry_store, "balances", "F2", "--json"))["balances"][0]["quantity"] == 80
        assert "chain verified" in ok(registry_store, "audit", "verify")
    finally:
        other.stop()


def test_without_group_commit_each_command_is_its_own_transaction(registry_store: str, keys: dict[str, str]) -> None:
    srv = Server(registry_store, "--no-group-commit")
    try:
        lines = [signed_line(srv, keys["F1"], "F1-desk", "transfer", f"n-{i}", transfer(1)) for i in range(20)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert all(a.status_code == 200 for a in pool.map(lambda b: post(srv, b), lines))
        writer = httpx.get(srv.url + "/v1/health").json()["writer"]
        assert (writer["transactions"], writer["commands"]) == (20, 20)
        assert 0 < writer["slowest_ms"] < 30_000 and 0 <= writer["over_50_ms"] <= 20
    finally:
        srv.stop()


def test_the_openapi_document_is_served(server: Server) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/commands", "/v1/head", "/v1/health", "/v1/audit/checkpoint", "/data/v1/market/{name}"} <= set(
        doc["paths"])
    assert "/" not in doc["paths"] and "/market" not in doc["paths"]  # the HTML pages are not API operations
    answers = doc["paths"]["/v1/commands"]["post"]["responses"]
    assert {"200", "400", "401", "403", "409", "413", "503"} <= set(answers) and "422" not in answers
    assert answers["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


def test_the_server_names_no_software_and_trusts_no_forwarding_header(server: Server) -> None:
    """No `server: uvicorn` banner (an attacker learns nothing of the stack from an answer); X-Forwarded-For and
    X-Forwarded-Proto are the client's say-so, not the connection's, so they change nothing: a redirect names
    the scheme the request came by."""
    r = httpx.get(server.url + "/v1/health")
    assert r.status_code == 200 and "server" not in r.headers and r.headers["date"]
    r = httpx.get(server.url + "/v1/health/", headers={"X-Forwarded-Proto": "https",
                                                       "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 307, r.text
    assert r.headers["location"] == server.url + "/v1/health"


def test_every_error_of_the_api_has_its_shape_and_status(server: Server) -> None:
    """Not only the registry's own refusals: an unknown path, a method a path does not take and a parameter of
    the wrong type or missing answer {"error": {"code", "message"}} too, a bad parameter with 400 (not 422)."""
    cases = [("GET", "/v1/nothing", 404, "not_found"), ("GET", "/v1/commands", 405, "method_not_allowed"),
             ("GET", "/v1/market?vintage=abc", 400, "bad_input"), ("GET", "/v1/coverage", 400, "bad_input"),
             ("GET", "/v1/history/F1?as_of=x", 400, "bad_input")]
    for method, path, status, code in cases:
        r = httpx.request(method, server.url + path, timeout=30)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, r.text)
        assert r.json()["error"]["message"]
    assert "vintage" in httpx.get(server.url + "/v1/market?vintage=abc").json()["error"]["message"]


def test_a_command_over_the_size_limit_is_refused_whole_and_appends_nothing(server: Server,
                                                                             keys: dict[str, str]) -> None:
    from commands.limits import MAX_BODY_BYTES

    before = httpx.get(server.url + "/v1/head").json()
    line = signed_line(server, keys["F1"], "F1-desk", "transfer", "big-1", transfer())
    body = json.dumps({**line, "padding": "x" * MAX_BODY_BYTES})
    r = post(server, body)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")

    def chunks() -> Iterator[bytes]:  # sent in pieces, with no length announced: the limit still holds
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192].encode()

    r = httpx.post(server.url + "/v1/commands", content=chunks(), timeout=30)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")
    r = httpx.post(server.url + "/v1/commands", content=b"\xff\xfe{}", timeout=30)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_input")
    assert httpx.get(server.url + "/v1/head").json() == before
    assert post(server, line).status_code == 200  # the same command at its size is taken


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_command_lane_and_the_documented_route_answer_alike(registry_store: str, keys: dict[str, str]) -> None:
    """`serve` takes POST /v1/commands past FastAPI's routing (CommandLane); the FastAPI route it documents
    calls the same handler. Both give the same status and answer, for a refusal and for a command."""
    from fastapi.testclient import TestClient

    from commands.lane import CommandLane
    from commands.server import create_app
    from ledger.inputs import parse_command

    app = create_app(registry_store)
    assert isinstance(app, CommandLane)
    with TestClient(app) as lane, TestClient(app.api) as route:
        sid = lane.get("/v1/head").json()["store_id"]
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def line(cid: str, key: str) -> str:
            sig = signing.sign_command(signing.load_private(keys[key]), sid, "transfer", cid,
                                       parse_command("transfer", transfer()), expires)
            return json.dumps({"command": "transfer", "command_id": cid, **transfer(), "actor": "F1-desk",
                               "signature": sig, "signature_expires": expires})

        for body in ("not json", line("lane-1", "SEEE"), "x" * 70_000):
            a, b = lane.post("/v1/commands", content=body), route.post("/v1/commands", content=body)
            assert (a.status_code, a.json()) == (b.status_code, b.json())
            assert a.status_code in (400, 401, 413)
        good = lane.post("/v1/commands", content=line("lane-2", "F1"))
        again = route.post("/v1/commands", content=line("lane-2", "F1"))
        assert good.status_code == again.status_code == 200
        assert again.json() == {**good.json(), "replayed": True}


def test_an_open_store_is_not_served_for_writes(store_url: str) -> None:
    ok(store_url, "firm", "register", "F1", "--name", "F1", "--sector", "power", "--region", "Hubei")
    p = subprocess.run([EXE, "--store", store_url, "serve", "--port", str(free_port())], capture_output=True,
                       text=True, timeout=60, check=False)
    assert p.returncode == 2 and "open" in p.stderr and "--read-only" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    srv = Server(store_url, "--read-only")
    try:
        assert httpx.get(srv.url + "/v1/head").json()["position"] == 2
        r = post(srv, {"command": "year open", "command_id": "y", "year": "2024"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "read_only"
    finally:
        srv.stop()


# ---- reads ----------------------------------------------------------------------------------------------


def signed_get(server: Server, key: str, actor: str, path: str, query: str = "", *, nonce: str | None = None,
               at: dt.datetime | None = None, store_id: str | None = None) -> httpx.Response:
    import uuid

    sid = httpx.get(server.url + "/v1/head").json()["store_id"] if store_id is None else store_id
    ts = (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nonce = nonce or uuid.uuid4().hex
    sig = signing.sign(signing.load_private(key), signing.request_payload(sid, actor, "GET", path, query, b"", ts, nonce))
    return httpx.get(server.url + path + (f"?{query}" if query else ""), timeout=30,
                     headers={"X-Carbon-Actor": actor, "X-Carbon-Timestamp": ts, "X-Carbon-Nonce": nonce,
                              "X-Carbon-Signature": sig})


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_a_nonce_is_refused_by_every_worker_once_one_has_seen_it(registry_store: str, keys: dict[str, str]) -> None:
    """With several server processes on one store a replayed request goes to any of them: the nonces are kept in
    the store (ledger_nonces), not in one process's memory. Two applications on the store stand for two workers."""
    import uuid

    from fastapi.testclient import TestClient

    from commands.server import create_app

    with TestClient(create_app(registry_store)) as one, TestClient(create_app(registry_store)) as two:
        sid = one.get("/v1/head").json()["store_id"]
        ts = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def headers(nonce: str) -> dict[str, str]:
            sig = signing.sign(signing.load_private(keys["MEE"]),
                               signing.request_payload(sid, "MEE", "GET", "/v1/balances", "", b"", ts, nonce))
            return {"X-Carbon-Actor": "MEE", "X-Carbon-Timestamp": ts, "X-Carbon-Nonce": nonce,
                    "X-Carbon-Signature": sig}

        nonce = uuid.uuid4().hex
        assert one.get("/v1/balances", headers=headers(nonce)).status_code == 200
        again = two.get("/v1/balances", headers=headers(nonce))  # the same request, to the other worker
        assert (again.status_code, again.json()["error"]["code"]) == (401, "replayed")
        assert one.get("/v1/balances", headers=headers(nonce)).status_code == 401
        assert two.get("/v1/balances", headers=headers(uuid.uuid4().hex)).status_code == 200


def test_public_reads_answer_what_the_cli_answers(server: Server, registry_store: str) -> None:
    for path, args in (("/v1/market", ("market",)), ("/v1/compliance", ("compliance",)),
                       ("/v1/coverage?year=2024", ("coverage", "--year", "2024")),
                       ("/v1/rules?year=2023", ("rules", "show", "--year", "2023"))):
        r = httpx.get(server.url + path, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == json.loads(ok(registry_store, *args, "--json")), path


def test_private_reads_need_a_signed_request_scoped_to_the_actor(server: Server, keys: dict[str, str],
                                                                 registry_store: str) -> None:
    assert httpx.get(server.url + "/v1/balances").json()["error"]["code"] == "unsigned"
    mee = signed_get(server, keys["MEE"], "MEE", "/v1/balances")
    assert mee.status_code == 200 and mee.json() == json.loads(ok(registry_store, "balances", "--json"))
    ok(registry_store, "--as", "F1-desk", "--key", keys["F1"], "transfer", "F1", "F2", "--unit", "CEA",
       "--vintage", str(V), "--quantity", "7")
    own = signed_get(server, keys["F1"], "F1-desk", "/v1/balances").json()
    assert {r["account_id"] for r in own["balances"]} == {"F1"}  # not F2's holding
    other = signed_get(server, keys["F1"], "F1-desk", "/v1/history/F2")
    assert (other.status_code, other.json()["error"]["code"]) == (403, "not_own_account")
    mine = signed_get(server, keys["F1"], "F1-desk", "/v1/history/F1")
    assert mine.status_code == 200 and mine.json()["rows"] == json.loads(ok(registry_store, "history", "F1", "--json"))["rows"]


def test_forged_stale_replayed_or_foreign_read_requests_are_refused(server: Server, keys: dict[str, str]) -> None:
    cases = {
        "bad_signature": signed_get(server, keys["SEEE"], "MEE", "/v1/balances"),  # the wrong key
        "signature_expired": signed_get(server, keys["MEE"], "MEE", "/v1/balances",
                                        at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)),
        "unknown_actor": signed_get(server, keys["MEE"], "NOBODY", "/v1/balances"),
    }
    cases["bad_signature (other store)"] = signed_get(server, keys["MEE"], "MEE", "/v1/balances", store_id="0" * 64)
    for code, r in cases.items():
        assert r.status_code == 401 and r.json()["error"]["code"] == code.split(" ")[0], (code, r.text)
    first = signed_get(server, keys["MEE"], "MEE", "/v1/balances", nonce="n-1")
    again = signed_get(server, keys["MEE"], "MEE", "/v1/balances", nonce="n-1")
    assert first.status_code == 200 and (again.status_code, again.json()["error"]["code"]) == (401, "replayed")


def test_the_public_export_has_the_hashes_and_the_regulators_has_everything(server: Server, keys: dict[str, str],
                                                                           registry_store: str) -> None:
    public = [json.loads(x) for x in httpx.get(server.url + "/v1/audit/export").text.splitlines()]
    assert set(public[0]) == {"position", "type", "recorded_at", "prev_hash", "hash"}
    full = [json.loads(x) for x in signed_get(server, keys["MEE"], "MEE", "/v1/audit/export").text.splitlines()]
    local = export_lines(registry_store)
    assert full == local and [p["hash"] for p in public] == [e["hash"] for e in local]


def test_a_batch_of_signed_lines_has_imports_semantics(server: Server, keys: dict[str, str],
                                                       registry_store: str) -> None:
    good = [signed_line(server, keys["F1"], "F1-desk", "transfer", f"b-{i}", transfer(2)) for i in range(3)]
    too_much = signed_line(server, keys["F1"], "F1-desk", "transfer", "b-x", transfer(10_000_000))
    bad = dict(good[0], quantity="2.5")
    before = httpx.get(server.url + "/v1/head").json()
    r = httpx.post(server.url + "/v1/commands/batch", content="\n".join(json.dumps(x) for x in [*good, bad]))
    assert r.status_code == 400 and r.json()["error"]["lines"][0].startswith("line 4")
    assert httpx.get(server.url + "/v1/head").json() == before  # a bad line: nothing appended
    lines = "\n".join(json.dumps(x) for x in [good[0], too_much, good[1], good[2]])
    stop = httpx.post(server.url + "/v1/commands/batch", content=lines).json()
    assert (stop["applied"], stop["stopped"], stop["refused"][0]["line"]) == (1, True, 2)
    assert stop["refused"][0]["error"]["code"] == "insufficient_holding"
    go_on = httpx.post(server.url + "/v1/commands/batch?on_refusal=continue", content=lines).json()
    assert (go_on["applied"], go_on["already_applied"], go_on["stopped"]) == (2, 1, False)
    assert json.loads(ok(registry_store, "balances", "F2", "--json"))["balances"][0]["quantity"] == 6
    assert "chain verified" in ok(registry_store, "audit", "verify")


def test_a_body_that_trickles_is_cut_off_with_408_and_appends_nothing(server: Server) -> None:
    """A client that announces a body and never sends it all holds nothing for long: after BODY_READ_S the
    server answers 408, on the command lane and on a FastAPI route alike (the batch)."""
    from commands.limits import BODY_READ_S

    before = httpx.get(server.url + "/v1/head").json()
    for path in ("/v1/commands", "/v1/commands/batch"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=BODY_READ_S + 20) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: 1000\r\n\r\n{\"command\": ".encode())
            t0 = time.monotonic()
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
            waited = time.monotonic() - t0
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), (path, answer)
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert BODY_READ_S - 1 <= waited < BODY_READ_S + 10
    assert httpx.get(server.url + "/v1/head").json() == before


def test_a_wait_expires_within_a_second_of_its_deadline_and_finished_waits_are_dropped() -> None:
    import asyncio

    from commands.groupcommit import Expiry

    expired: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        expiry = Expiry(0.3, lambda f: (expired.append(f), f.set_exception(TimeoutError())))
        late, answered = loop.create_future(), loop.create_future()
        started = loop.time()
        expiry.add(loop, late)
        expiry.add(loop, answered)
        answered.set_result("in time")
        with pytest.raises(TimeoutError):
            await late
        assert 0.3 <= loop.time() - started < 1.5  # after its deadline, within the sweep's second
        assert expired == [late] and not expiry.waits  # the answered wait was dropped, not expired
        await asyncio.sleep(1.2)
        assert expiry.timer is None  # nothing queued: no timer left running

    asyncio.run(main())


def test_a_command_the_writer_does_not_reach_in_time_answers_busy_and_its_retry_is_recorded_once(
        tmp_path: Path) -> None:
    """COMMAND_WAIT_S: while the writer is held up, a command's wait ends with WriterTimeout (503 store_busy);
    the command may still be recorded when the writer gets to it, and sending it again with the same command
    id appends nothing more."""
    import asyncio
    import threading

    from commands.groupcommit import GroupCommit, WriterTimeout
    from ledger.registry import Command

    store = str(tmp_path / "busy.db")
    run_main(store, "firm", "register", "F0", "--name", "F0", "--sector", "power", "--region", "Hubei")
    writer = GroupCommit(store)
    release = threading.Event()
    execute = writer.registry.execute_batch

    def held_up(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return execute(*args, **kwargs)

    writer.registry.execute_batch = held_up  # type: ignore[method-assign]
    writer.expiry.seconds = 0.3
    cmd = Command("firm register", {"firm_id": "F1", "name": "F1", "sector": "power", "region": "Hubei"}, "r-F1")

    async def main() -> Any:
        with pytest.raises(WriterTimeout):
            await writer.submit(cmd)
        release.set()
        for _ in range(100):  # the writer records it once it is free: nobody waits for that answer any more
            if writer.commands:
                break
            await asyncio.sleep(0.05)
        return await writer.submit(cmd)

    try:
        again = asyncio.run(main())
    finally:
        release.set()
        writer.close()
    assert again.replayed is True
    assert [e["type"] for e in export_lines(store)].count("FirmRegistered") == 2


def test_the_writer_reports_its_slowest_transaction_and_counts_those_over_50_ms(tmp_path: Path) -> None:
    """What a p99 under load is made of: a transaction the disk (here a sleep) holds up past SLOW_MS is counted,
    a quick one is not, and one that fails counts too."""
    import asyncio
    import time as clock

    from commands.groupcommit import SLOW_MS, GroupCommit
    from ledger.errors import StoreError
    from ledger.registry import Command

    store = str(tmp_path / "slow.db")
    run_main(store, "firm", "register", "F0", "--name", "F0", "--sector", "power", "--region", "Hubei")
    writer = GroupCommit(store)
    execute = writer.registry.execute_batch
    delays: list[Any] = ["quick", SLOW_MS / 1000 + 0.03, "fail"]

    def stalled(*args: Any, **kwargs: Any) -> Any:
        d = delays.pop(0)
        if d == "quick":  # no disk at all: nothing can stall it
            return ["decided"]
        if d == "fail":
            clock.sleep(SLOW_MS / 1000 + 0.01)
            raise RuntimeError("disk gone")
        clock.sleep(d)
        return execute(*args, **kwargs)

    writer.registry.execute_batch = stalled  # type: ignore[method-assign]

    def firm(i: int) -> Command:
        return Command("firm register", {"firm_id": f"F{i}", "name": "x", "sector": "power", "region": "Hubei"},
                       f"r-F{i}")

    async def main() -> list[tuple[int, float]]:
        seen = []
        assert await writer.submit(firm(1)) == "decided"
        seen.append((writer.slow, writer.slowest_ms))
        await writer.submit(firm(2))
        seen.append((writer.slow, writer.slowest_ms))
        with pytest.raises(StoreError):
            await writer.submit(firm(3))
        seen.append((writer.slow, writer.slowest_ms))
        return seen

    try:
        (n1, ms1), (n2, ms2), (n3, ms3) = asyncio.run(main())
    finally:
        writer.close()
    assert n1 == 0 and ms1 < SLOW_MS
    assert n2 == 1 and ms2 >= SLOW_MS + 30
    assert n3 == 2 and ms3 == ms2  # the failure was slow, not the slowest
    assert writer.batches == 2  # the failed one committed nothing


def test_the_writer_holds_the_store_lock_over_consecutive_groups_for_at_most_its_lease(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WRITER_LEASE_S: groups that follow one another without a pause share one hold of the store's writer lock
    (on PostgreSQL two round trips fewer a group), but a hold ends once the lease is over, so another server
    process on the store gets its turn; every command still gets its own answer."""
    import asyncio
    import contextlib
    import threading

    from commands import groupcommit
    from ledger.registry import Command

    def firms(writer: Any, n: int, tag: str) -> tuple[list[Any], int]:
        holds = {"n": 0, "depth": 0}
        lock = writer.registry.recorder.writer_lock
        gate = threading.Event()
        execute = writer.registry.execute_batch

        @contextlib.contextmanager
        def counted() -> Any:  # a hold is the outermost take (each group takes it again inside)
            holds["n"] += holds["depth"] == 0
            holds["depth"] += 1
            try:
                with lock():
                    yield
            finally:
                holds["depth"] -= 1

        def gated(*args: Any, **kwargs: Any) -> Any:
            gate.wait(10)  # the first group waits until every command is queued: the queue is never empty
            return execute(*args, **kwargs)

        writer.registry.recorder.writer_lock = counted
        writer.registry.execute_batch = gated

        async def main() -> list[Any]:
            futs = [writer.submit(Command("firm register", {"firm_id": f"{tag}{i}", "name": "x", "sector": "power",
                                                            "region": "Hubei"}, f"r-{tag}{i}")) for i in range(n)]
            await asyncio.sleep(0.2)
            gate.set()
            return list(await asyncio.gather(*futs))

        return asyncio.run(main()), holds["n"]

    store = str(tmp_path / "lease.db")
    run_main(store, "firm", "register", "F0", "--name", "F0", "--sector", "power", "--region", "Hubei")
    monkeypatch.setattr(groupcommit, "GROUP_MAX_COMMANDS", 5)
    monkeypatch.setattr(groupcommit, "WRITER_LEASE_S", 5.0)  # longer than the 8 groups take, whatever the disk
    writer = groupcommit.GroupCommit(store)
    try:
        results, holds = firms(writer, 40, "A")  # 8 groups of 5, one after another
    finally:
        writer.close()
    assert [r.replayed for r in results] == [False] * 40 and writer.batches >= 8
    assert holds == 1  # held over every group ...
    monkeypatch.setattr(groupcommit, "WRITER_LEASE_S", 0.0)
    writer = groupcommit.GroupCommit(store)
    try:
        results, holds = firms(writer, 40, "B")
    finally:
        writer.close()
    assert len(results) == 40 and holds == writer.batches  # ... and with no lease left, one group per hold
    assert [e["type"] for e in export_lines(store)].count("FirmRegistered") == 81


def test_a_signature_checked_ahead_under_a_key_rotated_meanwhile_is_refused(tmp_path: Path) -> None:
    """The checker thread checks a queued command's signature against the key its actor has when it looks; a
    key rotation queued before the command changes that key by the time the writer decides it. The writer
    decides on its own state: the command signed with the old key is refused (bad_signature) although it was
    checked ahead and found valid then, and one signed with the new key is recorded."""
    import asyncio
    import threading

    from commands.groupcommit import GroupCommit
    from ledger.errors import Refused
    from ledger.inputs import parse_command
    from ledger.registry import Command

    keys = {name: str(tmp_path / f"{name}.key") for name in ("MEE", "old", "new")}
    for path in keys.values():
        signing.generate(path)
    store = str(tmp_path / "rotate.db")
    mee = ("--as", "MEE", "--key", keys["MEE"])
    ok(store, "--key", keys["MEE"], "init", "--regulator", "MEE", "--require-signatures")
    for f in ("F1", "F2"):
        ok(store, *mee, "firm", "register", f, "--name", f, "--sector", "power", "--region", "Hubei")
    ok(store, *mee, "actor", "add", "F1-desk", "--role", "firm", "--firm", "F1", "--public-key", pub(keys["old"]))
    ok(store, *mee, "year", "open", str(V))
    ok(store, *mee, "issue", "F1", "--unit", "CEA", "--vintage", str(V), "--quantity", "1000", "--basis", "auction")
    writer = GroupCommit(store)
    assert writer.ready.wait(30)
    store_id = writer.registry.state.store_id
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def signed(key: str, actor: str, name: str, command_id: str, args: dict[str, Any]) -> Command:
        args = parse_command(name, args)
        sig = signing.sign_command(signing.load_private(keys[key]), store_id, name, command_id, args, expires)
        return Command(name, args, command_id, actor, sig, checked=True, expires=expires)

    rotate = signed("MEE", "MEE", "actor key", "k-1", {"actor_id": "F1-desk", "public_key": pub(keys["new"])})
    old = signed("old", "F1-desk", "transfer", "t-old", transfer())
    new = signed("new", "F1-desk", "transfer", "t-new", transfer())
    release = threading.Event()
    execute = writer.registry.execute_batch

    def held_up(*args: Any, **kwargs: Any) -> Any:  # every command is checked ahead before the writer runs
        release.wait(30)
        return execute(*args, **kwargs)

    writer.registry.execute_batch = held_up  # type: ignore[method-assign]

    async def main() -> list[Any]:
        futures = [writer.submit(c) for c in (rotate, old, new)]
        for _ in range(100):
            if writer.incoming.empty() and len(signing._verified) >= 2:
                break
            await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        rotated, with_old, with_new = asyncio.run(main())
    finally:
        release.set()
        writer.close()
    assert not isinstance(rotated, Exception) and not isinstance(with_new, Exception)
    assert isinstance(with_old, Refused) and with_old.code == "bad_signature"
    assert [e["command_id"] for e in export_lines(store)][-2:] == ["k-1", "t-new"]


def test_requests_beyond_the_in_flight_limit_get_503_in_the_apis_shape(server: Server) -> None:
    """MAX_REQUESTS_IN_FLIGHT requests whose bodies are still arriving hold every place; the next request is
    refused at once with 503 server_busy and Retry-After, in the API's error shape; once they go, it is served."""
    from commands.limits import MAX_REQUESTS_IN_FLIGHT

    held = []
    try:
        for _ in range(MAX_REQUESTS_IN_FLIGHT):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{")
            held.append(s)
        deadline = time.monotonic() + 10
        while True:  # the server takes the held requests in as it gets to them
            r = httpx.get(server.url + "/v1/head", timeout=10)
            if r.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "server_busy" and r.headers["retry-after"] == "1"
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while httpx.get(server.url + "/v1/head", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the server did not free its places"
        time.sleep(0.1)


def _signature_children(pid: int) -> list[int]:
    """The server's signature processes (commands/verifier.py): its children running the verifier."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"commands.verifier" in cmdline:
            out.append(int(entry.name))
    return out


def test_with_its_signature_process_killed_the_server_still_checks_every_signature(
        server: Server, keys: dict[str, str]) -> None:
    """The signatures are checked ahead in a child process; kill it (an operator's mistake, the OOM killer):
    a forged command is refused as before and a good one recorded, the writer checking them itself until
    a new child runs; and the server leaves no child behind when it stops."""
    import os
    import signal

    assert post(server, signed_line(server, keys["F1"], "F1-desk", "transfer", "k-0", transfer(1))).status_code == 200
    (child,) = _signature_children(server.proc.pid)
    os.kill(child, signal.SIGKILL)
    before = httpx.get(server.url + "/v1/head").json()
    forged = {**signed_line(server, keys["F1"], "F1-desk", "transfer", "k-1", transfer(1)), "quantity": 90_000}
    r = post(server, forged)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "bad_signature"), r.text
    wrong_key = signed_line(server, keys["SEEE"], "F1-desk", "transfer", "k-2", transfer(1))
    assert post(server, wrong_key).json()["error"]["code"] == "bad_signature"
    assert httpx.get(server.url + "/v1/head").json() == before
    assert post(server, signed_line(server, keys["F1"], "F1-desk", "transfer", "k-3", transfer(2))).status_code == 200
    time.sleep(1.2)  # commands/verifier.py RESTART_AFTER_S
    assert post(server, signed_line(server, keys["F1"], "F1-desk", "transfer", "k-4", transfer(3))).status_code == 200
    children = _signature_children(server.proc.pid)
    assert len(children) == 1 and children[0] != child
    r = post(server, {**signed_line(server, keys["F1"], "F1-desk", "transfer", "k-5", transfer(1)), "quantity": 7})
    assert r.json()["error"]["code"] == "bad_signature"  # and the new child's verdicts are right
    server.stop()
    assert not _signature_children(server.proc.pid)
    assert not Path(f"/proc/{children[0]}").exists() or b"commands.verifier" not in Path(
        f"/proc/{children[0]}/cmdline").read_bytes()
