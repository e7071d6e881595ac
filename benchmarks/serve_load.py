"""Load test of the scoring service on loopback: latency and throughput at 100 candidates
per request, several concurrency levels, and a Redis restart under load.

Setup (all real): a registry version trained by the pipeline's own stages (codebook,
train, shadow, publish: ``tests/serving/serving_fixtures.build_version``, imported by
file path) on the default data, with the daily model sizes (``small()`` presets; one
epoch: latency does not depend on how well they learned); a local ``redis-server``
(persistence off, but the restart below saves and reloads its data like a Redis with
snapshots); the cache refreshed by ``refresh_cache_stage`` (float16 DMQN states, the
default); the service started as ``python -m pipelines.serve`` (uvicorn, real HTTP).

Requests: a user with history (drawn from the cached users) and 100 candidates drawn
from the items sold in the 30 days before the as-of day, request time = the as-of day
10:00. The client is a bounded asyncio loop (httpx, keep-alive): ``concurrency``
requests in flight, at most ``--requests`` per level and ``--seconds`` per level.
Client and server share this machine's 2 cores: the client's own CPU is in the figures.

Rows:
  in-process   ScoringService.score without HTTP (the same numbers as the service's
               quantrec_score_seconds histogram), with its breakdown: cache read (one
               Lua round trip), feature frame, GMV model (features + RQ-Reg decoding),
               DMQN score
  http c=N     client-side latency p50 / p90 / p99 and throughput at concurrency N
  restart      concurrency 4 for --restart-seconds; after 3 s the Redis is shut down
               (SAVE) and started again on the same port, at once and after
               --down-seconds: requests failed (and counted by the service), seconds from
               the shutdown to the first 200 again, and whether the service process was
               the same before and after (it is never restarted)

    .venv/bin/python benchmarks/serve_load.py [--quick] [--json PATH] [--concurrency 1,4,16]
        [--requests 400] [--seconds 60] [--workers 1] [--root DIR (reuse a built version)]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from quantrec.serving.redis_server import LocalRedisServer, free_port  # noqa: E402

# the daily model sizes (small presets), one epoch; windows short enough to build in minutes
DAILY_CONFIG = {
    "tasks": {"windows": {"eval_days": 2, "val_days": 5, "train_days": 60}, "purchase_train_days": 14},
    "models": {"daily": ["rqreg", "wlr", "dmqn"], "max_train_rows": 20000, "models": {
        "rqreg": {"train": {"epochs": 1, "progress": False}},
        "wlr": {"train": {"epochs": 1, "progress": False}},
        "dmqn": {"max_train_requests": 500, "train": {"epochs": 1, "progress": False}}}},
}
FULL = ("2009-12-01", "2011-12-10", "2011-12-09")   # slice start, end (exclusive), run_date


def _fixtures():
    spec = importlib.util.spec_from_file_location("serving_fixtures", REPO / "tests/serving/serving_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(root: Path, quick: bool) -> dict:
    fx = _fixtures()
    done = root / "fixture.json"
    if done.exists():  # --root of an earlier run: reuse its version
        out = json.loads(done.read_text())
        out["root"] = Path(out["root"])
        return out
    t = time.perf_counter()
    out = fx.build_version(root) if quick else fx.build_version(root, DAILY_CONFIG, *FULL)
    out["build_seconds"] = time.perf_counter() - t
    done.write_text(json.dumps({**out, "root": str(out["root"])}, default=str))
    return out


def make_requests(as_of: str, events: Any, n: int, candidates: int, seed: int = 0) -> list[dict]:
    """Bodies of n requests: a user with history before ``as_of`` (every such user is
    cached) and ``candidates`` items sold in the 30 days before it."""
    import pandas as pd

    from quantrec.data import schema as S
    rng = np.random.default_rng(seed)
    day = pd.Timestamp(as_of)
    before = events[events[S.DAY] < day]
    catalogue = np.asarray(before[before[S.DAY] >= day - pd.Timedelta(days=30)][S.ITEM].astype(str).unique(),
                           dtype=object)
    users = np.asarray(before[S.USER].astype(str).unique(), dtype=object)
    ts = f"{as_of}T10:00:00"
    return [{"user_id": str(rng.choice(users)), "ts": ts,
             "candidates": [str(x) for x in rng.choice(catalogue, size=min(candidates, len(catalogue)), replace=False)]}
            for _ in range(n)]


def stats(latencies: list[float], wall: float, errors: int, codes: dict) -> dict:
    a = np.asarray(latencies) * 1e3
    q = (lambda p: float(np.percentile(a, p))) if a.size else (lambda p: float("nan"))
    return {"requests": int(a.size) + errors, "ok": int(a.size), "errors": errors, "codes": codes,
            "p50_ms": q(50), "p90_ms": q(90), "p99_ms": q(99), "max_ms": float(a.max()) if a.size else float("nan"),
            "throughput_rps": a.size / wall if wall else 0.0, "seconds": wall}


def in_process(fx: dict, client: Any, bodies: list[dict], n: int) -> dict:
    """ScoringService.score without HTTP, and the time of each step of one request."""
    import pandas as pd

    from quantrec.serving import scorer as SC
    from quantrec.serving.service import ScoringService, ServiceConfig
    svc = ScoringService(ServiceConfig(registry=fx["registry"]), client=client)
    for b in bodies[:10]:
        svc.score(b["user_id"], b["candidates"], b["ts"])
    total = []
    t0 = time.perf_counter()
    for b in bodies[:n]:
        t = time.perf_counter()
        svc.score(b["user_id"], b["candidates"], b["ts"])
        total.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    parts = {"cache_read": [], "feature_frame": [], "gmv_model": [], "dmqn_score": []}
    for b in bodies[:min(n, 200)]:
        cands = b["candidates"]
        t = time.perf_counter()
        read = svc.reader.read(b["user_id"], cands, pairs=True)
        parts["cache_read"].append(time.perf_counter() - t)
        m = svc.models_for(read.version)
        user = SC.user_from_value(read.user, read.pairs, cands, m.layout, svc._fields[read.version])
        items = SC.item_matrix(read.items, len(m.layout.item))
        t = time.perf_counter()
        frame = SC.feature_frame(m.layout, b["user_id"], cands, pd.Timestamp(b["ts"]), user, items)
        parts["feature_frame"].append(time.perf_counter() - t)
        t = time.perf_counter()
        m.calibrator.apply(m.gmv.predict(frame))
        parts["gmv_model"].append(time.perf_counter() - t)
        t = time.perf_counter()
        m.purchase.score(user.state if user and user.state is not None else m.cold_state,
                         np.asarray(cands, dtype=object))
        parts["dmqn_score"].append(time.perf_counter() - t)
    out = stats(total, wall, 0, {})
    out["breakdown_p50_ms"] = {k: float(np.percentile(np.asarray(v) * 1e3, 50)) for k, v in parts.items()}
    out["breakdown_p99_ms"] = {k: float(np.percentile(np.asarray(v) * 1e3, 99)) for k, v in parts.items()}
    return out


def start_service(fx: dict, cache_url: str, port: int, workers: int) -> subprocess.Popen:
    log = open(Path(fx["root"]) / f"serve-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.serve", "--cache", cache_url, "--registry",
                             fx["registry"], "--port", str(port), "--workers", str(workers)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DO_NOT_TRACK": "1"})
    import httpx
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited: see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the service did not become ready in 300 s")


async def load(port: int, bodies: list[dict], concurrency: int, n: int,
               seconds: float) -> tuple[dict, list[tuple[float, int]]]:
    """``concurrency`` workers send requests until ``n`` were sent or ``seconds`` passed.
    Returns the stats and (time since start, status) of every request (0 = transport error)."""
    import httpx
    latencies: list[float] = []
    events: list[tuple[float, int]] = []
    codes: dict[str, int] = {}
    errors = 0
    sent = 0
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal sent, errors
            while sent < n and time.perf_counter() - start < seconds:
                body = bodies[sent % len(bodies)]
                sent += 1
                t = time.perf_counter()
                try:
                    r = await client.post("/score", json=body)
                    status = r.status_code
                except httpx.TransportError:
                    status = 0
                done = time.perf_counter()
                events.append((done - start, status))
                codes[str(status)] = codes.get(str(status), 0) + 1
                if status == 200:
                    latencies.append(done - t)
                else:
                    errors += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stats(latencies, time.perf_counter() - start, errors, codes), events


def restart_under_load(server: LocalRedisServer, port: int, bodies: list[dict], seconds: float,
                       down_seconds: float = 0.0) -> dict:
    """Concurrency 4; at 3 s (another thread, so the client keeps sending): SHUTDOWN SAVE,
    ``down_seconds`` with no server, then it starts again on the same port and reloads its data."""
    import threading
    state: dict[str, float | None] = {"restart_at": None, "back_at": None}
    t0 = time.perf_counter()

    def restart() -> None:
        time.sleep(3.0)
        state["restart_at"] = time.perf_counter() - t0
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        try:  # no retries: a retried SHUTDOWN would wait on a server that is gone
            server.client(retry=Retry(NoBackoff(), 0)).shutdown(save=True)
        except Exception:  # noqa: BLE001 (the connection drops as the server exits)
            pass
        server.stop()   # reaps the exited process
        time.sleep(down_seconds)
        server.start()  # same port, same folder: dump.rdb reloads
        state["back_at"] = time.perf_counter() - t0

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    result, events = asyncio.run(load(port, bodies, 4, 10**9, seconds))
    thread.join()
    shift = result["seconds"] - (time.perf_counter() - t0)  # the load's clock started a moment after t0
    events = [(t - shift, s) for t, s in events]
    failed = [(t, s) for t, s in events if s != 200]
    first_ok = next((t for t, s in events if t > state["back_at"] and s == 200), None)
    return {**result, "down_seconds_asked": down_seconds, "restart_at_s": state["restart_at"],
            "redis_back_at_s": state["back_at"],
            "first_ok_after_restart_s": None if first_ok is None else first_ok - state["restart_at"],
            "failed_window_s": [failed[0][0], failed[-1][0]] if failed else None}


def metric(port: int, name: str) -> float:
    import httpx
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny models on a 2-month slice, few requests")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests", type=int, default=400, help="requests per concurrency level (at most)")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds per concurrency level (at most)")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the service")
    ap.add_argument("--restart-seconds", type=float, default=15.0, help="length of each restart run")
    ap.add_argument("--down-seconds", type=float, default=2.0,
                    help="the second restart keeps Redis down this long (the first restarts at once)")
    ap.add_argument("--root", help="folder of the built version (reused when it holds one)")
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.seconds, args.concurrency, args.restart_seconds = 60, 20.0, "1,4", 8.0
    levels = [int(c) for c in args.concurrency.split(",")]
    root = Path(args.root or tempfile.mkdtemp(prefix="quantrec-serve-load-"))
    root.mkdir(parents=True, exist_ok=True)
    fx = build(root, args.quick)
    print(f"version {fx['version']} in {fx['registry']}", flush=True)

    from quantrec.data.tasks import read_table
    from quantrec.serving.refresh import CacheConfig
    from quantrec.stages.refresh_cache import refresh_cache_stage

    out: dict[str, Any] = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                       "python": platform.python_version()},
                           "version": fx["version"], "quick": args.quick, "candidates": args.candidates,
                           "workers": args.workers, "build_seconds": fx.get("build_seconds")}
    port = free_port()
    server = LocalRedisServer(port=free_port(), workdir=root / "redis").start()
    server.client().flushall()  # a reused --root holds the last run's dump.rdb: measure a fresh refresh
    proc = None
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        t = time.perf_counter()
        report = refresh_cache_stage(fx["registry"], fx["version"], fx["paths"]["events"], url, CacheConfig(),
                                     str(root / "refresh.json"), progress=False)
        out["refresh"] = {k: report.get(k) for k in ("status", "users", "items", "pairs", "bytes", "seconds")}
        print(f"refresh: {out['refresh']} ({time.perf_counter() - t:.0f} s)", flush=True)
        bodies = make_requests(report["as_of"], read_table(fx["paths"]["events"]), 500, args.candidates)
        out["in_process"] = in_process(fx, server.client(), bodies, min(args.requests, 300))
        print(f"in-process: {json.dumps(out['in_process'])}", flush=True)
        proc = start_service(fx, url, port, args.workers)
        pid_before = proc.pid
        out["http"] = {}
        for c in levels:
            res, _ = asyncio.run(load(port, bodies, c, args.requests, args.seconds))
            out["http"][str(c)] = res
            print(f"http c={c}: {json.dumps(res)}", flush=True)
        out["restart"] = {}
        for down in (0.0, args.down_seconds):
            before = metric(port, 'quantrec_score_requests_total{outcome="unavailable"}')
            r = restart_under_load(server, port, bodies, args.restart_seconds, down)
            r["service_pid_unchanged"] = proc.poll() is None and proc.pid == pid_before
            r["service_unavailable_counted"] = metric(port, 'quantrec_score_requests_total{outcome="unavailable"}') - before
            out["restart"][str(down)] = r
            print(f"restart (down {down} s): {json.dumps(r)}", flush=True)
        out["load_average_end"] = os.getloadavg()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        server.stop()

    print("\n| run | requests | errors | p50 ms | p90 ms | p99 ms | throughput req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = [("in-process (no HTTP)", out["in_process"])] + [(f"HTTP c={c}", r) for c, r in out["http"].items()] \
        + [(f"HTTP c=4, Redis restart (+{d} s down)", r) for d, r in out["restart"].items()]
    for name, r in rows:
        print(f"| {name} | {r['requests']} | {r['errors']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['throughput_rps']:.1f} |")
    b50, b99 = out["in_process"]["breakdown_p50_ms"], out["in_process"]["breakdown_p99_ms"]
    print("\nbreakdown (in-process, ms p50 / p99): " + ", ".join(f"{k} {b50[k]:.1f} / {b99[k]:.1f}" for k in b50))
    for d, r in out["restart"].items():
        first = r["first_ok_after_restart_s"]
        print(f"restart (+{d} s down): Redis down at {r['restart_at_s']:.1f} s, back at {r['redis_back_at_s']:.1f} s; "
              f"{r['errors']} failed requests ({r['service_unavailable_counted']:.0f} counted by the service); "
              f"first 200 again {'-' if first is None else f'{first:.2f}'} s after the shutdown; "
              f"service process unchanged: {r['service_pid_unchanged']}")
    print(f"load average at the end: {out['load_average_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
