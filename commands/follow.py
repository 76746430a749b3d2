"""`carbon-ledger project [--follow]`: keep every read model current as events arrive.

Each catch-up writes the read models and their position in one transaction, so a
follower killed at any moment (even kill -9) resumes from the last committed
position and never applies an event twice. SIGTERM and SIGINT stop it cleanly
between catch-ups. Between catch-ups it polls the head position (one indexed
query) every 0.2 s, on either store.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import click

from projections import runner


def run_follow(c: Any, follow: bool, interval: float, as_json: bool) -> None:
    rec = c.existing_recorder()
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    if follow:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    last = -1
    while True:
        _, pos = runner.catch_up(rec)
        if pos != last:
            if as_json:
                click.echo(f'{{"position": {pos}}}')
            else:
                click.echo(f"read models at position {pos}")
            last = pos
        if not follow or stop.is_set():
            break
        _wait(rec, pos, interval, stop)
    if follow:
        click.echo(f"stopped at position {last}")


def _wait(rec: Any, pos: int, interval: float, stop: threading.Event) -> None:
    """Return when new events may have arrived, after at most `interval` seconds, or when asked to stop."""
    deadline = time.monotonic() + interval
    while not stop.is_set() and time.monotonic() < deadline:
        if rec.head()[0] > pos:
            return
        stop.wait(min(0.2, interval))
