"""The server's signature process (commands/verifier.py): its verdicts, and that nothing it does or fails to do
can make a signature count as valid that is not. A real child process in every test; the server with its
child killed is in test_server_signature_process below."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from commands import verifier
from commands.verifier import SignatureProcess, answer, batches, encode


def _item(payload: bytes, key: Ed25519PrivateKey | None = None) -> tuple[bytes, bytes, bytes]:
    key = key or Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return pub, key.sign(payload), payload


def _forged(item: tuple[bytes, bytes, bytes]) -> tuple[bytes, bytes, bytes]:
    return item[0], item[1], item[2] + b" and 1,000,000 t more"


@pytest.fixture
def process() -> Iterator[SignatureProcess]:
    p = SignatureProcess()
    yield p
    p.close()


def test_the_child_answers_one_verdict_per_signature_in_order(process: SignatureProcess) -> None:
    good = [_item(b'{"command":"transfer","n":%d}' % i) for i in range(5)]
    other = _item(b"signed by someone else")
    items = [good[0], _forged(good[1]), good[2], (other[0], good[3][1], good[3][2]), good[4], _item(b"")]
    assert process.check(items) == [True, False, True, False, True, True]
    assert process.check([good[1]]) == [True]  # the same child, the next batch
    assert process.failures == 0


def test_a_malformed_request_gets_no_verdicts() -> None:
    item = _item(b"payload")
    whole = encode(7, [item])
    for bad in (whole[:-1], whole + b"x", whole[:20]):
        assert answer(bad) == encode(7, []), bad  # its batch number, zero verdicts
    assert answer(b"short") == encode(0, [])
    assert answer(whole) == verifier._HEAD.pack(7, 1) + b"\x01"


def test_a_killed_child_means_no_verdicts_then_a_new_child(process: SignatureProcess,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifier, "RESTART_AFTER_S", 0.3)
    item = _item(b"payload")
    assert process.check([item]) == [True]
    first = process.proc.pid
    os.kill(first, signal.SIGKILL)
    process.proc.wait(timeout=10)
    assert process.check([item]) is None  # the writer checks it itself
    assert process.failures == 1 and process.proc is None
    assert process.check([item]) is None  # not started again at once
    time.sleep(0.35)
    assert process.check([item, _forged(item)]) == [True, False]
    assert process.proc.pid != first


def test_an_answer_out_of_step_is_trusted_for_nothing(process: SignatureProcess) -> None:
    """An answer that names another batch (here: the child's answer to a request the parent did not count)
    is not applied to this one: a 1 meant for a valid signature must never land on a forged one."""
    good, forged = _item(b"good"), _forged(_item(b"forged"))
    assert process.check([good]) == [True]
    process.conn.send_bytes(encode(process.batch + 5, [good]))  # the child answers this first
    assert process.check([forged]) is None
    assert process.failures == 1
    assert process.check([forged]) is None  # within RESTART_AFTER_S: still none


def test_a_child_that_does_not_answer_in_time_is_stopped(process: SignatureProcess,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifier, "ANSWER_WAIT_S", 0.5)
    item = _item(b"payload")
    assert process.check([item]) == [True]
    child = process.proc
    os.kill(child.pid, signal.SIGSTOP)  # alive, holding its socket, answering nothing
    t0 = time.monotonic()
    assert process.check([item]) is None
    assert time.monotonic() - t0 < 5  # the wait, then two seconds to leave on its own, then killed
    assert child.poll() is not None and process.proc is None


def test_the_child_runs_this_checkout_whatever_the_directory(tmp_path: Path, process: SignatureProcess,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory with a `commands` package of its own, and a PYTHONPATH pointing at it, change nothing."""
    fake = tmp_path / "commands"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "verifier.py").write_text("def main(fd):\n    raise SystemExit('the wrong verifier')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    item = _item(b"payload")
    assert process.check([item, _forged(item)]) == [True, False]


def test_batches_bound_the_count_and_the_bytes_of_a_round_trip() -> None:
    small = [_item(b"x" * 10) for _ in range(verifier.BATCH_ITEMS * 2 + 1)]
    assert [len(b) for b in batches(small)] == [verifier.BATCH_ITEMS, verifier.BATCH_ITEMS, 1]
    big = [_item(b"y" * (verifier.BATCH_BYTES // 2 + 1)) for _ in range(3)]
    assert [len(b) for b in batches(big)] == [1, 1, 1]  # never two that overflow, never an empty batch
    assert batches([]) == []
    assert [x for b in batches(small) for x in b] == small
