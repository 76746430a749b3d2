"""`carbon-ledger serve`: the registry over HTTP (FastAPI on uvicorn), on the same registry methods as the CLI.

Every command is authenticated by its own Ed25519 signature, bound to this store and to an expiry (the
payload of docs/security.md), so a request carries nothing else to trust: an unsigned command is refused
(401) whatever the store's settings, and the server refuses to serve writes on an open store, which
authenticates nobody. Concurrent commands are gathered into one transaction (group commit, `GroupCommit`),
each keeping its own result or refusal. Errors are `{"error": {"code", "message"}}`: 400 bad input, 401 no or
bad signature, 403 not permitted for the actor's role, 409 refused by a ledger rule (its stable code), 413 a
body over the limit, 503 store failure; never a 500.
"""


import gc
import threading
import time
from typing import Any

from commands.groupcommit import SLOW_MS, GroupCommit, WriterTimeout
from commands.lane import BodyTimeout, CommandLane, body_timeout_answer, error_body
from commands.limits import (
    BACKLOG,
    COMMAND_WAIT_S,
    KEEP_ALIVE_S,
    MAX_BATCH_BYTES,
    MAX_BATCH_LINES,
    MAX_BODY_BYTES,
    MAX_CONNECTIONS,
    SHUTDOWN_S,
)
from ledger.errors import BadInput, LedgerError, Refused, StoreError

MAX_BAD_LINES_REPORTED = 20
UNAUTHENTICATED = {"unsigned", "bad_signature", "signature_expired", "no_public_key", "replayed", "unknown_actor",
                   "no_actor"}
SEES_EVERY_ACCOUNT = {"regulator", "exchange"}  # a firm (and a verifier) sees only its own accounts
ERROR_MEANINGS = {400: "Bad input", 401: "No or bad signature", 403: "Not permitted for the actor's role",
                  404: "No such thing (a firm, a year, a file, the checkpoint)",
                  408: "The body did not arrive in time", 409: "Refused by a ledger rule (its stable code)",
                  413: "Body over the limit",
                  503: "Store failure, the writer busy past the wait, or too many requests at once"}
_SIGNED_READ = (400, 401, 403, 503)
API_ERRORS = {("POST", "/v1/commands"): (400, 401, 403, 408, 409, 413, 503),
              ("POST", "/v1/commands/batch"): (400, 401, 403, 408, 409, 413, 503),
              ("GET", "/v1/balances"): _SIGNED_READ, ("GET", "/v1/history/{account}"): _SIGNED_READ,
              ("GET", "/v1/whoami"): _SIGNED_READ, ("GET", "/v1/audit/checkpoint"): (404, 503)}
HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}
FORBIDDEN = {"not_permitted", "not_own_account", "read_only"}
GC_THRESHOLDS = (20_000, 50, 100)  # the collector's, once the state is loaded and frozen (CPython's: 700, 10, 10)


def http_status(e: LedgerError) -> int:
    if isinstance(e, BadInput):
        return 400
    if isinstance(e, Refused):
        if e.code in UNAUTHENTICATED:
            return 401
        if e.code in FORBIDDEN:
            return 403
        return 409
    return 503


def store_busy(what: str) -> dict[str, Any]:
    """The answer to a request whose commands waited COMMAND_WAIT_S for the writer (WriterTimeout)."""
    return error_body("store_busy", f"the writer did not reach the {what} within {COMMAND_WAIT_S} s; it may yet"
                      " be recorded: send it again with the same command ids")


def create_app(store: str, *, read_only: bool = False, group_commit: bool = True,
               checkpoint: str | None = None) -> Any:
    """The ASGI application for the store at `store` (refuses writes on an open store unless read_only), with
    the public pages and open data (commands/pages) and the signed checkpoint file it publishes, if any."""
    import asyncio  # here, not at the top: the CLI defines `serve` without the server's imports
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from commands.importer import parse_line
    from ledger.registry import Registry
    from ledger.store import parse_store, store_exists

    cfg = parse_store(store)
    if not store_exists(cfg):
        raise StoreError(f"no store at {cfg.path or cfg.url}: create it with `carbon-ledger init` first")
    probe = Registry(cfg)
    try:
        if not probe.state.enforced and not read_only:
            raise BadInput(f"the store at {cfg.path or cfg.url} is open (not made with `init --regulator`): over"
                           " the network it would authenticate nobody; serve it with --read-only")
    finally:
        probe.close()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["reader"] = Registry(cfg)
        state["writer"] = None if read_only else GroupCommit(cfg, group=group_commit)
        try:
            await asyncio.to_thread(pages_source.at, None)  # the head's states read now, not by the first visitor
        except LedgerError:
            pass  # a page asked later reports it
        if state["writer"] is not None:
            await asyncio.to_thread(state["writer"].ready.wait, 60)
        # The states just read live as long as the server: out of the collector's sight (gc.freeze), and the
        # collector run less often, so that a request's garbage does not make it walk them again and again
        # (a full collection over the ledger's state is a pause every client waits on: the p99).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            if state["writer"] is not None:
                state["writer"].close()
            state["reader"].close()

    app = FastAPI(title="carbon-ledger", version="1", lifespan=lifespan,
                  description="The registry over HTTP: signed commands, public reads. Errors are"
                              ' {"error": {"code", "message"}}.')

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the errors this API answers (400 for a bad parameter, not FastAPI's 422)."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            schemas["Error"] = {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
            ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            for path, ops in doc.get("paths", {}).items():
                for method, op in ops.items():
                    answers = op.setdefault("responses", {})
                    answers.pop("422", None)
                    statuses = API_ERRORS.get((method.upper(), path),
                                              (400, 404, 503) if path.startswith("/data/") else (400, 503))
                    for status in statuses:
                        answers.setdefault(str(status), {"description": ERROR_MEANINGS[status], "content": ref})
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """A query or path parameter of the wrong type or missing: 400, in the API's error shape."""
        problems = [f"{'.'.join(str(x) for x in err.get('loc', ())[1:]) or 'request'}: {err.get('msg', 'invalid')}"
                    for err in exc.errors()[:5]]
        return JSONResponse(error_body("bad_input", "; ".join(problems) or "bad request"), status_code=400)

    @app.exception_handler(BodyTimeout)
    async def slow_body(_request: Request, _exc: BodyTimeout) -> JSONResponse:
        """A body that did not arrive within BODY_READ_S (CommandLane times every body's reading)."""
        return JSONResponse(body_timeout_answer(),
                            status_code=408)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        """An unknown path (404), a method a path does not take (405): the API's error shape too."""
        code = HTTP_ERROR_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    def fail(e: LedgerError) -> JSONResponse:
        return JSONResponse(error_body(e.code, e.message), status_code=http_status(e))

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        """The server answers (no store access): the HTTP layer's own limit under load. `writer` counts the
        transactions committed and the commands they held (group commit: fewer transactions than commands),
        the longest transaction in ms, and how many took over SLOW_MS (50): a commit the disk stalls holds up
        every command waiting behind it."""
        w = state["writer"]
        return {"ok": True, "writer": None if w is None else {
            "transactions": w.batches, "commands": w.commands, "slowest_ms": round(w.slowest_ms, 1),
            f"over_{SLOW_MS}_ms": w.slow}}

    @app.get("/v1/head")
    async def head() -> Any:
        """The last position, its hash, and the store's identity (what commands are signed for). Public."""
        try:
            reg = state["reader"]
            pos, h = await reading(reg.head)
            store_id = await reading(reg.recorder.hash_at, 1)
        except LedgerError as e:
            return fail(e)
        return {"position": pos, "hash": h, "store_id": store_id or ""}

    lock = threading.Lock()  # the reader's registry and read models, one request at a time
    from ledger.authority import MemoryNonces

    # One record of nonces for every process on the store (its ledger_nonces table); in memory where the
    # server may not write the store (--read-only).
    def claim_nonce(nonce: str, until: float, now: float) -> bool:
        return state["reader"].recorder.claim_nonce(nonce, until, now)

    if read_only:
        claim_nonce = MemoryNonces().claim  # the store may be on read-only media

    def reading(fn: Any, *a: Any) -> Any:
        def locked() -> Any:
            with lock:
                return fn(*a)

        return asyncio.to_thread(locked)

    def states(names: list[str], as_of: int | None, as_of_date: str | None = None) -> tuple[dict[str, Any], int]:
        from projections import runner

        rec = state["reader"].recorder
        if as_of is not None and as_of_date is not None:
            raise BadInput("as_of and as_of_date conflict: choose one")
        if as_of_date is not None:
            from ledger.units import parse_date

            as_of = runner.position_at_date(rec, parse_date(as_of_date, "as_of_date").isoformat())
        if as_of is not None:
            head_pos = rec.head()[0]
            if as_of < 0 or as_of > head_pos:
                raise BadInput(f"as_of {as_of} is outside 0..{head_pos}")
            return runner.as_of(rec, as_of, names), as_of
        sts, pos = runner.catch_up(rec, unsaved=[]) if read_only else runner.catch_up(rec)
        return {n: sts[n] for n in names}, pos

    async def caller(request: Request, required: bool) -> tuple[str | None, str | None]:
        """(actor, role) of a signed request; (None, None) for an unsigned one where that is allowed."""
        from ledger import signing
        from ledger.authority import check_request

        h = request.headers
        fields = [h.get(f"x-carbon-{k}") for k in ("actor", "timestamp", "nonce", "signature")]
        if not any(fields) and not required:
            return None, None
        if not all(fields):
            raise Refused("sign the request: X-Carbon-Actor, X-Carbon-Timestamp, X-Carbon-Nonce and"
                          " X-Carbon-Signature (docs/security.md)", code="unsigned")
        actor, ts, nonce, sig = fields
        body = await request.body()

        def check() -> str:
            reg = state["reader"]
            payload = signing.request_payload(reg.state.store_id, actor, request.method, request.url.path,
                                              request.url.query, body, ts, nonce)
            return check_request(reg.state, actor, ts, nonce, sig, payload, time.time(), claim_nonce)

        return actor, await reading(check)

    @app.get("/v1/whoami")
    async def whoami(request: Request) -> Any:
        """The actor of a signed request and its role (a client checks its key and its rights with it)."""
        try:
            actor, role = await caller(request, required=True)
        except LedgerError as e:
            return fail(e)
        return {"actor": actor, "role": role}

    @app.get("/v1/firms")
    async def firms() -> Any:
        """The registered firms (public, as the registry publishes its covered firms): id, name, sector, region."""
        def read() -> dict[str, Any]:
            reg = state["reader"]
            st = reg.state
            return {"position": st.position,
                    "firms": [{"firm_id": fid, "name": f.name, "sector": f.sector, "region": f.region}
                              for fid, f in sorted(st.firms.items())]}

        try:
            return await reading(read)
        except LedgerError as e:
            return fail(e)

    def own_accounts(actor: str) -> set[str]:
        st = state["reader"].state
        firm = st.actors[actor].firm_id
        return {a for a, acc in st.accounts.items() if firm is not None and (a == firm or acc.holder == firm)}

    from commands import pages

    pages_source = pages.Source(lambda: state["reader"], read_only, checkpoint)
    app.include_router(pages.router(pages_source, reading))

    @app.get("/v1/balances")
    async def balances(request: Request, account: str | None = None, as_of: int | None = None,
                       as_of_date: str | None = None) -> Any:
        """Holdings per account, unit and vintage. Signed: a firm sees its own accounts, the regulator all."""
        from projections.balances import account_rows, balance_rows, pending_rows, total_rows

        try:
            actor, role = await caller(request, required=True)

            def read() -> dict[str, Any]:
                sts, pos = states(["balances"], as_of, as_of_date)
                st = sts["balances"]
                mine = None if role in SEES_EVERY_ACCOUNT else own_accounts(actor)
                if account is not None:
                    if mine is not None and account not in mine:
                        raise Refused(f"actor {actor} ({role}) may not read account {account}", code="not_own_account")
                    if account not in st["accounts"]:
                        raise BadInput(f"account {account} does not exist (at position {pos})")
                rows = [r for r in balance_rows(st, account) if mine is None or r["account_id"] in mine]
                accounts = [r for r in account_rows(st, account) if mine is None or r["account_id"] in mine]
                pending = [r for r in pending_rows(st, account)
                           if mine is None or r["from_account"] in mine or r["to_account"] in mine]
                return {"position": pos, "balances": rows, "totals": total_rows(st), "accounts": accounts,
                        "pending": pending}

            return await reading(read)
        except LedgerError as e:
            return fail(e)

    @app.get("/v1/history/{account}")
    async def history(request: Request, account: str, as_of: int | None = None, as_of_date: str | None = None) -> Any:
        """Every movement of one account with its running balance, and the account's state. Signed: a firm reads
        its own accounts only. Answers as `history --json`."""
        from projections import runner
        from projections.balances import account_rows

        try:
            actor, role = await caller(request, required=True)

            def read() -> dict[str, Any]:
                if role not in SEES_EVERY_ACCOUNT and account not in own_accounts(actor):
                    raise Refused(f"actor {actor} ({role}) may not read account {account}", code="not_own_account")
                unsaved: list = []
                if read_only:  # the history rows not stored yet (a read-only store stores nothing)
                    runner.catch_up(state["reader"].recorder, unsaved=unsaved)
                sts, pos = states(["balances"], as_of, as_of_date)
                if account not in sts["balances"]["accounts"]:
                    raise BadInput(f"account {account} does not exist (at position {pos})")
                (acc,) = account_rows(sts["balances"], account)
                rows = runner.history(state["reader"].recorder, account, pos, unsaved)
                return {"position": pos, "account_id": account, "state": acc["state"], "account": acc,
                        "rows": [{"account_id": account, **r} for r in rows]}

            return await reading(read)
        except LedgerError as e:
            return fail(e)

    @app.get("/v1/market")
    async def market(unit: str = "CEA", vintage: int | None = None, as_of: int | None = None,
                     as_of_date: str | None = None) -> Any:
        """Market statistics (public): cumulative, by day (of one vintage with `vintage`), by year, by mode."""
        from projections.market import report

        def read() -> dict[str, Any]:
            sts, pos = states(["market"], as_of, as_of_date)
            return {"position": pos, **report(sts["market"], unit, vintage)}

        try:
            return await reading(read)
        except LedgerError as e:
            return fail(e)

    @app.get("/v1/compliance")
    async def compliance(year: int | None = None, firm: str | None = None, as_of: int | None = None,
                         as_of_date: str | None = None) -> Any:
        """Compliance per firm and period (public: what a regulator publishes)."""
        from projections.compliance import rows

        def read() -> dict[str, Any]:
            sts, pos = states(["compliance"], as_of, as_of_date)
            st = sts["compliance"]
            if firm is not None and firm not in st["firms"]:
                raise BadInput(f"firm {firm} does not exist (at position {pos})")
            if year is not None and year not in st["year_period"]:
                raise BadInput(f"no compliance year {year} has been opened (at position {pos})")
            return {"position": pos, "rows": rows(st, year, firm)}

        try:
            return await reading(read)
        except LedgerError as e:
            return fail(e)

    @app.get("/v1/coverage")
    async def coverage(year: int, national_total: int | None = None, as_of: int | None = None,
                       as_of_date: str | None = None) -> Any:
        """Firms and verified emissions per sector for a year (public)."""
        from projections.compliance import coverage as cov

        def read() -> dict[str, Any]:
            if national_total is not None and national_total < 1:
                raise BadInput("national_total is at least 1")
            sts, pos = states(["compliance"], as_of, as_of_date)
            return {"position": pos, **cov(sts["compliance"], year, national_total)}

        try:
            return await reading(read)
        except LedgerError as e:
            return fail(e)

    @app.get("/v1/rules")
    async def rules_in_force(year: int = 2024) -> Any:
        """The rules in force for a compliance year with their sources, the plans published in the store
        included (public: what `rules show --json` prints)."""
        from ledger import rules as r

        def read() -> dict[str, Any]:
            return r.describe(year, state["reader"].state.plan)

        try:
            return await reading(read)
        except LedgerError as e:
            return fail(e)

    @app.get("/v1/audit/export")
    async def export(request: Request, upto: int | None = None) -> Any:
        """The log as JSON lines. Public: each event's position, type, time and hashes (to pin and compare
        heads); signed by a regulator: the whole catalogue lines, to recompute the chain and re-execute."""
        from fastapi.responses import StreamingResponse

        from projections.audit import export as lines

        try:
            _actor, role = await caller(request, required=False)
        except LedgerError as e:
            return fail(e)
        public = ("position", "type", "recorded_at", "prev_hash", "hash")

        def stream() -> Any:
            import orjson

            for line in lines(state["reader"].recorder, upto):
                if role == "regulator":
                    yield line + b"\n"
                else:
                    e = orjson.loads(line)
                    yield orjson.dumps({k: e[k] for k in public}) + b"\n"

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @app.post("/v1/commands/batch")
    async def batch(request: Request, on_refusal: str = "stop") -> Any:
        """JSON lines of signed commands, with import's semantics: every line is checked before anything is
        recorded (400 naming the bad lines), then they run in order in one transaction; a refusal is reported
        with its line and stops the rest (on_refusal=stop) or not (continue). Answers as `import --json`."""
        if state["writer"] is None:
            return fail(Refused("this server serves reads only", code="read_only"))
        if on_refusal not in ("stop", "continue"):
            return fail(BadInput("on_refusal is stop or continue"))
        body = await request.body()
        if len(body) > MAX_BATCH_BYTES:
            return JSONResponse(error_body("too_large", f"a batch is at most {MAX_BATCH_BYTES} bytes"),
                                status_code=413)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return fail(BadInput("the body is not UTF-8"))
        numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(numbered) > MAX_BATCH_LINES:
            return JSONResponse(error_body("too_large", f"a batch is at most {MAX_BATCH_LINES} commands"),
                                status_code=413)
        cmds, bad = [], []
        for n, line in numbered:
            try:
                cmd = parse_line(n, line)
                if cmd.signature is None or not cmd.actor:
                    raise BadInput(f"line {n}: every command sent to the server is signed and names its actor")
                cmds.append((n, cmd))
            except BadInput as e:
                bad.append(e.message)
        if bad:
            body_ = error_body("bad_input", f"{len(bad)} bad lines; nothing was appended")
            body_["error"]["lines"] = bad[:MAX_BAD_LINES_REPORTED]
            return JSONResponse(body_, status_code=400)
        try:
            results = await state["writer"].submit_batch([c for _n, c in cmds], on_refusal)
            head_pos, head_hash = await reading(state["reader"].head)
        except WriterTimeout:
            return JSONResponse(store_busy("batch"), status_code=503)
        except LedgerError as e:
            return fail(e)
        refused = [{"line": n, "command_id": c.command_id, "error": {"code": r.code, "message": r.message}}
                   for (n, c), r in zip(cmds, results) if isinstance(r, LedgerError)]
        done = [r for r in results if not isinstance(r, LedgerError)]
        return {"lines": len(cmds), "applied": sum(not r.replayed for r in done),
                "already_applied": sum(r.replayed for r in done), "refused": refused,
                "stopped": bool(refused) and on_refusal == "stop", "position": head_pos, "hash": head_hash}

    async def run_command(body: bytes) -> tuple[int, dict[str, Any]]:
        """One command's body (POST /v1/commands) to its HTTP status and answer."""
        if state["writer"] is None:
            return 403, error_body("read_only", "this server serves reads only")
        if len(body) > MAX_BODY_BYTES:
            return 413, error_body("too_large", f"a command is at most {MAX_BODY_BYTES} bytes")
        try:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput("the body is not UTF-8") from None
            cmd = parse_line(1, text)
            if cmd.signature is None:
                raise Refused("every command sent to the server is signed by its actor (signature,"
                              " signature_expires)", code="unsigned")
            if not cmd.actor:
                raise Refused("name the actor that signed the command (actor)", code="no_actor")
            outcome = await state["writer"].submit(cmd)
        except WriterTimeout:
            return 503, store_busy("command")
        except LedgerError as e:
            return http_status(e), error_body(e.code, e.message)
        return 200, {**outcome.result, "replayed": outcome.replayed}

    @app.post("/v1/commands")
    async def command(request: Request) -> Any:
        """One command in the import format (command, command_id, its arguments) with actor, signature and
        signature_expires; the answer is the CLI's --json result. Repeating a command id appends nothing."""
        status, answer = await run_command(await request.body())
        return JSONResponse(answer, status_code=status)

    return CommandLane(app, run_command)


def serve(store: str, host: str, port: int, workers: int, read_only: bool, group_commit: bool,
          certfile: str | None, keyfile: str | None, checkpoint: str | None = None) -> None:
    """Check the store, then run uvicorn (one process, or `workers` processes on the same store)."""
    import os

    import uvicorn

    create_app(store, read_only=read_only, group_commit=group_commit)  # refuses here, with one line
    if (certfile is None) != (keyfile is None):
        raise BadInput("--certfile and --keyfile go together")
    os.environ["CARBON_LEDGER_SERVE"] = f"{store}\n{int(read_only)}\n{int(group_commit)}\n{checkpoint or ''}"
    uvicorn.run("commands.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                ssl_certfile=certfile, ssl_keyfile=keyfile, log_level="warning", limit_concurrency=MAX_CONNECTIONS,
                backlog=BACKLOG, timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=SHUTDOWN_S,
                # No access log (at log level warning it was formatted per request, then dropped), no trust in
                # X-Forwarded-* (nothing here uses a client's address; a proxy in front logs its own), no
                # `server: uvicorn` banner: 5-8% of the event loop's time per command (benchmarks/load.py).
                access_log=False, proxy_headers=False, server_header=False)


def app_from_env() -> Any:
    """The application of `serve`, made again in each worker process from what `serve` checked."""
    import os

    store, read_only, group, checkpoint = os.environ["CARBON_LEDGER_SERVE"].split("\n")
    return create_app(store, read_only=read_only == "1", group_commit=group == "1", checkpoint=checkpoint or None)


def _click_command() -> Any:
    import click

    from commands.context import Ctx, pass_ctx

    @click.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                  help="Server processes on the same store (their writers take turns; one gapless chain).")
    @click.option("--read-only", is_flag=True, help="Serve reads only (any store, an open one too).")
    @click.option("--no-group-commit", is_flag=True, help="One transaction per command (for comparison).")
    @click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM).")
    @click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM).")
    @click.option("--checkpoint", type=click.Path(dir_okay=False),
                  help="A signed checkpoint (`audit checkpoint`) to publish on the pages and /v1/audit/checkpoint;"
                       " read on each request, so replacing the file publishes a new one.")
    @pass_ctx
    def serve_command(c: Ctx, host: str, port: int, workers: int, read_only: bool, no_group_commit: bool,
                      certfile: str | None, keyfile: str | None, checkpoint: str | None) -> None:
        """Serve the registry over HTTP: signed commands (POST /v1/commands), the head, health, the public
        pages (/, /market, /compliance/YEAR, /firms/ID, /coverage/YEAR, /audit) and open data (/data/v1/);
        OpenAPI at /openapi.json. Writes only on a store made with `init --regulator`."""
        import os

        from ledger.store import parse_store

        c.need_local()
        serve(parse_store(c.store).url, host, port, workers, read_only, not no_group_commit, certfile, keyfile,
              os.path.abspath(checkpoint) if checkpoint else None)

    return serve_command


serve_command = _click_command()
