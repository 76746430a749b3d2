"""Real concurrent writers (separate processes, spawn) on both stores.

Several processes open `Registry(url)` on the same store and append at once. Afterwards
no holding is negative at any position, every unit issued is still held somewhere, and
the hash chain covers every stored event, positions 1..N without gaps, recomputed from
the stored bytes. Two processes that race to spend the same allowances: one wins, the
other is refused.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue as queue_mod
import warnings
from collections import Counter
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.errors import Refused, StoreError
from ledger.events import GENESIS_HASH, chain_hash, decode
from ledger.registry import Registry

WORKERS = 4
TRANSFERS_EACH = 50
FUNDED = 150  # < WORKERS * TRANSFERS_EACH: the shared account runs dry and later transfers are refused
RACE_ROUNDS = 8
TIMEOUT = 60  # seconds for a whole group of processes
CLIENT_RETRIES = 10  # times a worker runs a command again after the registry gave up on it


def _setup(url: str, trading_accounts: int, issues: list[tuple[int, int]]) -> None:
    reg = Registry(url)
    try:
        reg.register_firm("F0001", "Unit 1", "power", "Hubei", command_id="setup-f1")
        reg.register_firm("F0002", "Unit 2", "power", "Hubei", command_id="setup-f2")
        for k in range(trading_accounts):
            reg.open_account(f"T{k}", "F0002", "trading", command_id=f"setup-t{k}")
        for vintage, quantity in issues:
            reg.issue("F0001", "CEA", vintage, quantity, "pre-allocation", command_id=f"setup-i{vintage}")
    finally:
        reg.close()


def _transfer_worker(url: str, idx: int, n: int, start: Any, out: Any) -> None:
    ok = refused = gave_up = 0
    errors: list[str] = []
    try:
        reg = Registry(url)
        try:
            reg.state  # noqa: B018 - load the store before the start, so that the writers really overlap
            start.wait(TIMEOUT)
            for i in range(n):
                for _attempt in range(CLIENT_RETRIES):
                    try:
                        reg.transfer("F0001", f"T{idx}", "CEA", 2024, 1, command_id=f"w{idx}-{i}")
                        ok += 1
                    except Refused as e:
                        assert e.code == "insufficient_holding", e.code
                        refused += 1
                    except StoreError as e:
                        # The registry gives up after MAX_ATTEMPTS lost races, appending nothing;
                        # a client runs the same command id again (idempotent).
                        if "gave up" not in str(e):
                            raise
                        gave_up += 1
                        continue
                    break
                else:
                    raise AssertionError(f"command w{idx}-{i} gave up {CLIENT_RETRIES} times")
        finally:
            reg.close()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        errors.append(repr(e))
    out.put((idx, ok, refused, gave_up, errors))


def _race_worker(url: str, idx: int, rounds: int, barrier: Any, out: Any) -> None:
    results: list[str] = []
    errors: list[str] = []
    try:
        reg = Registry(url)
        try:
            for r in range(rounds):
                reg.state  # noqa: B018 - both have caught up before the race
                barrier.wait(TIMEOUT)
                try:
                    reg.transfer("F0001", f"T{idx}", "CEA", 2020 + r, 100, command_id=f"race{idx}-{r}")
                    results.append("ok")
                except Refused as e:
                    results.append(e.code)
        finally:
            reg.close()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        errors.append(repr(e))
    out.put((idx, results, errors))


def _run(target: Any, url: str, nprocs: int, arg: int, sync: str) -> list[tuple]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    gate = ctx.Barrier(nprocs) if sync == "barrier" else ctx.Event()
    procs = [ctx.Process(target=target, args=(url, i, arg, gate, out)) for i in range(nprocs)]
    for p in procs:
        p.start()
    try:
        if sync == "event":
            gate.set()
        results = []
        for _ in procs:
            try:
                results.append(out.get(timeout=TIMEOUT))
            except queue_mod.Empty:
                pytest.fail(f"a writer process gave no result within {TIMEOUT}s")
        return sorted(results)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


def verify_store(url: str) -> tuple[Counter, int]:
    """Check chain, positions, conservation and non-negative holdings at every position; return holdings."""
    reg = Registry(url)
    try:
        rec = reg.recorder
        events = list(rec.read_events())
        n = len(events)
        assert [p for p, _, _ in events] == list(range(1, n + 1)), "chain positions are not 1..N"
        assert len(list(rec.raw_rows())) == n, "a stored event is not on the chain"
        h = GENESIS_HASH
        holdings: Counter = Counter()
        issued: Counter = Counter()
        for pos, stored_hash, state in events:
            h = chain_hash(h, state)
            assert h == stored_hash, f"chain does not verify at position {pos}"
            env = decode(state)
            assert env["position"] == pos
            d = env["data"]
            if env["type"] == "AllowancesIssued":
                holdings[(d["account_id"], d["unit"], d["vintage"])] += d["quantity"]
                issued[(d["unit"], d["vintage"])] += d["quantity"]
            elif env["type"] == "AllowancesTransferred":
                holdings[(d["from_account"], d["unit"], d["vintage"])] -= d["quantity"]
                holdings[(d["to_account"], d["unit"], d["vintage"])] += d["quantity"]
            assert all(v >= 0 for v in holdings.values()), f"negative holding at position {pos}"
        assert rec.head() == (n, h)
        held: Counter = Counter()
        for (_acc, unit, vintage), q in holdings.items():
            held[(unit, vintage)] += q
        assert held == issued, "units were created or lost"
        for (acc, unit, vintage), q in holdings.items():
            assert reg.state.holding(acc, unit, vintage) == q
        return holdings, n
    finally:
        reg.close()


def test_concurrent_transfers_from_a_shared_account(store_url: str) -> None:
    _setup(store_url, WORKERS, [(2024, FUNDED)])
    setup_events = verify_store(store_url)[1]
    results = _run(_transfer_worker, store_url, WORKERS, TRANSFERS_EACH, "event")
    errors = [e for *_, errs in results for e in errs]
    assert errors == []
    oks = {idx: ok for idx, ok, *_ in results}
    assert sum(oks.values()) == FUNDED
    assert sum(refused for _, _, refused, *_ in results) == WORKERS * TRANSFERS_EACH - FUNDED
    gave_up = sum(g for _, _, _, g, _ in results)
    if gave_up:
        warnings.warn(f"the registry gave up {gave_up} times after {WORKERS} writers kept winning the race"
                      " (clients ran the commands again)", stacklevel=1)
    holdings, n = verify_store(store_url)
    assert n == setup_events + FUNDED
    assert holdings[("F0001", "CEA", 2024)] == 0
    for idx, ok in oks.items():
        assert holdings[(f"T{idx}", "CEA", 2024)] == ok


def test_two_processes_racing_to_spend_the_same_allowances(store_url: str) -> None:
    _setup(store_url, 2, [(2020 + r, 100) for r in range(RACE_ROUNDS)])
    results = _run(_race_worker, store_url, 2, RACE_ROUNDS, "barrier")
    assert [errs for _, _, errs in results] == [[], []]
    (_, a, _), (_, b, _) = results
    for r in range(RACE_ROUNDS):
        assert sorted([a[r], b[r]]) == ["insufficient_holding", "ok"], (r, a[r], b[r])
    holdings, _ = verify_store(store_url)
    for r in range(RACE_ROUNDS):
        assert holdings[("F0001", "CEA", 2020 + r)] == 0
        assert holdings[("T0", "CEA", 2020 + r)] + holdings[("T1", "CEA", 2020 + r)] == 100


def test_a_write_that_loses_the_race_is_retried_and_refused(store_url: str) -> None:
    """Deterministic version of the race: the winner commits between the loser's decision and its write."""
    _setup(store_url, 2, [(2024, 100)])
    winner, loser = Registry(store_url), Registry(store_url)
    # The registries' writer lock would make the winner wait for the loser; the race it prevents
    # can still come from a writer that does not take it, which is what this test plays.
    winner.recorder.writer_lock = contextlib.nullcontext  # type: ignore[method-assign]
    try:
        assert loser.state.holding("F0001", "CEA", 2024) == 100
        original = loser.recorder.insert_events
        seen: list[BaseException] = []

        def insert_after_the_winner(stored: Any, **kwargs: Any) -> Any:
            if not seen:
                winner.transfer("F0001", "T0", "CEA", 2024, 100, command_id="winner")
            try:
                return original(stored, **kwargs)
            except BaseException as e:
                seen.append(e)
                raise

        loser.recorder.insert_events = insert_after_the_winner  # type: ignore[method-assign]
        with pytest.raises(Refused) as refused:
            loser.transfer("F0001", "T1", "CEA", 2024, 100, command_id="loser")
        assert refused.value.code == "insufficient_holding"
        assert len(seen) == 1 and isinstance(seen[0], IntegrityError)
        assert loser.recorder.lookup_commands(["winner", "loser"]).keys() == {"winner"}
    finally:
        winner.close()
        loser.close()
    holdings, _ = verify_store(store_url)
    assert holdings[("T0", "CEA", 2024)] == 100 and holdings[("T1", "CEA", 2024)] == 0


def test_the_postgres_writer_lock_is_reentrant_in_its_thread_and_excludes_other_threads(pg_schema_url: str) -> None:
    """Group commit holds the writer lock over several groups and each group takes it again: in the holding
    thread that costs nothing and cannot wait on itself; another thread (another writer) waits until the
    outermost hold ends."""
    import threading
    import time

    reg = Registry(pg_schema_url)
    try:
        reg.state  # noqa: B018 - the schema made
        rec = reg.recorder
        entered = threading.Event()
        order: list[str] = []

        def other() -> None:
            with rec.writer_lock():
                order.append("other")
            entered.set()

        with rec.writer_lock():
            with rec.writer_lock():  # would wait forever on a second session if it were not reentrant
                order.append("inner")
            t = threading.Thread(target=other)
            t.start()
            time.sleep(0.3)
            assert not entered.is_set()  # still held: the inner release did not give it back
            order.append("outer")
        assert entered.wait(10)
        t.join(10)
        assert order == ["inner", "outer", "other"]
    finally:
        reg.close()
