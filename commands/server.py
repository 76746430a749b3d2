"""`carbon-ledger serve`: the registry over HTTP (FastAPI on uvicorn), on the same registry methods as the CLI.

Every command is authenticated by its own Ed25519 signature, bound to this store and to an expiry (the
payload of docs/security.md), so a request carries nothing else to trust: an unsigned command is refused
(401) whatever the store's settings, and the server refuses to serve writes on an open store, which
authenticates nobody. Concurrent commands are gathered into one transaction (group commit, `GroupCommit`),
each keeping its own result or refusal. Errors are `{"error": {"code", "message"}}`: 400 bad input, 401 no or
bad signature, 403 not permitted for the actor's role, 409 refused by a ledger rule (its stable code), 413 a
body over the limit, 503 store failure; never a 500.
"""


import collections
import gc
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from ledger.errors import BadInput, LedgerError, Refused, StoreError

# Limits, each named once (docs/security.md lists them with the rest of the threat model).
MAX_BODY_BYTES = 64 * 1024  # one command: the import's line limit
MAX_BATCH_BYTES = 16 * 1024 * 1024  # a batch of JSON lines
MAX_BATCH_LINES = 10_000  # commands in one batch
MAX_BAD_LINES_REPORTED = 20
GROUP_MAX_COMMANDS = 500  # commands gathered into one transaction at most
MAX_REQUESTS_IN_FLIGHT = 500  # requests being answered at once; beyond, 503 server_busy (with Retry-After)
MAX_CONNECTIONS = 1000  # open connections (uvicorn's limit_concurrency); beyond, uvicorn's own plain-text 503
BACKLOG = 2048  # connections waiting to be accepted
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this
BODY_READ_S = 10  # a request's body arrives within this from its first read, or 408 (a trickling client)
COMMAND_WAIT_S = 30  # a command waits this long for the writer, then 503 store_busy (send it again, same id)
SHUTDOWN_S = 10  # on SIGTERM, requests in progress get this long to finish
UNAUTHENTICATED = {"unsigned", "bad_signature", "signature_expired", "no_public_key", "replayed", "unknown_actor",
                   "no_actor"}
SEES_EVERY_ACCOUNT = {"regulator", "exchange"}  # a firm (and a verifier) sees only its own accounts
ERROR_MEANINGS = {400: "Bad input", 401: "No or bad signature", 403: "Not permitted for the actor's role",
                  404: "No such thing (a firm, a year, a file, the checkpoint)",
                  408: "The body did not arrive in time", 409: "Refused by a ledger rule (its stable code)",
                  413: "Body over the limit", 503: "Store failure, the writer busy past the wait, or too many requests at once"}
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


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@dataclass
class _Job:
    commands: list[Any]
    future: Any  # an asyncio.Future of the request's event loop, settled from the writer thread through `loop`
    loop: Any
    on_refusal: str | None = None  # None: one command that may share a transaction; else a batch, alone


def _settle(outcomes: list[tuple[Any, Any]]) -> None:
    """In the event loop: each request's future gets its outcome (a LedgerError is raised in the request)."""
    for fut, r in outcomes:
        if fut.done():  # the client went away and its request was cancelled
            continue
        if isinstance(r, BaseException):
            fut.set_exception(r)
        else:
            fut.set_result(r)


class BodyTimeout(TimeoutError):
    """A request's body did not all arrive within BODY_READ_S: 408."""


class WriterTimeout(TimeoutError):
    """A command waited COMMAND_WAIT_S for the writer: 503 store_busy (it may yet be recorded)."""


class _Expiry:
    """Deadlines of one length for many waits, at the cost of one timer a second rather than one per wait
    (asyncio.wait_for costs a task wrapper, callbacks and a timer on every request). Each wait is queued
    with its deadline, so the queue is in deadline order; a sweep each second while any wait is queued drops
    what has finished and expires what is due (within a second of its deadline). A wait has `done()`."""

    def __init__(self, seconds: float, expire: Any) -> None:
        self.seconds = seconds
        self.expire = expire
        self.waits: collections.deque[tuple[float, Any]] = collections.deque()
        self.loop: Any = None
        self.timer: Any = None

    def add(self, loop: Any, wait: Any) -> None:
        if loop is not self.loop:  # a new event loop (a test's): what waited on the old one is not ours
            self.loop, self.timer = loop, None
            self.waits.clear()
        self.waits.append((loop.time() + self.seconds, wait))
        if self.timer is None:
            self.timer = loop.call_later(1.0, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        waits = self.waits
        while waits:
            deadline, wait = waits[0]
            if not wait.done():
                if deadline > now:
                    break
                self.expire(wait)
            waits.popleft()
        self.timer = self.loop.call_later(1.0, self._sweep) if waits else None


def _writer_timeout(fut: Any) -> None:
    fut.set_exception(WriterTimeout())


class GroupCommit:
    """One writer thread with its own Registry. It runs the commands waiting in its queue as one batch (up to
    GROUP_MAX_COMMANDS, in arrival order), each with its own outcome (a refusal records nothing and stops
    nothing), then takes what queued meanwhile: under load a group is every command that arrived while the
    last one was deciding and committing, and a lone command waits for nobody. The outcomes of a group go
    back to the event loop in one call. Ahead of the writer, a checker thread checks each command's signature
    (`_check`), so the writer mostly decides and commits. With group=False each command is its own transaction
    (the benchmark's baseline)."""

    def __init__(self, store: Any, group: bool = True) -> None:
        from ledger.registry import Registry

        self.registry = Registry(store)
        self.group = group
        self.incoming: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # to the signature checker
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # checked, to the writer
        self.expiry = _Expiry(COMMAND_WAIT_S, _writer_timeout)  # a wait past it raises WriterTimeout
        self.ready = threading.Event()  # set once the writer has read the state
        self.batches = 0  # transactions committed
        self.commands = 0  # commands they held
        self.checker = threading.Thread(target=self._check, name="group-commit-signatures", daemon=True)
        self.thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.checker.start()
        self.thread.start()

    def submit(self, command: Any) -> Any:
        """One command, from a coroutine; await the result: its Outcome (or its LedgerError raised; WriterTimeout
        after COMMAND_WAIT_S)."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.incoming.put(_Job([command], fut, loop))
        self.expiry.add(loop, fut)
        return fut

    def submit_batch(self, commands: list[Any], on_refusal: str) -> Any:
        """Commands with import's semantics, in a transaction of their own; the result is the list of outcomes
        (a refusal stops the rest with on_refusal="stop")."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.incoming.put(_Job(commands, fut, loop, on_refusal))
        self.expiry.add(loop, fut)
        return fut

    def _check(self) -> None:
        """Check each command's signature ahead of the writer, in arrival order, and pass it on: libsodium runs
        without the GIL, so the writer decides and commits the last group meanwhile, and finds the signature
        already checked (signing.preverify). The key is the actor's as the writer last knew it; a key the
        group changes, or anything odd, only means the writer checks that signature itself."""
        from ledger import signing

        while True:
            job = self.incoming.get()
            for cmd in () if job is None else job.commands:
                if cmd.signature is None or not cmd.checked or cmd.name == "init":
                    continue
                context = self.registry.signing_context(cmd.actor)
                if context is None:
                    continue
                try:
                    signing.preverify(context[1], cmd.signature, signing.command_payload(
                        context[0], cmd.name, cmd.command_id, cmd.args, cmd.expires))
                except Exception:  # noqa: BLE001, S112 - the writer checks it and answers
                    continue
            self.jobs.put(job)
            if job is None:
                return

    def _run(self) -> None:
        try:
            self.registry.state  # noqa: B018 - the fold read now, not while the first command waits
        except Exception:  # noqa: BLE001, S110 - the first command meets it again, and answers it
            pass
        self.ready.set()
        held: _Job | None = None  # a batch that arrived while a group was gathered: it runs next, alone
        stopping = False
        while True:
            if held is not None:
                job, held = held, None
            elif stopping:
                return
            else:
                job = self.jobs.get()
            if job is None:
                return
            if job.on_refusal is not None:
                self._commit_batch(job)
                continue
            group = [job]
            while self.group and len(group) < GROUP_MAX_COMMANDS:
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                if more.on_refusal is not None:
                    held = more
                    break
                group.append(more)
            self._commit(group)

    @staticmethod
    def _answer(outcomes: list[tuple[_Job, Any]]) -> None:
        by_loop: dict[Any, list[tuple[Any, Any]]] = {}
        for job, r in outcomes:
            by_loop.setdefault(job.loop, []).append((job.future, r))
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, pairs)
            except RuntimeError:  # the loop is closed: the server is stopping and nobody waits
                pass

    def _execute(self, jobs: list[_Job], commands: list[Any], on_refusal: str) -> list[Any] | None:
        try:
            results = self.registry.execute_batch(commands, on_refusal=on_refusal)
        except LedgerError as e:
            self._answer([(j, e) for j in jobs])
            return None
        except Exception as e:  # noqa: BLE001 - a store that failed under us: each request answers 503, never 500
            failure = StoreError(f"store failure: {type(e).__name__}: {e}")
            self._answer([(j, failure) for j in jobs])
            return None
        self.batches += 1
        self.commands += len(commands)
        return results

    def _commit(self, group: list[_Job]) -> None:
        results = self._execute(group, [j.commands[0] for j in group], "continue")
        if results is not None:
            self._answer(list(zip(group, results, strict=True)))

    def _commit_batch(self, job: _Job) -> None:
        results = self._execute([job], job.commands, job.on_refusal or "stop")
        if results is not None:
            self._answer([(job, results)])

    def close(self) -> None:
        self.incoming.put(None)  # the checker passes it on to the writer
        self.checker.join(timeout=10)
        self.thread.join(timeout=10)
        self.registry.close()


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
        return JSONResponse(error_body("request_timeout", f"the body did not arrive within {BODY_READ_S} s"),
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
        transactions committed and the commands they held (group commit: fewer transactions than commands)."""
        w = state["writer"]
        return {"ok": True, "writer": None if w is None else {"transactions": w.batches, "commands": w.commands}}

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
            return JSONResponse(error_body("store_busy", f"the writer did not reach the batch within"
                                           f" {COMMAND_WAIT_S} s; it may yet be recorded: send it again"),
                                status_code=503)
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
            return 503, error_body("store_busy", f"the writer did not reach the command within {COMMAND_WAIT_S} s;"
                                   " it may yet be recorded: send it again with the same command_id")
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


class _BodyRead:
    """One request's body being read: the task reading it, whether it still is, and whether it ran out of time."""

    __slots__ = ("expired", "reading", "task")

    def __init__(self, task: Any) -> None:
        self.task, self.reading, self.expired = task, True, False

    def done(self) -> bool:  # read whole, or the request ended without reading it all (413 stops early)
        return not self.reading or self.task.done()


def _body_timeout(read: _BodyRead) -> None:
    read.expired = True
    read.task.cancel()


BODY_EXPIRY = _Expiry(BODY_READ_S, _body_timeout)


def _timed_body(receive: Any) -> Any:
    """`receive`, with the body's reading bounded: BODY_READ_S from the first read to its last part (BodyTimeout
    after that, within a second). Once the body is whole, receive waits untimed (a streamed answer listens for a
    disconnect). A body that came with its headers costs no timer: the reading is queued in BODY_EXPIRY, whose
    sweep cancels a read still under way past its deadline."""
    import asyncio

    read: _BodyRead | None = None

    async def timed() -> dict[str, Any]:
        nonlocal read
        if read is None:
            read = _BodyRead(asyncio.current_task())
            BODY_EXPIRY.add(asyncio.get_running_loop(), read)
        elif not read.reading:
            return await receive()
        try:
            message = await receive()
        except asyncio.CancelledError:
            if read.expired:
                read.task.uncancel()
                raise BodyTimeout() from None
            raise
        if message["type"] != "http.request" or not message.get("more_body", False):
            read.reading = False
        return message

    return timed


class CommandLane:
    """The ASGI application `serve` runs: FastAPI's, except that POST /v1/commands, the request a registry
    takes thousands of a second, goes straight to the handler its FastAPI route calls (`run_command`), past
    the routing through every page and the dependency solving (benchmarks/load.py measures the difference).
    Everything else, the lifespan included, is FastAPI's; `api` is the FastAPI application."""

    def __init__(self, api: Any, run_command: Any) -> None:
        self.api = api
        self.run_command = run_command
        self.in_flight = 0  # http requests being answered

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        if self.in_flight >= MAX_REQUESTS_IN_FLIGHT:
            await _answer(send, 503, error_body("server_busy", f"{MAX_REQUESTS_IN_FLIGHT} requests are being"
                                                " answered; send it again shortly"), ((b"retry-after", b"1"),))
            return
        self.in_flight += 1
        try:
            await self._http(scope, _timed_body(receive), send)
        finally:
            self.in_flight -= 1

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] != "/v1/commands" or scope["method"] != "POST":
            await self.api(scope, receive, send)
            return
        body = b""
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > MAX_BODY_BYTES or not message.get("more_body", False):
                    break  # run_command refuses a body over the limit without reading the rest
        except BodyTimeout:
            status, answer = 408, error_body("request_timeout", f"the body did not arrive within {BODY_READ_S} s")
        else:
            status, answer = await self.run_command(body)
        await _answer(send, status, answer)


async def _answer(send: Any, status: int, answer: dict[str, Any], headers: tuple = ()) -> None:
    """A JSON answer, sent straight (ASGI)."""
    import orjson

    payload = orjson.dumps(answer)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


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
                backlog=BACKLOG, timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=SHUTDOWN_S)


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
