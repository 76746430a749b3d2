"""`carbon-ledger project [--follow]`: keep every read model current as events arrive.

Each catch-up writes the read models and their position in one transaction, so a
follower killed at any moment (even kill -9) resumes from the last committed
position and never applies an event twice. SIGTERM and SIGINT stop it cleanly
between catch-ups. On PostgreSQL it is woken by the eventsourcing library's
subscription (LISTEN/NOTIFY on the events table); on SQLite it polls the head
position (one indexed query) every 0.2 s.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import click

from projections import runner

POLL_S = 0.2


class _StopFlag:
    """Set by the signal handler, read by the loop. Not a threading.Event: a handler runs in the main thread
    between two bytecodes, and Event.set() there deadlocks if the signal lands while that same thread
    holds the Event's lock inside Event.wait() (the follower then never stops)."""

    def __init__(self) -> None:
        self.flag = False

    def set(self) -> None:
        self.flag = True

    def is_set(self) -> bool:
        return self.flag


def run_follow(c: Any, follow: bool, interval: float, as_json: bool) -> None:
    rec = c.existing_recorder()
    stop = _StopFlag()
    wake = _Wakeups(rec, stop) if follow else None

    def _stop(signum: int, frame: Any) -> None:
        stop.set()  # only this: the loop sees it within POLL_S, and closes the subscription itself

    if follow:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    last = -1
    try:
        while True:
            _, pos = runner.catch_up(rec, should_stop=stop.is_set)
            if pos != last:
                click.echo(f'{{"position": {pos}}}' if as_json else f"read models at position {pos}")
                last = pos
            if not follow or stop.is_set():
                break
            wake.wait(pos, interval)
    finally:
        if wake is not None:
            wake.close()
    if follow:
        click.echo(f"stopped at position {last}")


class _Wakeups:
    """Tells the follower when new events may have arrived."""

    def __init__(self, rec: Any, stop: _StopFlag):
        self.rec = rec
        self.stop = stop
        self.arrived = threading.Event()
        self.sub = None
        self.thread = None
        from eventsourcing.postgres import PostgresApplicationRecorder

        if isinstance(rec, PostgresApplicationRecorder):
            self.sub = rec.subscribe(gt=rec.max_notification_id())
            self.thread = threading.Thread(target=self._listen, daemon=True)
            self.thread.start()

    def _listen(self) -> None:
        try:
            with self.sub:
                for _notification in self.sub:
                    self.arrived.set()
        except Exception:  # noqa: BLE001 - a broken subscription costs latency, not correctness: poll instead
            self.sub = None

    def wait(self, pos: int, interval: float) -> None:
        waited = 0.0
        while not self.stop.is_set() and waited < interval:
            if self.sub is not None:
                if self.arrived.wait(POLL_S):
                    self.arrived.clear()
                    return
            else:
                if self.rec.head()[0] > pos:
                    return
                time.sleep(POLL_S)
            waited += POLL_S

    def close(self) -> None:
        if self.sub is not None:
            self.sub.stop()
