"""Load on `carbon-ledger serve` over loopback: concurrent clients sending signed transfers, against the same
server's health endpoint (the HTTP layer's own limit here) and against one transaction per command.

    .venv/bin/python benchmarks/load.py                       # SQLite, 64 clients, 30 s per measure
    .venv/bin/python benchmarks/load.py --seconds 10 --postgres postgresql://postgres@127.0.0.1:5432/test

The load comes from wrk (a real HTTP load generator in C, Debian's package `wrk`), so that the client's own
cost is not the server's: with 64 connections each waits for its answer and sends the next, for the given
time. The transfers are signed beforehand (a firm's desk per client, the payload of docs/security.md, each
with its own command id) and wrk posts each once (benchmarks/load.lua), noting the command id of every
answer. Reported per measure: requests per second, p50 and p99 latency, errors; then, on the store, that
every unit is still conserved, that every answered command is in the log once and nothing is there twice,
and `audit verify`. The store's fsync time is measured too: it is what group commit saves. The server reports
its writer's slowest transaction and how many took over 50 ms (/v1/health): one commit the disk stalls holds
every client behind it, which is where a p99 goes on a virtual disk. Last, the writer alone, without the server
(`writer_alone`): its ceiling on this machine, in groups of the server's mean size and one per transaction.
Only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UNITS_EACH = 10_000_000
MAX_RATE = 12_000  # transfers signed beforehand per second of a measure: above any rate this server reaches
LUA = Path(__file__).with_name("load.lua")


def _exe() -> str:
    return str(Path(sys.executable).with_name("carbon-ledger"))


def build_store(store: str, clients: int, key_path: str) -> None:
    """An enforced, signed store: the regulator MEE and one firm with a desk per client, each holding CEA."""
    from ledger import signing
    from ledger.registry import Command, Registry

    key = signing.load_private(key_path)
    pub = signing.public_hex(key)
    reg = Registry(store)
    try:
        reg.execute(Command("init", {"regulator": "MEE", "require_signatures": True, "public_key": pub}, "init", "MEE",
                            sign_with=key))
        cmds = [Command("year open", {"year": "2024"}, "y", "MEE", sign_with=key)]
        for i in range(clients):
            f = f"F{i:03d}"
            cmds += [Command("firm register", {"firm_id": f, "name": f, "sector": "power", "region": "Hubei"},
                             f"r-{f}", "MEE", sign_with=key),
                     Command("actor add", {"actor_id": f"{f}-desk", "role": "firm", "firm": f, "public_key": pub},
                             f"a-{f}", "MEE", sign_with=key),
                     Command("issue", {"account_id": f, "unit": "CEA", "vintage": 2024, "quantity": UNITS_EACH,
                                       "basis": "auction"}, f"i-{f}", "MEE", sign_with=key)]
        for r in reg.execute_batch(cmds):
            if not hasattr(r, "result"):
                raise SystemExit(f"setup failed: {r}")
    finally:
        reg.close()


class Server:
    def __init__(self, store: str, *extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([_exe(), "--store", store, "serve", "--port", str(self.port), *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import httpx

        for _ in range(300):
            try:
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("benchmarks/load.py needs wrk, a real HTTP load generator: apt-get install wrk")
    return path


def presign(key_path: str, store_id: str, clients: int, count: int, threads: int, prefix: str,
            seconds: float) -> None:
    """`count` signed transfers, client i from F{i} to F{i+1}, dealt into one file per wrk thread."""
    from ledger import signing

    key = signing.load_private(key_path)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds + 3600))
    files = [open(f"{prefix}{t}.jsonl", "w", encoding="utf-8") for t in range(threads)]  # noqa: SIM115
    try:
        for k in range(count):
            i = k % clients
            frm, to = f"F{i:03d}", f"F{(i + 1) % clients:03d}"
            args = {"from_account": frm, "to_account": to, "unit": "CEA", "vintage": 2024, "quantity": 1}
            cid = uuid.uuid4().hex
            sig = signing.sign_command(key, store_id, "transfer", cid, args, expires)
            files[k % threads].write(json.dumps({"command": "transfer", "command_id": cid, **args,
                                                 "actor": f"{frm}-desk", "signature": sig,
                                                 "signature_expires": expires}) + "\n")
    finally:
        for f in files:
            f.close()


def load(url: str, clients: int, seconds: float, threads: int, bodies: str | None = None,
         answers: str | None = None) -> dict[str, Any]:
    """One wrk run: health (no bodies) or the transfers of `bodies`; its counts and latencies."""
    cmd = [wrk(), f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(LUA),
           url] + (["--", bodies, answers] if bodies and answers else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 180, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    w = json.loads(lines[-1])
    n, elapsed = w["requests"], w["duration_us"] / 1e6
    return {"requests": n, "per_s": round(n / elapsed, 1) if elapsed else 0.0,
            "errors": w["not_ok"] + w["socket_errors"] + w["exhausted"], "exhausted": w["exhausted"],
            "p50_ms": round(w["p50_us"] / 1000, 2), "p99_ms": round(w["p99_us"] / 1000, 2),
            "max_ms": round(w["max_us"] / 1000, 2)}


def measure(store: str, clients: int, seconds: float, key_path: str, workdir: Path, *extra: str) -> dict[str, Any]:
    import httpx

    threads = max(1, min(2, clients, os.cpu_count() or 1))
    tag = uuid.uuid4().hex[:8]
    bodies, answers = str(workdir / f"bodies-{tag}-"), str(workdir / f"answers-{tag}-")
    srv = Server(store, *extra)
    try:
        store_id = httpx.get(srv.url + "/v1/head").json()["store_id"]
        presign(key_path, store_id, clients, int(MAX_RATE * seconds), threads, bodies, seconds)
        health = load(srv.url, clients, seconds, threads)
        transfers = load(srv.url, clients, seconds, threads, bodies, answers)
        writer = httpx.get(srv.url + "/v1/health").json()["writer"]
    finally:
        srv.stop()
    answered: list[str] = []
    for t in range(threads):
        with open(f"{answers}{t}.txt", encoding="utf-8") as f:
            answered += [ln.strip() for ln in f if ln.strip()]
    return {"health": health, "transfers": transfers, "writer": writer, "answered": answered}


def fsync_ms(directory: Path, rounds: int = 200) -> float:
    """The mean time of a 4 KiB write and its fsync in `directory`: what one commit costs the disk."""
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        t0 = time.perf_counter()
        for _ in range(rounds):
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        return round((time.perf_counter() - t0) / rounds * 1000, 3)
    finally:
        os.close(fd)
        path.unlink()


def sqlite_synchronous(store: str) -> str:
    """PRAGMA synchronous as the registry's connection has it (FULL: every commit is fsynced)."""
    from ledger.registry import Registry

    reg = Registry(store)
    try:
        with reg.recorder.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA synchronous")
            return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(c.fetchone()[0], "?")
    finally:
        reg.close()


def check_store(store: str, clients: int, answered: list[str]) -> dict[str, Any]:
    """Conservation; every answered command is a transfer of the log, once, and none is there twice (a
    transfer not answered is one wrk stopped waiting for, at most one per client); `audit verify`."""
    from ledger.registry import Registry
    from ledger.verify import verify_log

    reg = Registry(store)
    try:
        st = reg.state
        held = sum(q for (_a, u, v), q in st.holdings.items() if (u, v) == ("CEA", 2024))
        verified = verify_log(reg.recorder)
        logged = [orjson.loads(blob)["command_id"] for _p, _h, blob in reg.recorder.read_events()
                  if b'"AllowancesTransferred"' in blob]
    finally:
        reg.close()
    in_log = set(logged)
    return {"conserved": held == clients * UNITS_EACH, "answered": len(answered),
            "unique_answers": len(set(answered)), "transfers_in_log": len(logged),
            "answered_not_in_log": len(set(answered) - in_log), "twice_in_log": len(logged) - len(in_log),
            "in_log_unanswered": len(in_log - set(answered)), "audit_verify_ok": verified["ok"]}


def sound(m: dict[str, Any], clients: int) -> bool:
    """Nothing lost, nothing twice, nothing refused, conserved, and the audit passes."""
    s = m["store"]
    return (s["answered"] == s["unique_answers"] and s["answered_not_in_log"] == 0 and s["twice_in_log"] == 0
            and s["in_log_unanswered"] <= clients and m["transfers"]["errors"] == 0 and s["conserved"]
            and s["audit_verify_ok"])


def writer_alone(store: str, clients: int, key_path: str, workdir: Path, group: int,
                 seconds: float) -> dict[str, Any]:
    """The server's writer without the server: the same signed transfers, parsed as the server parses a body,
    their signatures found valid just before (untimed, as the server's checker does ahead of its writer),
    then decided and committed by `Registry.execute_batch` in groups of `group`, then one per transaction.
    This is the writer's own ceiling on this machine; in the server it shares Python's lock with the event loop."""
    from commands.groupcommit import signed_items
    from commands.importer import parse_line
    from ledger import signing
    from ledger.registry import Registry

    build_store(store, clients, key_path)
    reg = Registry(store)
    try:
        store_id = reg.state.store_id
        prefix = str(workdir / f"alone-{uuid.uuid4().hex[:8]}-")
        out: dict[str, Any] = {"group": group}
        for name, size in (("grouped", group), ("one_per_transaction", 1)):
            count = max(size, int((2_000 if size == 1 else 20_000) * min(seconds, 3) / 3))
            presign(key_path, store_id, clients, count, 1, prefix + name, seconds)
            with open(f"{prefix}{name}0.jsonl", encoding="utf-8") as f:
                cmds = [parse_line(1, line) for line in f]
            elapsed = 0.0
            for i in range(0, len(cmds), size):
                part = cmds[i:i + size]
                for item in signed_items(reg, part):  # just before, as the checker: VERIFIED_KEPT are kept
                    if signing.opens(*item):
                        signing.remember_valid(*item)
                t0 = time.perf_counter()
                results = reg.execute_batch(part, on_refusal="continue")
                elapsed += time.perf_counter() - t0
                if any(not hasattr(r, "result") for r in results):
                    raise SystemExit(f"the writer refused a transfer: {results}")
            out[name] = round(len(cmds) / elapsed, 1)
        out["ratio"] = round(out["grouped"] / out["one_per_transaction"], 2)
        return out
    finally:
        reg.close()


def run(clients: int, seconds: float, workdir: Path, postgres: str | None) -> dict[str, Any]:
    from ledger import signing

    key = str(workdir / "bench.key")
    signing.generate(key)
    out: dict[str, Any] = {"clients": clients, "seconds": seconds, "fsync_ms": fsync_ms(workdir)}
    stores = {"sqlite": str(workdir / "group.db"), "sqlite_one_per_request": str(workdir / "single.db")}
    for name, path in stores.items():
        build_store(path, clients, key)
        out.setdefault("sqlite_synchronous", sqlite_synchronous(path))
        extra = ("--no-group-commit",) if name.endswith("one_per_request") else ()
        m = measure(path, clients, seconds, key, workdir, *extra)
        m["store"] = check_store(path, clients, m.pop("answered"))
        out[name] = m
    if postgres:
        import psycopg

        schema = "load_" + uuid.uuid4().hex[:12]
        url = f"{postgres}{'&' if '?' in postgres else '?'}schema={schema}"
        try:
            build_store(url, clients, key)
            m = measure(url, clients, seconds, key, workdir)
            m["store"] = check_store(url, clients, m.pop("answered"))
            out["postgres"] = m
        finally:
            with psycopg.connect(postgres.split("?")[0], autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    g, one = out["sqlite"], out["sqlite_one_per_request"]
    mean_group = max(1, round(g["writer"]["commands"] / max(g["writer"]["transactions"], 1)))
    out["writer_alone"] = writer_alone(str(workdir / "alone.db"), clients, key, workdir, mean_group, seconds)
    out["ratios"] = {
        "transfers_vs_health": round(g["transfers"]["per_s"] / max(g["health"]["per_s"], 0.1), 3),
        "group_vs_one_per_request": round(g["transfers"]["per_s"] / max(one["transfers"]["per_s"], 0.1), 2),
    }
    out["targets_met"] = {
        "transfers_vs_health >= 0.5": out["ratios"]["transfers_vs_health"] >= 0.5,
        "group_vs_one_per_request >= 5": out["ratios"]["group_vs_one_per_request"] >= 5,
        "p99 < 50 ms": all(out[k]["transfers"]["p99_ms"] < 50 for k in ("sqlite", "postgres") if k in out),
        "no lost or duplicated command": all(sound(m, clients) for k, m in out.items()
                                             if k in ("sqlite", "sqlite_one_per_request", "postgres")),
    }
    return out


def report(r: dict[str, Any]) -> str:
    from commands.groupcommit import SLOW_MS  # the server names its count of slow transactions by it

    lines = [(f"carbon-ledger serve, under load (wrk): {r['clients']} clients, {r['seconds']:.0f} s per measure,"
              f" loopback; SQLite synchronous={r['sqlite_synchronous']}, fsync {r['fsync_ms']} ms"), "",
             (f"{'measure':<40}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  transactions/commands,"
              f" the writer's slowest transaction and those over {SLOW_MS} ms (a commit the disk stalls)")]
    for name in ("sqlite", "sqlite_one_per_request", "postgres"):
        if name not in r:
            continue
        m = r[name]
        for what in ("health", "transfers"):
            x = m[what]
            wr = m["writer"]
            w = (f"  {wr['transactions']}/{wr['commands']}, slowest {wr['slowest_ms']:,.0f} ms,"
                 f" {wr[f'over_{SLOW_MS}_ms']} over {SLOW_MS} ms" if what == "transfers" else "")
            lines.append(f"{name + ' ' + what:<40}{x['per_s']:>10,.1f}{x['p50_ms']:>9}{x['p99_ms']:>9}"
                         f"{x['errors']:>8}{w}")
        s = m["store"]
        lines.append(f"  store: conserved {s['conserved']}, answered {s['answered']} (unique {s['unique_answers']},"
                     f" not in the log {s['answered_not_in_log']}), transfers in the log {s['transfers_in_log']}"
                     f" (twice {s['twice_in_log']}, unanswered {s['in_log_unanswered']}),"
                     f" audit verify {s['audit_verify_ok']}")
    a = r["writer_alone"]
    lines.append(f"sqlite writer alone (no HTTP; its ceiling): {a['grouped']:,.1f} commands/s in groups of"
                 f" {a['group']} (the server's mean), {a['one_per_transaction']:,.1f} one per transaction"
                 f" ({a['ratio']}x)")
    lines += ["", f"ratios: {r['ratios']}", "targets: " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}"
                                                                    for k, v in r["targets_met"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--postgres", default=os.environ.get("CARBON_LEDGER_BENCH_POSTGRES"))
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="carbon-ledger-load-") as tmp:
        r = run(a.clients, a.seconds, Path(tmp), a.postgres)
    print(json.dumps(r, indent=2) if a.json else report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
