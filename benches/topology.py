"""One Redis node against a three-primary Redis Cluster (and a Sentinel-managed primary), in one run.

    python benches/topology.py [--rounds 3] [--seconds 5] [--json docs/benchmarks/topology.json]

Starts, on loopback, a TLS-only redis-server, a TLS-only cluster of three primaries with a
replica each, and a primary with a replica behind three sentinels, all with passwords. Then it
runs the same workload through secure_redis GenericRedisCache (TLS + AUTH + Fernet, L1 off so
every call reaches Redis) against each, in interleaved rounds: 64 concurrent tasks doing a
90/10 get/set mix on 2 KB JSON values, and get_many of 100 keys. It prints the median
operations per second over the rounds, with min and max, and each topology's ratio to one node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import secure_redis as sr
from secure_redis.testing import (
    RedisCluster,
    RedisSentinelSet,
    RedisServer,
    make_test_pki,
    random_password,
)

CONCURRENCY = 64
KEYSPACE = 1000
VALUE = {"model": "bench-llm", "operation": "summarize", "result": " ".join(["latency encryption"] * 100)}


async def per_second(tasks: int, seconds: float, step) -> float:
    """What `tasks` workers, each running `await step(rng)` until `seconds` are up, count per
    second (each step returns how much it did)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            # Not `done += await ...`: that reads `done` before the await and loses the
            # other workers' counts made meanwhile.
            counted = await step(rng)
            done += counted

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return done / (time.perf_counter() - started)


async def mixed_throughput(cache: sr.GenericRedisCache, seconds: float) -> float:
    """Operations per second of 64 tasks doing 90 % get, 10 % set for `seconds`."""

    async def one_op(rng: random.Random) -> int:
        key = f"bench:{rng.randrange(KEYSPACE)}"
        if rng.random() < 0.1:
            await cache.set(key, VALUE)
        else:
            await cache.get(key)
        return 1

    return await per_second(CONCURRENCY, seconds, one_op)


async def get_many_rate(cache: sr.GenericRedisCache, seconds: float) -> float:
    """Values per second read by get_many of 100 keys, 8 batches in flight."""

    async def one_batch(rng: random.Random) -> int:
        start = rng.randrange(KEYSPACE - 100)
        return len(await cache.get_many([f"bench:{i}" for i in range(start, start + 100)]))

    return await per_second(8, seconds, one_batch)


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        pki = make_test_pki(Path(folder) / "pki")
        password, sentinel_password = random_password(), random_password()
        tls = dict(cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert)
        single = RedisServer(Path(folder) / "single", password=password, **tls).start()
        cluster = RedisCluster(
            Path(folder) / "cluster", password=password, client_cert=pki.client_cert, client_key=pki.client_key, **tls
        ).start()
        sentinels = RedisSentinelSet(
            Path(folder) / "sentinel", password=password, sentinel_password=sentinel_password, **tls
        ).start()
        os.environ["REDIS_SENTINEL_PASSWORD"] = sentinel_password
        try:
            config = sr.SecurityConfig(
                redis_auth=password, encryption_key=sr.generate_encryption_key(), tls_ca_path=str(pki.ca_cert)
            )
            caches = {
                "one node": sr.GenericRedisCache(single.url, security_config=config, enable_l1_cache=False),
                "cluster (3 primaries)": sr.GenericRedisCache(
                    cluster.seed_url, security_config=config, cluster_nodes=cluster.node_urls, enable_l1_cache=False
                ),
                "sentinel primary": sr.GenericRedisCache(
                    "rediss://127.0.0.1:6380/0",
                    security_config=config,
                    sentinel_nodes=sentinels.sentinel_urls,
                    sentinel_master=RedisSentinelSet.MASTER_NAME,
                    enable_l1_cache=False,
                ),
            }
            for cache in caches.values():
                assert await cache.connect(), "could not connect"
                await cache.set_many({f"bench:{i}": VALUE for i in range(KEYSPACE)})
            results: dict[str, dict[str, list[float]]] = {
                name: {"mixed_ops_per_s": [], "get_many_values_per_s": []} for name in caches
            }
            for round_number in range(args.rounds):
                order = list(caches) if round_number % 2 == 0 else list(reversed(caches))
                for name in order:
                    results[name]["mixed_ops_per_s"].append(await mixed_throughput(caches[name], args.seconds))
                    results[name]["get_many_values_per_s"].append(await get_many_rate(caches[name], args.seconds))
            for cache in caches.values():
                await cache.disconnect()
        finally:
            sentinels.stop()
            cluster.stop()
            single.stop()
    return results


def summarize(results: dict) -> dict:
    base = {metric: statistics.median(v) for metric, v in results["one node"].items()}
    summary = {}
    for name, metrics in results.items():
        summary[name] = {
            metric: {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "rounds": values,
                "ratio_to_one_node": statistics.median(values) / base[metric],
            }
            for metric, values in metrics.items()
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    summary = summarize(asyncio.run(run(args)))
    print(f"\n2 KB JSON, TLS + AUTH + Fernet, L1 off; medians of {args.rounds} rounds (min-max)")
    print(f"{'topology':<24}{'90/10 mix, 64 tasks (ops/s)':>40}{'get_many x100 (values/s)':>40}")
    for name, metrics in summary.items():
        cells = []
        for metric in ("mixed_ops_per_s", "get_many_values_per_s"):
            m = metrics[metric]
            cells.append(f"{m['median']:>9,.0f} ({m['min']:,.0f}-{m['max']:,.0f}) {m['ratio_to_one_node']:.2f}x")
        print(f"{name:<24}{cells[0]:>40}{cells[1]:>40}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        load = open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"
        args.json.write_text(
            json.dumps({"load_average_1min_at_end": load, "cpus": os.cpu_count(), "results": summary}, indent=2)
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
