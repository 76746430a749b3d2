"""`carbon-ledger serve`: the registry over HTTP (FastAPI on uvicorn), on the same registry methods as the CLI.

Every command is authenticated by its own Ed25519 signature, bound to this store and to an expiry (the
payload of docs/security.md), so a request carries nothing else to trust: an unsigned command is refused
(401) whatever the store's settings, and the server refuses to serve writes on an open store, which
authenticates nobody. Concurrent commands are gathered into one transaction (group commit, `GroupCommit`),
each keeping its own result or refusal. Errors are `{"error": {"code", "message"}}`: 400 bad input, 401 no or
bad signature, 403 not permitted for the actor's role, 409 refused by a ledger rule (its stable code), 413 a
body over the limit, 503 store failure; never a 500.
"""


import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ledger.errors import BadInput, LedgerError, Refused, StoreError

# Limits, each named once (docs/security.md lists them with the rest of the threat model).
MAX_BODY_BYTES = 64 * 1024  # one command: the import's line limit
GROUP_MAX_COMMANDS = 500  # commands gathered into one transaction at most
GROUP_MAX_WAIT_S = 0.002  # how long the first command of a group waits for others to join it
UNAUTHENTICATED = {"unsigned", "bad_signature", "signature_expired", "no_public_key"}
FORBIDDEN = {"not_permitted", "not_own_account", "unknown_actor", "no_actor"}


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
    command: Any
    future: Future


class GroupCommit:
    """One writer thread with its own Registry: it takes the commands waiting in its queue (up to
    GROUP_MAX_COMMANDS, waiting at most GROUP_MAX_WAIT_S for more after the first) and runs them as one
    batch, in arrival order, each with its own outcome (a refusal records nothing and stops nothing).
    With group=False each command is its own transaction (the benchmark's baseline)."""

    def __init__(self, store: Any, group: bool = True) -> None:
        from ledger.registry import Registry

        self.registry = Registry(store)
        self.group = group
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0  # transactions committed
        self.commands = 0  # commands they held
        self.thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.thread.start()

    def submit(self, command: Any) -> Future:
        fut: Future = Future()
        self.jobs.put(_Job(command, fut))
        return fut

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            group = [job]
            if self.group:
                deadline = time.monotonic() + GROUP_MAX_WAIT_S
                while len(group) < GROUP_MAX_COMMANDS:
                    try:
                        more = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if more is None:
                        self.jobs.put(None)
                        break
                    group.append(more)
            self._commit(group)

    def _commit(self, group: list[_Job]) -> None:
        try:
            results = self.registry.execute_batch([j.command for j in group], on_refusal="continue")
        except LedgerError as e:
            for j in group:
                j.future.set_exception(e)
            return
        except Exception as e:  # noqa: BLE001 - a store that failed under us: each request answers 503, never 500
            for j in group:
                j.future.set_exception(StoreError(f"store failure: {type(e).__name__}: {e}"))
            return
        self.batches += 1
        self.commands += len(group)
        for j, r in zip(group, results, strict=True):
            if isinstance(r, LedgerError):
                j.future.set_exception(r)
            else:
                j.future.set_result(r)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=10)
        self.registry.close()


def create_app(store: str, *, read_only: bool = False, group_commit: bool = True) -> Any:
    """The ASGI application for the store at `store` (refuses writes on an open store unless read_only)."""
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
            yield
        finally:
            if state["writer"] is not None:
                state["writer"].close()
            state["reader"].close()

    app = FastAPI(title="carbon-ledger", version="1", lifespan=lifespan,
                  description="The registry over HTTP: signed commands, public reads. Errors are"
                              ' {"error": {"code", "message"}}.')

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
            pos, h = await asyncio.to_thread(reg.head)
            store_id = await asyncio.to_thread(reg.recorder.hash_at, 1)
        except LedgerError as e:
            return fail(e)
        return {"position": pos, "hash": h, "store_id": store_id or ""}

    @app.post("/v1/commands")
    async def command(request: Request) -> Any:
        """One command in the import format (command, command_id, its arguments) with actor, signature and
        signature_expires; the answer is the CLI's --json result. Repeating a command id appends nothing."""
        if state["writer"] is None:
            return JSONResponse(error_body("read_only", "this server serves reads only"), status_code=403)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse(error_body("too_large", f"a command is at most {MAX_BODY_BYTES} bytes"),
                                status_code=413)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return fail(BadInput("the body is not UTF-8"))
        try:
            cmd = parse_line(1, text)
            if cmd.signature is None:
                raise Refused("every command sent to the server is signed by its actor (signature,"
                              " signature_expires)", code="unsigned")
            if not cmd.actor:
                raise Refused("name the actor that signed the command (actor)", code="no_actor")
            outcome = await asyncio.wrap_future(state["writer"].submit(cmd))
        except LedgerError as e:
            return fail(e)
        return {**outcome.result, "replayed": outcome.replayed}

    return app


def serve(store: str, host: str, port: int, workers: int, read_only: bool, group_commit: bool,
          certfile: str | None, keyfile: str | None) -> None:
    """Check the store, then run uvicorn (one process, or `workers` processes on the same store)."""
    import os

    import uvicorn

    create_app(store, read_only=read_only, group_commit=group_commit)  # refuses here, with one line
    if (certfile is None) != (keyfile is None):
        raise BadInput("--certfile and --keyfile go together")
    os.environ["CARBON_LEDGER_SERVE"] = f"{store}\n{int(read_only)}\n{int(group_commit)}"
    uvicorn.run("commands.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                ssl_certfile=certfile, ssl_keyfile=keyfile, log_level="warning")


def app_from_env() -> Any:
    """The application of `serve`, made again in each worker process from what `serve` checked."""
    import os

    store, read_only, group = os.environ["CARBON_LEDGER_SERVE"].split("\n")
    return create_app(store, read_only=read_only == "1", group_commit=group == "1")


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
    @pass_ctx
    def serve_command(c: Ctx, host: str, port: int, workers: int, read_only: bool, no_group_commit: bool,
                      certfile: str | None, keyfile: str | None) -> None:
        """Serve the registry over HTTP: signed commands (POST /v1/commands), the head, health; OpenAPI at
        /openapi.json. Writes only on a store made with `init --regulator`."""
        from ledger.store import parse_store

        serve(parse_store(c.store).url, host, port, workers, read_only, not no_group_commit, certfile, keyfile)

    return serve_command


serve_command = _click_command()
