"""The ASGI front of `carbon-ledger serve`: the answer shape, bounded body reads, requests in flight, and the
straight lane for POST /v1/commands."""

from __future__ import annotations

from typing import Any

from commands.groupcommit import Expiry
from commands.limits import BODY_READ_S, MAX_BODY_BYTES, MAX_REQUESTS_IN_FLIGHT


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class BodyTimeout(TimeoutError):
    """A request's body did not all arrive within BODY_READ_S: 408."""


def body_timeout_answer() -> dict[str, Any]:
    return error_body("request_timeout", f"the body did not arrive within {BODY_READ_S} s")


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


BODY_EXPIRY = Expiry(BODY_READ_S, _body_timeout)


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
            status, answer = 408, body_timeout_answer()
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
