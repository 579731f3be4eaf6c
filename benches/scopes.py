"""What a tenant scope costs per operation: the same calls on the whole cache and on a scope's
view, side by side in one run over one TLS redis-server.

    python benches/scopes.py [--calls 2000] [--rounds 7]

Rows (each the median over rounds of the mean time per call, rounds interleaving the rows):
``get`` of an L1 hit, ``get`` and ``set`` with L1 on and off, for the whole cache, a view held
across calls, and a view built per call (``cache.scope(name)`` in a request dependency). With
L1 off a scope reads its key record on every call (nothing could tell this process that it
was forgotten elsewhere), so those rows pay a second round trip. Then one-off costs: the
first call on a new scope (reading, then creating its record) and ``forget_scope(wait=True)``
of a scope of 1,000 entries.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from _tls_redis import tls_redis


async def per_call(call: Callable[[int], Awaitable[Any]], calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        await call(i)
    return (time.perf_counter() - started) / calls * 1e6


async def run(args: argparse.Namespace) -> None:
    import secure_redis as sr

    with tempfile.TemporaryDirectory(prefix="secure-redis-scopes-") as workdir, tls_redis(Path(workdir)) as redis:
        server, config = redis.server, redis.config()
        caches = {
            "L1 on": sr.GenericRedisCache(server.url, security_config=config, l1_cache_size=1000),
            "L1 off": sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False),
        }
        value = {"answer": "x" * 200}
        rows: dict[str, Callable[[int], Awaitable[Any]]] = {}
        for tier, cache in caches.items():
            assert await cache.connect()
            held = cache.scope("tenant-bench")
            for target in (cache, held):
                await target.set_many({f"k{i}": value for i in range(100)})
            kinds = {"whole cache": lambda c=cache: c, "scope view, held": lambda h=held: h,
                     "scope view per call": lambda c=cache: c.scope("tenant-bench")}
            for label, view_of in kinds.items():
                rows[f"get, {tier}: {label}"] = lambda i, v=view_of: v().get(f"k{i % 100}")
                rows[f"set, {tier}: {label}"] = lambda i, v=view_of: v().set(f"w{i % 100}", value)
        samples: dict[str, list[float]] = {row: [] for row in rows}
        for row, call in rows.items():  # warm-up
            await per_call(call, 50)
        for _ in range(args.rounds):
            for row, call in rows.items():
                samples[row].append(await per_call(call, args.calls))
        print(f"{args.calls} calls per row per round, {args.rounds} rounds; median of the per-round means")
        print(f"{'operation':<42} {'µs/call':>9} {'vs whole':>9}")
        for row in rows:
            median = statistics.median(samples[row])
            operation, kind = row.split(": ")
            whole = statistics.median(samples[f"{operation}: whole cache"])
            print(f"{row:<42} {median:>9.1f} {median / whole:>8.2f}x")

        cache = caches["L1 on"]
        firsts, forgets = [], []
        for n in range(args.rounds):
            name = f"fresh-{n}"
            started = time.perf_counter()
            await cache.scope(name).get("k")  # reads the record: none yet
            read_miss = time.perf_counter() - started
            started = time.perf_counter()
            await cache.scope(name).set("k", value)  # creates the record, then writes
            firsts.append(((time.perf_counter() - started) * 1e6, read_miss * 1e6))
            await cache.scope(name).set_many({f"e{i}": value for i in range(1000)})
            started = time.perf_counter()
            removed = await cache.forget_scope(name, wait=True)
            forgets.append((time.perf_counter() - started) * 1e3)
            assert removed == 1001
        print(f"first get of a new scope (record absent): {statistics.median(f[1] for f in firsts):.0f} µs; "
              f"first set (creates the record): {statistics.median(f[0] for f in firsts):.0f} µs")
        print(f"forget_scope(wait=True) of 1,001 entries: {statistics.median(forgets):.1f} ms (median of {args.rounds})")
        for cache in caches.values():
            await cache.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
