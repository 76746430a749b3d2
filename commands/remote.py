"""The CLI as a client of `carbon-ledger serve`: `--store https://HOST:PORT` (or http:// to a loopback address).

Writes are built as for a local store (the command's name, its arguments normalized by the input models, a
command id) and signed here with the store-bound payload of ledger.signing, the store's identity taken from
GET /v1/head; then POST /v1/commands (import: /v1/commands/batch). Reads are GET requests, signed
(X-Carbon-Actor, -Timestamp, -Nonce, -Signature over ledger.signing.request_payload) when --as and --key are
given; commands/read.py renders their answers with the same functions as a local read. HTTP errors keep the
CLI's exit codes: 400 and 413 -> 2, 401, 403 and 409 -> 1 (with the refusal's code), 503 and anything else
-> 3; a server that cannot be reached -> 3. httpx is imported only here, when a remote store is used.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ledger.errors import BadInput, LedgerError, Refused, StoreError

SIGNATURE_LIFETIME = dt.timedelta(minutes=10)  # as ledger.registry.SIGNATURE_LIFETIME (not imported: it is slow)
TIMEOUT = dict(connect=10.0, read=120.0, write=60.0, pool=10.0)
CACERT_ENV = "CARBON_LEDGER_CACERT"


def is_remote(store: str | None) -> bool:
    return bool(store) and store.startswith(("http://", "https://"))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The server's base URL without a trailing slash; plain http only to a loopback address."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise BadInput(f"store {url!r}: name the server, https://HOST:PORT")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadInput(f"store {url!r}: a server is https://HOST:PORT, without a path")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise BadInput(f"store {url!r}: the port is not a number in 0..65535") from None
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise BadInput(f"store {url!r}: plain http only to a loopback address (127.0.0.1, ::1, localhost);"
                       " use https://")
    return f"{parts.scheme}://{parts.netloc}"


def remote_error(status: int, code: str, message: str) -> LedgerError:
    """The error the server answered with, as the LedgerError a local store raises for it: 400 and 413 bad
    input (exit 2); 401, 403 and 409 refused (exit 1, the refusal's code); anything else a store failure (3)."""
    if status in (400, 413):
        return BadInput(message, code=code)
    if status in (401, 403, 409):
        return Refused(message, code=code)
    return StoreError(message, code=code)


def error_for_code(code: str, message: str) -> LedgerError:
    """A refusal inside a batch answer (which carries its code, not its status), as a LedgerError."""
    if code == "bad_input":
        return BadInput(message)
    if code in ("store_error", "integrity", "conflict"):
        return StoreError(message, code=code)
    return Refused(message, code=code)


@dataclass
class RemoteOutcome:
    """What the server answered for one command: the fields commands/append.py's _report reads."""

    result: dict[str, Any]
    replayed: bool = False
    position: int = 0
    command_id: str = ""
    events: list[Any] = field(default_factory=list)


def _now_text(delta: dt.timedelta = dt.timedelta(0)) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


class Client:
    """One server, as one actor with one key (either may be missing: then requests go unsigned)."""

    def __init__(self, url: str, actor: str | None, key_path: str | None, cacert: str | None = None) -> None:
        self.url = check_url(url)
        self.actor = actor
        self.key_path = key_path
        self.cacert = cacert or os.environ.get(CACERT_ENV) or None
        self._key: Any = None
        self._http: Any = None
        self._store_id: str | None = None

    # ---- plumbing ---------------------------------------------------------------------------------
    @property
    def key(self) -> Any:
        if self._key is None and self.key_path:
            from ledger import signing

            self._key = signing.load_private(self.key_path)
        return self._key

    @property
    def http(self) -> Any:
        if self._http is None:
            import httpx

            verify: Any = True
            if self.cacert:
                import ssl

                try:
                    verify = ssl.create_default_context(cafile=self.cacert)
                except (OSError, ssl.SSLError) as e:
                    raise BadInput(f"cannot read CA certificate {self.cacert}: {e}") from None
            self._http = httpx.Client(base_url=self.url, verify=verify, timeout=httpx.Timeout(**TIMEOUT),
                                      headers={"User-Agent": "carbon-ledger-cli"})
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _send(self, method: str, path: str, params: dict[str, Any] | None = None, body: bytes = b"",
              signed: bool = True, stream: bool = False) -> Any:
        import httpx

        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, quote_via=quote)
        headers = {}
        if signed and self.actor and self.key_path:
            headers = self._read_headers(method, path, query, body)
        target = path + (f"?{query}" if query else "")
        try:
            req = self.http.build_request(method, target, content=body or None, headers=headers)
            r = self.http.send(req, stream=stream)
        except httpx.TransportError as e:
            raise StoreError(f"cannot reach {self.url}: {_reason(e)}") from None
        if r.status_code >= 400:
            if stream:
                r.read()
            raise self._error(r)
        return r

    def _error(self, r: Any) -> LedgerError:
        code, message, lines = "http_error", f"{self.url} answered {r.status_code}", []
        try:
            err = r.json()["error"]
            code, message = str(err["code"]), str(err["message"])
            lines = [str(x) for x in err.get("lines", [])]
        except Exception:  # noqa: BLE001 - not a carbon-ledger server's error body: say the status
            text = r.text.strip().splitlines()
            if text:
                message += f": {text[0][:200]}"
        e = remote_error(r.status_code, code, message)
        e.lines = lines  # type: ignore[attr-defined] - a batch's bad lines, printed before the error
        return e

    def _read_headers(self, method: str, path: str, query: str, body: bytes) -> dict[str, str]:
        from ledger import signing

        ts, nonce = _now_text(), uuid.uuid4().hex
        payload = signing.request_payload(self.store_id(), self.actor or "", method, path, query, body, ts, nonce)
        return {"X-Carbon-Actor": self.actor or "", "X-Carbon-Timestamp": ts, "X-Carbon-Nonce": nonce,
                "X-Carbon-Signature": signing.sign(self.key, payload)}

    def _json(self, r: Any) -> Any:
        try:
            return r.json()
        except ValueError:
            raise StoreError(f"{self.url} answered something that is not JSON (is it a carbon-ledger server?)") from None

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self._send("GET", path, params))

    # ---- what the commands use ----------------------------------------------------------------------
    def store_id(self) -> str:
        if self._store_id is None:
            self._store_id = str(self._json(self._send("GET", "/v1/head", signed=False)).get("store_id", ""))
        return self._store_id

    def head(self) -> tuple[int, str]:
        h = self._json(self._send("GET", "/v1/head", signed=False))
        self._store_id = h.get("store_id", self._store_id)
        return int(h["position"]), str(h["hash"])

    def whoami(self) -> dict[str, Any]:
        return self.get("/v1/whoami")

    def firms(self) -> list[dict[str, Any]]:
        return self.get("/v1/firms")["firms"]

    def export(self, upto: int | None) -> Any:
        """The export's lines (bytes, without their newline), as the server streams them."""
        r = self._send("GET", "/v1/audit/export", {"upto": upto}, stream=True)
        try:
            for line in r.iter_lines():
                if line:
                    yield line.encode()
        finally:
            r.close()

    def signed_line(self, name: str, args: dict[str, Any], command_id: str, actor: str | None,
                    signature: str | None = None, expires: str | None = None) -> dict[str, Any]:
        """A command in the import format, signed with the key for this server's store unless it is already."""
        from ledger import signing

        line: dict[str, Any] = {"command": name, "command_id": command_id, **args}
        if actor:
            line["actor"] = actor
        if signature is None and self.key_path:
            expires = _now_text(SIGNATURE_LIFETIME)
            signature = signing.sign_command(self.key, self.store_id(), name, command_id, args, expires)
        if signature is not None:
            line["signature"], line["signature_expires"] = signature, expires
        return line

    def execute(self, name: str, args: dict[str, Any], command_id: str | None) -> RemoteOutcome:
        """One command: normalized here by the input models (bad input exits 2 before anything is sent)."""
        import orjson

        from ledger.inputs import parse_command
        from ledger.units import parse_command_id

        norm = parse_command(name, args)
        cid = parse_command_id(command_id) if command_id else uuid.uuid4().hex
        line = self.signed_line(name, norm, cid, self.actor)
        body = self._json(self._send("POST", "/v1/commands", body=orjson.dumps(line), signed=False))
        replayed = bool(body.pop("replayed", False))
        return RemoteOutcome(body, replayed, int(body.get("position", 0)), str(body.get("command_id", cid)))

    def execute_batch(self, lines: list[dict[str, Any]], on_refusal: str) -> dict[str, Any]:
        """Lines in the import format, in one transaction (the server's batch endpoint)."""
        import orjson

        body = b"\n".join(orjson.dumps(x) for x in lines)
        return self._json(self._send("POST", "/v1/commands/batch", {"on_refusal": on_refusal}, body=body,
                                     signed=False))


def _reason(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def needs_local(command_path: str, store: str) -> BadInput:
    return BadInput(f"{command_path} needs a local store (a file or postgresql://); {store} is a registry server")


def quoted(segment: str) -> str:
    return quote(segment, safe="")
