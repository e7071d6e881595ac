"""Cache refresh speed: the pipelined CacheStore.refresh vs a naive one-SET-per-round-trip
writer, on a local redis-server (loopback TCP), at 1x and 100x the default data's users.

Values: synthetic DMQN-shaped user states (default 100 clusters x 32 dims float16 =
6,400 bytes) + 16 float32 aggregates, 6,484 bytes per user with the header
(``quantrec.serving.codec``). The default data (Online Retail II) has 5,878 customers;
100x = 587,800 users (about 3.8 GB in Redis). To keep the generator out of the timing,
states come from a pool of 512 seeded random states and every user gets its own
aggregates (its index first): each value is distinct and carries the version tag.

Rows per scale (the server is emptied between them: one big version at a time; the
median of --repeat runs up to 100k users, one run above):
  pipelined  CacheStore.refresh of n users: MSET batches, ``depth`` in flight, lock
             renewal; the write phase is timed (users/s, MB/s of value bytes); also the
             verification (SCAN count + sample checksums) and, from a later refresh, the
             collection of one full version (SCAN + UNLINK, "GC s")
  naive      ``client.set(key, value)`` per user, one round trip each (redis-py)
Then read latency of ``CacheReader.read(user, 100 items)`` (one round trip, Lua) vs 101
GETs, the encoder's speed (ValueSchema.encode_many on float32 states), and the server's
ceiling for values of this size: Redis's own C client (redis-benchmark) pipelined 100 deep.

    .venv/bin/python benchmarks/cache_refresh.py [--quick] [--json PATH] [--scales 1,100]
        [--clusters 100] [--dim 32] [--aggregates 16] [--batch-size 500] [--depth 4] [--unix]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantrec.serving.cache import CacheReader, CacheStore, Keys  # noqa: E402
from quantrec.serving.codec import ValueSchema  # noqa: E402
from quantrec.serving.redis_server import LocalRedisServer  # noqa: E402

DEFAULT_USERS = 5878  # distinct customers of Online Retail II (cleaned purchase lines)
POOL = 512


def synthetic_users(schema: ValueSchema, version: str, n: int, seed: int = 0) -> Iterator[tuple[int, bytes]]:
    """n (user id, value) pairs: pooled random states, per-user aggregates (index first).
    The pool is built here, before the caller starts a clock on the returned iterator."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((POOL,) + schema.shape).astype(schema.np_dtype)
    pool = [s.tobytes() for s in states]
    tails = [rng.gamma(2.0, 50.0, len(schema.fields) - 1).astype("<f4").tobytes() for _ in range(POOL)]
    head = schema.header(version)

    def pairs() -> Iterator[tuple[int, bytes]]:
        for i in range(n):
            yield i, b"".join((head, pool[i % POOL], struct.pack("<f", i), tails[i % POOL]))
    return pairs()


def item_pairs(schema: ValueSchema, version: str, n: int, seed: int = 1) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    values = schema.encode_many(rng.standard_normal((n,) + schema.shape),
                                rng.gamma(2.0, 5.0, (n, len(schema.fields))), version)
    return [(f"SKU{i}", v) for i, v in enumerate(values)]


def naive_write(client, schema: ValueSchema, version: str, n: int) -> float:
    """Seconds to write n users with one SET per round trip."""
    keys = Keys()
    users = synthetic_users(schema, version, n)
    start = time.perf_counter()
    for uid, value in users:
        client.set(keys.user(version, uid), value)
    return time.perf_counter() - start


def read_latency(client, n_users: int, n_reads: int, seed: int = 2) -> dict:
    """p50/p99 ms of one user + 100 items: one Lua round trip vs 101 GETs."""
    reader = CacheReader(client)
    keys = Keys()
    version = reader.read(0).version
    rng = np.random.default_rng(seed)
    one, naive = [], []
    for _ in range(n_reads):
        user = int(rng.integers(0, n_users))
        items = [f"SKU{i}" for i in rng.integers(0, 5000, 100)]
        t = time.perf_counter()
        read = reader.read(user, items)
        one.append(time.perf_counter() - t)
        assert read.user is not None and all(v is not None for v in read.items)
        t = time.perf_counter()
        client.get(keys.user(version, user))
        for item in items:
            client.get(keys.item(version, item))
        naive.append(time.perf_counter() - t)
    q = lambda xs, p: float(np.percentile(np.array(xs) * 1e3, p))  # noqa: E731
    return {"reads": n_reads, "one_round_trip_p50_ms": q(one, 50), "one_round_trip_p99_ms": q(one, 99),
            "gets_101_p50_ms": q(naive, 50), "gets_101_p99_ms": q(naive, 99)}


def server_ceiling(port: int, value_bytes: int, n: int) -> dict | None:
    """SET/s of Redis's own C client (redis-benchmark, when installed) with values of the same
    size: pipelined 100 deep (what the server can take at all) and one per round trip."""
    import shutil
    import subprocess
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None

    def rps(*extra: str) -> float:
        out = subprocess.run([binary, "-h", "127.0.0.1", "-p", str(port), "-t", "set", "-d", str(value_bytes),
                              "-r", "1000000", "--csv", *extra], capture_output=True, text=True, timeout=600)
        row = [line for line in out.stdout.splitlines() if line.startswith('"SET"')][0]
        return float(row.split(",")[1].strip('"'))
    return {"c_pipelined_100_sets_per_s": rps("-n", str(n), "-P", "100"),
            "c_one_per_round_trip_sets_per_s": rps("-n", str(max(n // 10, 1000)), "-c", "1")}


def encode_speed(schema: ValueSchema, n: int = 2000) -> float:
    states = np.random.default_rng(3).standard_normal((n,) + schema.shape).astype(np.float32)
    aggs = np.zeros((n, len(schema.fields)))
    start = time.perf_counter()
    schema.encode_many(states, aggs, "bench")
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: scales 0.2 and 1, one run each, few reads")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--scales", default="1,100", help="multiples of --base-users (comma separated)")
    ap.add_argument("--base-users", type=int, default=DEFAULT_USERS)
    ap.add_argument("--clusters", type=int, default=100, help="DMQN interest clusters per user")
    ap.add_argument("--dim", type=int, default=32, help="DMQN state dims per cluster")
    ap.add_argument("--aggregates", type=int, default=16, help="float32 aggregates per user")
    ap.add_argument("--items", type=int, default=5000, help="items written with each version")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per row (median) up to 100k users; 1 above")
    ap.add_argument("--unix", action="store_true", help="connect over a unix socket instead of TCP")
    args = ap.parse_args(argv)
    scales = [0.2, 1.0] if args.quick else [float(s) for s in args.scales.split(",")]
    reads = 200 if args.quick else args.reads
    if args.quick:
        args.repeat = 1

    user_schema = ValueSchema("user", (args.clusters, args.dim), tuple(f"agg{i}" for i in range(args.aggregates)))
    item_schema = ValueSchema("item", (args.dim,), tuple(f"iagg{i}" for i in range(8)))
    rows, reads_out, ceiling = [], None, None
    with LocalRedisServer(unix_socket=args.unix) as server:
        import redis
        client = (redis.Redis(unix_socket_path=server.unix_socket) if args.unix else server.client())
        info = client.info("server")
        for scale in scales:
            n = int(round(args.base_users * scale))
            repeat = args.repeat if n <= 100_000 else 1  # 100x: one run of each (minutes, GBs)
            t = time.perf_counter()
            store = CacheStore(client, keep=1, batch_size=args.batch_size, depth=args.depth, progress=False)
            runs = []
            for r in range(repeat):
                client.flushall()  # one big version at a time: 100x is ~3.8 GB per version
                # the measured refresh: n users into an empty cache
                rep = store.refresh(f"day1-{r}", synthetic_users(user_schema, f"day1-{r}", n),
                                    user_schema=user_schema)
                assert rep.users == n
                runs.append(rep)
            client.flushall()
            # day2: users + items, for the read latency; then a tiny day3 whose refresh collects
            # day2 (keep=1): the time to SCAN + UNLINK one full version
            store.refresh("day2", synthetic_users(user_schema, "day2", n), item_pairs(item_schema, "day2", args.items),
                          user_schema=user_schema, item_schema=item_schema)
            memory_gb = client.info("memory")["used_memory"] / 1e9
            if reads_out is None:
                reads_out = read_latency(client, n, reads)
            gc = store.refresh("day3", synthetic_users(user_schema, "day3", 100), user_schema=user_schema)
            rates = sorted(n / x.write_seconds for x in runs)
            median = runs[sorted(range(repeat), key=lambda i: runs[i].write_seconds)[repeat // 2]]
            rows.append({"scale": scale, "mode": "pipelined", "users": n, "runs": repeat,
                         "write_s": median.write_seconds, "users_per_s": n / median.write_seconds,
                         "users_per_s_range": [rates[0], rates[-1]],
                         "mb_per_s": median.bytes / 1e6 / median.write_seconds,
                         "verify_s": median.verify_seconds, "refresh_total_s": median.seconds,
                         "collect_s": gc.collect_seconds, "collected_keys": gc.keys_unlinked,
                         "used_memory_gb_one_version": memory_gb})
            naive_s = []
            for r in range(repeat):
                client.flushall()
                naive_s.append(naive_write(client, user_schema, "naive", n))
            client.flushall()
            naive_s.sort()
            seconds = naive_s[repeat // 2]
            rows.append({"scale": scale, "mode": "naive", "users": n, "runs": repeat, "write_s": seconds,
                         "users_per_s": n / seconds, "users_per_s_range": [n / naive_s[-1], n / naive_s[0]],
                         "mb_per_s": n * user_schema.nbytes / 1e6 / seconds})
            rows[-2]["speedup_vs_naive"] = rows[-2]["users_per_s"] / rows[-1]["users_per_s"]
            if ceiling is None and not args.unix:
                client.flushall()
                ceiling = server_ceiling(server.port, user_schema.nbytes, 50_000 if args.quick else 200_000) or {}
                client.flushall()
            print(f"  scale {scale:g}: pipelined {rows[-2]['users_per_s']:,.0f}/s, naive "
                  f"{rows[-1]['users_per_s']:,.0f}/s ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        client.close()
    enc = encode_speed(user_schema)

    print(f"\ncache refresh: {user_schema.nbytes:,} B per user ({args.clusters}x{args.dim} float16 + "
          f"{args.aggregates} float32 + header), {args.items} items per version, batch {args.batch_size} x "
          f"depth {args.depth}, redis {info['redis_version']} over {'unix socket' if args.unix else 'TCP loopback'}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(the machine is shared: figures vary with it)")
    print(f"{'scale':>6} {'users':>9} {'mode':>10} {'runs':>4} {'write s':>8} {'users/s':>9} {'(min-max)':>17} "
          f"{'MB/s':>6} {'verify s':>8} {'GC s':>6} {'vs naive':>8}")
    for r in rows:
        lo, hi = r["users_per_s_range"]
        extra = (f"{r['verify_s']:>8.2f} {r['collect_s']:>6.2f} {r['speedup_vs_naive']:>7.1f}x"
                 if r["mode"] == "pipelined" else f"{'':>8} {'':>6} {'':>8}")
        print(f"{r['scale']:>5g}x {r['users']:>9,} {r['mode']:>10} {r['runs']:>4} {r['write_s']:>8.2f} "
              f"{r['users_per_s']:>9,.0f} {f'({lo:,.0f}-{hi:,.0f})':>17} {r['mb_per_s']:>6.0f} {extra}")
    print(f"\nread 1 user + 100 items ({reads_out['reads']} reads): one round trip p50 "
          f"{reads_out['one_round_trip_p50_ms']:.2f} ms / p99 {reads_out['one_round_trip_p99_ms']:.2f} ms; "
          f"101 GETs p50 {reads_out['gets_101_p50_ms']:.2f} ms / p99 {reads_out['gets_101_p99_ms']:.2f} ms")
    print(f"encode (ValueSchema.encode_many, float32 -> float16): {enc:,.0f} users/s")
    if ceiling:
        print(f"server ceiling, redis-benchmark (C) SET of {user_schema.nbytes:,} B: pipelined x100 "
              f"{ceiling['c_pipelined_100_sets_per_s']:,.0f}/s, one per round trip "
              f"{ceiling['c_one_per_round_trip_sets_per_s']:,.0f}/s")
    pipelined = [r for r in rows if r["mode"] == "pipelined"]
    print("goals: >= 50k users/s: " + ", ".join(f"{r['scale']:g}x {'met' if r['users_per_s'] >= 5e4 else 'NOT met'}"
                                                  for r in pipelined)
          + "; >= 20x naive: " + ", ".join(f"{r['scale']:g}x {'met' if r['speedup_vs_naive'] >= 20 else 'NOT met'}"
                                          for r in pipelined))
    out = {"config": vars(args) | {"value_bytes": user_schema.nbytes, "redis_version": info["redis_version"]},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
           "rows": rows, "reads": reads_out, "encode_users_per_s": enc, "server_ceiling": ceiling}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
