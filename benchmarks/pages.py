"""Server time of the public pages and open-data files on a simulated store, over loopback.

    .venv/bin/python benchmarks/pages.py                    # china-2021-2024 at scale 0.1 (~22,000 events)
    .venv/bin/python benchmarks/pages.py --scale 0.01 --requests 5 --json

Simulates the store (or reuses --store), starts `carbon-ledger serve --read-only` on a free loopback port,
then asks each page and file `--requests` times, at the head and at an earlier position (`as_of`): the first
request of a position reads the read models, the next ones are served from the states kept for it (the JSON
API's /v1/compliance, which reads the stored read models on each request, is measured beside them). Reports
per URL the first request's time and the median of the rest, in milliseconds, and the response size.
Nothing is asserted (tests/test_benchmark_smoke.py runs it on a tiny store)."""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "carbon-ledger")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--store", help="an existing store (no simulation)")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pages-bench-"))
    store = a.store
    sim_s = None
    if store is None:
        store = str(work / "china.db")
        t0 = time.perf_counter()
        subprocess.run([EXE, "--store", store, "simulate", "china-2021-2024", "--scale", str(a.scale)], check=True,
                       capture_output=True)
        sim_s = time.perf_counter() - t0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([EXE, "--store", store, "serve", "--read-only", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        head = httpx.get(url + "/v1/head").json()["position"]
        year = max(r["year"] for r in httpx.get(url + "/v1/compliance").json()["rows"])
        firm = httpx.get(url + f"/v1/compliance?year={year}").json()["rows"][0]["firm_id"]
        paths = ["/", "/market", f"/compliance/{year}", f"/compliance/{year}?sort=verified&order=desc&per_page=500",
                 f"/compliance/{year}?sector=power&per_page=10&page=2", f"/firms/{firm}", f"/coverage/{year}", "/audit",
                 f"/data/v1/compliance/{year}.csv", f"/data/v1/compliance/{year}.json", "/data/v1/market/daily.json",
                 "/data/v1/market/yearly.csv", f"/data/v1/coverage/{year}.json", f"/data/v1/firms/{firm}.csv",
                 f"/market?as_of={head // 2}", f"/?as_of={head // 2}", f"/v1/compliance?year={year}"]
        rows = []
        client = httpx.Client(timeout=120)  # one connection, as a browser keeps it
        for p in paths:
            times, size = [], 0
            for _ in range(max(a.requests, 2)):
                t0 = time.perf_counter()
                r = client.get(url + p)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (p, r.status_code)
                size = len(r.content)
            rows.append({"path": p, "first_ms": round(times[0], 1), "median_ms": round(statistics.median(times[1:]), 1),
                         "bytes": size})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = {"store": store, "events": head, "simulate_s": None if sim_s is None else round(sim_s, 1), "pages": rows}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"store {store}: {head:,} events" + (f" (simulated in {sim_s:.1f} s)" if sim_s else ""))
    print(f"{'path':70} {'first ms':>9} {'median ms':>10} {'bytes':>9}")
    for r in rows:
        print(f"{r['path']:70} {r['first_ms']:>9} {r['median_ms']:>10} {r['bytes']:>9,}")


if __name__ == "__main__":
    main()
