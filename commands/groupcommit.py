"""Group commit: the server's one writer, and the thread that checks signatures ahead of it.

Concurrent commands wait in a queue; the writer runs what queued while it committed the last group as one
transaction, each command keeping its own result or refusal. `Expiry` bounds how long a request waits.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from commands.limits import COMMAND_WAIT_S, GROUP_MAX_COMMANDS, WRITER_LEASE_S
from ledger.errors import LedgerError, StoreError


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


STOP = object()  # the queue's end, seen while gathering
SLOW_MS = 50  # a transaction longer than this is counted (the load benchmark's p99 target: one such stalls all)


def signed_items(registry: Any, commands: list[Any]) -> list[tuple[bytes, bytes, bytes]]:
    """(key, signature, payload) of each signed command whose actor's key `registry` last knew, without reading
    the store: what the checker sends to be checked ahead of the writer (benchmarks/load.py's writer alone too)."""
    from ledger import signing

    out = []
    for cmd in commands:
        if cmd.signature is None or not cmd.checked or cmd.name == "init":
            continue
        context = registry.signing_context(cmd.actor)
        if context is None:
            continue
        try:
            found = signing.decoded(context[1], cmd.signature)
            if found is not None:
                out.append((*found, signing.command_payload(context[0], cmd.name, cmd.command_id, cmd.args,
                                                            cmd.expires)))
        except Exception:  # noqa: BLE001, S112 - the writer checks it and answers
            continue
    return out


class WriterTimeout(TimeoutError):
    """A command waited COMMAND_WAIT_S for the writer: 503 store_busy (it may yet be recorded)."""


class Expiry:
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
        self.expiry = Expiry(COMMAND_WAIT_S, _writer_timeout)  # a wait past it raises WriterTimeout
        self.ready = threading.Event()  # set once the writer has read the state
        self.batches = 0  # transactions committed
        self.commands = 0  # commands they held
        self.slowest_ms = 0.0  # the longest transaction (deciding and committing a group), failed ones too
        self.slow = 0  # transactions longer than SLOW_MS: where a p99 goes when the disk stalls a commit
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
        """Check the signatures of what is queued ahead of the writer (up to BATCH_ITEMS commands at a time, in
        arrival order) in the signature process (commands/verifier.py), and pass the commands on: the writer
        decides and commits the last group meanwhile, and finds each signature already checked (remembered as
        signing.remember_valid). The key is the actor's as the writer last knew it; a key the group changes,
        a signature process that failed, or anything odd only means the writer checks that signature itself."""
        from commands.verifier import BATCH_ITEMS, SignatureProcess, batches
        from ledger import signing

        checker = SignatureProcess()
        try:
            while True:
                job = self.incoming.get()
                jobs, queued = [job], 0
                while job is not None and (queued := queued + len(job.commands)) < BATCH_ITEMS:
                    try:
                        job = self.incoming.get_nowait()
                    except queue.Empty:
                        break
                    jobs.append(job)
                items = [item for j in jobs if j is not None for item in signed_items(self.registry, j.commands)]
                for part in batches(items):
                    verdicts = checker.check(part)
                    for i, item in enumerate(part):
                        # No signature process: checked here, as before it.
                        if verdicts[i] if verdicts is not None else signing.opens(*item):
                            signing.remember_valid(*item)
                for j in jobs:
                    self.jobs.put(j)
                    if j is None:
                        return
        finally:
            checker.close()

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
            # The store's writer lock (PostgreSQL's session lock: two round trips) is held over the groups that
            # follow one another without a pause, for up to WRITER_LEASE_S; another server process on the
            # store then gets its turn.
            with self._lease():
                lease_ends = time.monotonic() + WRITER_LEASE_S
                while job is not None:
                    group, more = self._gather(job)
                    self._commit(group)
                    job = None
                    if more is None or more is STOP:
                        stopping = more is STOP
                        break
                    if more.on_refusal is not None:
                        held = more
                        break
                    job = more
                    if time.monotonic() >= lease_ends:
                        held = job  # it starts the next lease
                        break

    @contextlib.contextmanager
    def _lease(self) -> Any:
        """The store's writer lock over the groups of one lease. Taking or giving it back may fail (the store
        gone): the groups run all the same, each then taking the lock itself and meeting the failure, which
        its requests are answered (503), as without the lease."""
        lock = self.registry.recorder.writer_lock()
        try:
            lock.__enter__()
        except Exception:  # noqa: BLE001
            yield
            return
        try:
            yield
        finally:
            try:
                lock.__exit__(None, None, None)
            except Exception:  # noqa: BLE001, S110 - a lost connection takes its session lock with it
                pass

    def _gather(self, job: _Job) -> tuple[list[_Job], Any]:
        """A group from `job` and what queued behind it (up to GROUP_MAX_COMMANDS; one command without group
        commit), and what ended it: None (the queue ran empty), STOP (its end), a batch (which runs alone), or
        the first of the next group."""
        group = [job]
        while True:
            try:
                more = self.jobs.get_nowait()
            except queue.Empty:
                return group, None
            if more is None:
                return group, STOP
            if more.on_refusal is not None or not self.group or len(group) >= GROUP_MAX_COMMANDS:
                return group, more
            group.append(more)

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
        started = time.perf_counter()
        try:
            results = self.registry.execute_batch(commands, on_refusal=on_refusal)
        except LedgerError as e:
            self._answer([(j, e) for j in jobs])
            return None
        except Exception as e:  # noqa: BLE001 - a store that failed under us: each request answers 503, never 500
            failure = StoreError(f"store failure: {type(e).__name__}: {e}")
            self._answer([(j, failure) for j in jobs])
            return None
        finally:
            ms = (time.perf_counter() - started) * 1000
            self.slowest_ms = max(self.slowest_ms, ms)
            self.slow += ms > SLOW_MS
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
