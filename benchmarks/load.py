"""Load on `carbon-ledger serve` over loopback: concurrent clients sending signed transfers, against the same
server's health endpoint (the HTTP layer's own limit here) and against one transaction per command.

    .venv/bin/python benchmarks/load.py                       # SQLite, 64 clients, 30 s per measure
    .venv/bin/python benchmarks/load.py --seconds 10 --postgres postgresql://postgres@127.0.0.1:5432/test

Each client is a firm's desk: it signs a transfer for this store (the payload of docs/security.md), posts it
to /v1/commands, waits for the answer, and sends the next, for the given time. Reported per measure:
requests per second, p50 and p99 latency, errors; then, on the store, that every unit is still conserved,
that no command was lost or recorded twice (the answered positions against the log), and `audit verify`.
The request loops are bounded in time and count and only ever talk to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_REQUESTS_PER_CLIENT = 100_000  # a bound on every loop, whatever the time
UNITS_EACH = 10_000_000


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


async def _load(url: str, clients: int, seconds: float, key_path: str, store_id: str, health: bool) -> dict[str, Any]:
    import httpx

    from ledger import signing

    key = signing.load_private(key_path)
    latencies: list[float] = []
    errors = 0
    positions: list[int] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        frm, to = f"F{i:03d}", f"F{(i + 1) % clients:03d}"
        args = {"from_account": frm, "to_account": to, "unit": "CEA", "vintage": 2024, "quantity": 1}
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            t0 = time.perf_counter()
            if health:
                r = await http.get(url + "/v1/health")
            else:
                cid = uuid.uuid4().hex
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
                sig = signing.sign_command(key, store_id, "transfer", cid, args, expires)
                body = {"command": "transfer", "command_id": cid, **args, "actor": f"{frm}-desk", "signature": sig,
                        "signature_expires": expires}
                r = await http.post(url + "/v1/commands", content=json.dumps(body))
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors += 1
            elif not health:
                positions.append(r.json()["position"])

    t0 = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "per_s": round(n / elapsed, 1), "errors": errors,
            "p50_ms": round(1000 * latencies[n // 2], 2) if n else None,
            "p99_ms": round(1000 * latencies[min(n - 1, int(n * 0.99))], 2) if n else None,
            "positions": positions}


def measure(store: str, clients: int, seconds: float, key_path: str, *extra: str) -> dict[str, Any]:
    import httpx

    srv = Server(store, *extra)
    try:
        store_id = httpx.get(srv.url + "/v1/head").json()["store_id"]
        health = asyncio.run(_load(srv.url, clients, seconds, key_path, store_id, health=True))
        transfers = asyncio.run(_load(srv.url, clients, seconds, key_path, store_id, health=False))
        writer = httpx.get(srv.url + "/v1/health").json()["writer"]
    finally:
        srv.stop()
    positions = transfers.pop("positions")
    health.pop("positions")
    return {"health": health, "transfers": transfers, "writer": writer, "answered_positions": positions}


def check_store(store: str, clients: int, answered: list[int]) -> dict[str, Any]:
    """Conservation, nothing lost or twice (every answered position is a transfer of the log, once), audit."""
    from ledger.registry import Registry
    from ledger.verify import verify_log

    reg = Registry(store)
    try:
        st = reg.state
        held = sum(q for (_a, u, v), q in st.holdings.items() if (u, v) == ("CEA", 2024))
        verified = verify_log(reg.recorder)
        transfers = sum(1 for _p, _h, blob in reg.recorder.read_events() if b'"AllowancesTransferred"' in blob)
    finally:
        reg.close()
    return {"conserved": held == clients * UNITS_EACH, "answered": len(answered),
            "unique_answers": len(set(answered)), "transfers_in_log": transfers, "audit_verify_ok": verified["ok"]}


def run(clients: int, seconds: float, workdir: Path, postgres: str | None) -> dict[str, Any]:
    from ledger import signing

    key = str(workdir / "bench.key")
    signing.generate(key)
    out: dict[str, Any] = {"clients": clients, "seconds": seconds}
    stores = {"sqlite": str(workdir / "group.db"), "sqlite_one_per_request": str(workdir / "single.db")}
    for name, path in stores.items():
        build_store(path, clients, key)
        extra = ("--no-group-commit",) if name.endswith("one_per_request") else ()
        m = measure(path, clients, seconds, key, *extra)
        m["store"] = check_store(path, clients, m.pop("answered_positions"))
        out[name] = m
    if postgres:
        import psycopg

        schema = "load_" + uuid.uuid4().hex[:12]
        url = f"{postgres}{'&' if '?' in postgres else '?'}schema={schema}"
        try:
            build_store(url, clients, key)
            m = measure(url, clients, seconds, key)
            m["store"] = check_store(url, clients, m.pop("answered_positions"))
            out["postgres"] = m
        finally:
            with psycopg.connect(postgres.split("?")[0], autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    g, one = out["sqlite"], out["sqlite_one_per_request"]
    out["ratios"] = {
        "transfers_vs_health": round(g["transfers"]["per_s"] / g["health"]["per_s"], 3),
        "group_vs_one_per_request": round(g["transfers"]["per_s"] / max(one["transfers"]["per_s"], 0.1), 2),
    }
    out["targets_met"] = {
        "transfers_vs_health >= 0.5": out["ratios"]["transfers_vs_health"] >= 0.5,
        "group_vs_one_per_request >= 5": out["ratios"]["group_vs_one_per_request"] >= 5,
        "p99 < 50 ms": (g["transfers"]["p99_ms"] or 1e9) < 50,
        "no lost or duplicated command": all(
            m["store"]["answered"] == m["store"]["unique_answers"] == m["store"]["transfers_in_log"]
            and m["transfers"]["errors"] == 0 and m["store"]["conserved"] and m["store"]["audit_verify_ok"]
            for k, m in out.items() if k in ("sqlite", "sqlite_one_per_request", "postgres")),
    }
    return out


def report(r: dict[str, Any]) -> str:
    lines = [f"carbon-ledger serve under load: {r['clients']} clients, {r['seconds']:.0f} s per measure, loopback", "",
             f"{'measure':<40}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  transactions/commands"]
    for name in ("sqlite", "sqlite_one_per_request", "postgres"):
        if name not in r:
            continue
        m = r[name]
        for what in ("health", "transfers"):
            x = m[what]
            w = f"  {m['writer']['transactions']}/{m['writer']['commands']}" if what == "transfers" else ""
            lines.append(f"{name + ' ' + what:<40}{x['per_s']:>10,.1f}{x['p50_ms']:>9}{x['p99_ms']:>9}"
                         f"{x['errors']:>8}{w}")
        s = m["store"]
        lines.append(f"  store: conserved {s['conserved']}, answered {s['answered']}, unique {s['unique_answers']},"
                     f" transfers in the log {s['transfers_in_log']}, audit verify {s['audit_verify_ok']}")
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
