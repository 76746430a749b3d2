"""The server's signature checks, in a child process of their own, a batch per round trip.

An Ed25519 check is most of a signed command's CPU (80-110 us on the CI machines). In the server's own process
the checks ran in a thread (libsodium without the GIL), but every check gave the GIL back and waited for it
again, behind the event loop and the writer: under load the checker fell about 20 commands behind, and the
writer's groups were smaller for it. Here a child checks the signatures of what is queued (up to BATCH_ITEMS
at a time) while the server's checker thread waits on a socket, without the GIL, once per batch.

The child checks with `signing.opens`, as the server would. What it answers is used only through
`signing.remember_valid`: a signature it found valid is remembered under its exact key, signature and payload
bytes, and the writer, finding it there, decides as it would have by checking it itself. Anything else (the
child gone, slow past ANSWER_WAIT_S, an answer that is not exactly one verdict per signature of the batch it
names) only means that the writer checks those signatures itself; the child is started again after
RESTART_AFTER_S.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BATCH_ITEMS = 64  # signatures per round trip
BATCH_BYTES = 256 * 1024  # ... and payload bytes (one command's body is at most 64 KiB)
ANSWER_WAIT_S = 5.0  # a batch unanswered this long: the child is stopped, the writer checks them
RESTART_AFTER_S = 1.0  # a child that failed is started again this long after, not at once

_HEAD = struct.Struct("<QI")  # a request's batch number and item count; an answer's the same
_LEN = struct.Struct("<I")
_KEY, _SIG = 32, 64  # libsodium's crypto_sign_PUBLICKEYBYTES and crypto_sign_BYTES (ledger.signing.decoded)
_ROOT = str(Path(__file__).resolve().parent.parent)


def encode(batch: int, items: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """A request: the batch number, the count, then per item the key, the signature and the payload's length
    and bytes."""
    parts = [_HEAD.pack(batch, len(items))]
    for key, sig, payload in items:
        parts += [key, sig, _LEN.pack(len(payload)), payload]
    return b"".join(parts)


def answer(request: bytes) -> bytes:
    """The child's side: one verdict byte (1 valid, 0 not) per item, after the request's batch number and count.
    A malformed request answers no verdicts at all (the parent then treats the whole batch as unchecked)."""
    from ledger.signing import opens

    if len(request) < _HEAD.size:
        return _HEAD.pack(0, 0)
    batch, count = _HEAD.unpack_from(request, 0)
    verdicts = bytearray()
    i = _HEAD.size
    try:
        for _ in range(count):
            key, sig = request[i : i + _KEY], request[i + _KEY : i + _KEY + _SIG]
            (n,) = _LEN.unpack_from(request, i + _KEY + _SIG)
            start = i + _KEY + _SIG + _LEN.size
            payload = request[start : start + n]
            if len(key) != _KEY or len(sig) != _SIG or len(payload) != n:
                raise ValueError("short item")
            i = start + n
            verdicts.append(opens(key, sig, payload))
        if i != len(request):
            raise ValueError("trailing bytes")
    except (ValueError, struct.error):
        return _HEAD.pack(batch, 0)
    return _HEAD.pack(batch, count) + bytes(verdicts)


def main(fd: int) -> None:
    """The child: answer each request on the socket `fd` until the server closes it."""
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            conn.send_bytes(answer(request))
        except OSError:
            return


class SignatureProcess:
    """The parent's side: `check` sends a batch and waits for its verdicts; None when there are none to have."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Any = None
        self.batch = 0
        self.failed_at: float | None = None
        self.failures = 0

    def _start(self) -> bool:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        try:
            # -I: the child imports this checkout's code (put first on its path), nothing from the directory it
            # runs in or the environment's PYTHONPATH.
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", (f"import sys; sys.path.insert(0, {_ROOT!r});"
                                              f" from commands.verifier import main; main({theirs.fileno()})")],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError:
            ours.close()
            return False
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        return True

    def _fail(self) -> None:
        self.failures += 1
        self.failed_at = time.monotonic()
        self.close()

    def check(self, items: list[tuple[bytes, bytes, bytes]]) -> list[bool] | None:
        """One verdict per (key, signature, payload), in order, or None (the writer checks them itself)."""
        if self.conn is None:
            if self.failed_at is not None and time.monotonic() - self.failed_at < RESTART_AFTER_S:
                return None
            if not self._start():
                self.failed_at = time.monotonic()
                return None
        self.batch += 1
        try:
            self.conn.send_bytes(encode(self.batch, items))
            if not self.conn.poll(ANSWER_WAIT_S):
                raise TimeoutError("no answer")
            reply = self.conn.recv_bytes()
            batch, count = _HEAD.unpack_from(reply, 0)
        except (OSError, EOFError, TimeoutError, struct.error):
            self._fail()
            return None
        verdicts = reply[_HEAD.size :]
        if batch != self.batch or count != len(items) or len(verdicts) != count:
            self._fail()  # out of step with us, or a request it could not read: trust none of it
            return None
        return [v == 1 for v in verdicts]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)  # it leaves when its socket closes
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None


def batches(items: list[tuple[bytes, bytes, bytes]]) -> list[list[tuple[bytes, bytes, bytes]]]:
    """`items` in round trips of at most BATCH_ITEMS signatures and BATCH_BYTES of payload."""
    out: list[list[tuple[bytes, bytes, bytes]]] = []
    size = 0
    for item in items:
        if not out or len(out[-1]) >= BATCH_ITEMS or (size + len(item[2]) > BATCH_BYTES and out[-1]):
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item[2])
    return out
