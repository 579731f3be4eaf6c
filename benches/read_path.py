"""A/B of the Redis read path between builds of the extension, L1 off: sequential get latency,
64-task get throughput and client CPU, get_many of 100 values.

    python benches/read_path.py --so old=/tmp/old/_native.abi3.so --so new=/tmp/new/_native.abi3.so \
        [--rounds 12] [--sizes 200,2048] [--sizes 2000000]

Each build is a copy of python/secure_redis with that .so (build them with
`maturin develop --release` and copy the .so away); one TLS redis-server serves every run.
Each round runs every build once, in a freshly exec'd process, in an order that reverses every
round; the table shows medians and each build's ratio to the first. Values of more than
100 KB are random hex (so they stay large once compressed) and are only read sequentially.
Narrower than bench.py on purpose: on a shared, loaded machine only many short interleaved
runs tell a 5 % difference from noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _tls_redis import config_from_spec, tls_redis
from _workload import interleaved_rounds, print_medians

ROOT = Path(__file__).resolve().parent.parent


async def worker(spec: dict) -> dict:
    import secure_redis as sr

    cache = sr.GenericRedisCache(spec["url"], security_config=config_from_spec(spec), enable_l1_cache=False)
    assert await cache.connect()
    out: dict = {}
    for size in spec["sizes"]:
        if size > 100_000:
            await cache.set("read-path:large", {"text": os.urandom(size // 2 - 12).hex()}, ttl=3600)
            latencies = []
            for _ in range(100):
                started = time.perf_counter()
                assert await cache.get("read-path:large") is not None
                latencies.append(time.perf_counter() - started)
            latencies.sort()
            out[str(size)] = {"get_p50_us": latencies[50] * 1e6, "get_p90_us": latencies[90] * 1e6}
            continue
        value = {"text": "x" * (size - 12)}
        keys = [f"read-path:{size}:{i}" for i in range(1000)]
        for i in range(0, 1000, 100):
            await cache.set_many({k: value for k in keys[i:i + 100]}, ttl=3600)
        latencies = []
        for i in range(3000):
            started = time.perf_counter()
            await cache.get(keys[i % 1000])
            latencies.append(time.perf_counter() - started)
        latencies.sort()

        async def task(n: int) -> None:
            for j in range(300):
                await cache.get(keys[(n * 300 + j) % 1000])

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(task(n) for n in range(64)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        many_wall, many_cpu, fetched = time.perf_counter(), time.process_time(), 0
        for batch in range(300):
            start = (batch * 100) % 900
            fetched += len(await cache.get_many(keys[start:start + 100]))
        many_wall, many_cpu = time.perf_counter() - many_wall, time.process_time() - many_cpu
        assert fetched == 30_000, fetched
        out[str(size)] = {
            "get_p50_us": latencies[1500] * 1e6,
            "get_p90_us": latencies[2700] * 1e6,
            "get_ops_per_s": 64 * 300 / wall,
            "get_cpu_us_per_op": cpu / (64 * 300) * 1e6,
            "get_many_values_per_s": fetched / many_wall,
            "get_many_cpu_us_per_value": many_cpu / fetched * 1e6,
        }
    await cache.disconnect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--so", action="append", default=[], help="NAME=PATH of a built _native.abi3.so")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--sizes", default="200,2048", help="JSON value sizes in bytes, comma-separated")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # the settings come from the environment, never the command line
        print(json.dumps(asyncio.run(worker(json.loads(os.environ["READ_PATH_SPEC"])))))
        return
    if not args.so:
        parser.error("give at least one --so NAME=PATH")

    sys.path.insert(0, str(ROOT / "python"))
    builds = dict(item.split("=", 1) for item in args.so)
    workdir = Path(tempfile.mkdtemp(prefix="secure-redis-read-path-"))
    for name, so in builds.items():
        package = workdir / name / "secure_redis"
        shutil.copytree(ROOT / "python" / "secure_redis", package,
                        ignore=shutil.ignore_patterns("_native.abi3.so", "__pycache__"))
        shutil.copy(so, package / "_native.abi3.so")
    sizes = [int(size) for size in args.sizes.split(",")]
    names = list(builds)
    try:
        with tls_redis(workdir) as redis:
            spec = {**redis.spec(), "sizes": sizes}
            results = interleaved_rounds(__file__, names, args.rounds, lambda name: {
                "PYTHONPATH": str(workdir / name), "READ_PATH_SPEC": json.dumps(spec)})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for size in results[names[0]][0]:
        print(f"{size} B values, medians of {args.rounds} rounds (ratio to {names[0]})")
        print_medians({name: [run[size] for run in runs] for name, runs in results.items()}, 28, "10.1f")


if __name__ == "__main__":
    main()
