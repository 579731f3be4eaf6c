"""What ``performance_monitor=`` costs: get/set through GenericRedisCache without a monitor,
against the Python package of another git ref (default ``main``), and with a monitor.

    python benches/monitor_overhead.py [--base main] [--rounds 10]

Three variants, each a copy of ``python/secure_redis`` with this checkout's built
``_native.abi3.so`` (the Rust side is the same, so only the Python wrapper differs):

  base       the package at ``--base``, no monitor: the code before the change
  new        this checkout, no monitor: must match base
  monitored  this checkout with a monitor whose record methods append to a list (the cost of
             recording itself, not of any real monitor's bookkeeping)

One TLS redis-server serves every run. Each round runs every variant once, in a freshly
exec'd process, in an order that reverses every round; the table shows medians and each
variant's ratio to base. Workloads: sequential get of an L1 hit (no I/O, so the Python
overhead shows most), sequential get and set through Redis (L1 off), and 64-task concurrent
gets through Redis with client CPU per operation. Values are 200 B of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ListMonitor:
    """Keeps every record call; the cheapest monitor that still does something with it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def record_cache_operation_time(self, operation, duration, cache_hit, text_length=0, additional_data=None):  # noqa: ANN001
        self.calls.append((operation, duration, cache_hit))


def _p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def worker(spec: dict) -> dict:
    import secure_redis as sr

    config = sr.SecurityConfig(redis_auth=spec["password"], encryption_key=spec["key"], tls_ca_path=spec["ca"])
    monitor = ListMonitor() if spec["monitored"] else None
    value = {"text": "x" * 188}
    out: dict = {}

    l1 = sr.GenericRedisCache(spec["url"], security_config=config, performance_monitor=monitor)
    assert await l1.connect()
    await l1.set("monitor-bench:l1", value, ttl=3600)
    times = []
    for _ in range(20_000):
        started = time.perf_counter()
        await l1.get("monitor-bench:l1")
        times.append(time.perf_counter() - started)
    out["l1_get_p50_us"] = _p50_us(times)
    await l1.disconnect()

    cache = sr.GenericRedisCache(spec["url"], security_config=config, enable_l1_cache=False,
                                 performance_monitor=monitor)
    assert await cache.connect()
    keys = [f"monitor-bench:{i}" for i in range(500)]
    times = []
    for i in range(2000):
        started = time.perf_counter()
        await cache.set(keys[i % 500], value, ttl=3600)
        times.append(time.perf_counter() - started)
    out["redis_set_p50_us"] = _p50_us(times)
    times = []
    for i in range(2000):
        started = time.perf_counter()
        await cache.get(keys[i % 500])
        times.append(time.perf_counter() - started)
    out["redis_get_p50_us"] = _p50_us(times)

    async def task(n: int) -> None:
        for j in range(200):
            await cache.get(keys[(n * 200 + j) % 500])

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task(n) for n in range(64)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out["redis_get_64_tasks_ops_per_s"] = 64 * 200 / wall
    out["redis_get_64_tasks_cpu_us_per_op"] = cpu / (64 * 200) * 1e6
    await cache.disconnect()
    if monitor is not None:
        assert len(monitor.calls) == 1 + 20_000 + 4000 + 64 * 200, len(monitor.calls)  # every call recorded
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git ref whose python/secure_redis is the baseline")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # the settings come from the environment, never the command line
        print(json.dumps(asyncio.run(worker(json.loads(os.environ["MONITOR_BENCH_SPEC"])))))
        return

    sys.path.insert(0, str(ROOT / "python"))
    import secure_redis as sr
    from secure_redis.testing import RedisServer, make_test_pki, random_password

    so = ROOT / "python" / "secure_redis" / "_native.abi3.so"
    workdir = Path(tempfile.mkdtemp(prefix="secure-redis-monitor-bench-"))
    try:
        base = workdir / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "python/secure_redis"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        shutil.copy(so, base / "python" / "secure_redis" / "_native.abi3.so")
        new = workdir / "new" / "python"
        shutil.copytree(ROOT / "python" / "secure_redis", new / "secure_redis",
                        ignore=shutil.ignore_patterns("__pycache__"))
        variants = {"base": (base / "python", False), "new": (new, False), "monitored": (new, True)}
        pki = make_test_pki(workdir / "pki")
        password = random_password(32)
        spec = {"password": password, "key": sr.generate_encryption_key(), "ca": str(pki.ca_cert)}
        names = list(variants)
        results: dict[str, list[dict]] = {name: [] for name in names}
        with RedisServer(workdir / "tls", password=password, cert=pki.server_cert, key=pki.server_key,
                         ca=pki.ca_cert) as server:
            spec["url"] = server.url
            for round_ in range(args.rounds):
                for name in names if round_ % 2 == 0 else names[::-1]:
                    path, monitored = variants[name]
                    env = dict(os.environ, PYTHONPATH=str(path),
                               MONITOR_BENCH_SPEC=json.dumps({**spec, "monitored": monitored}))
                    done = subprocess.run([sys.executable, __file__, "--worker"],
                                          env=env, capture_output=True, text=True, timeout=600)
                    if done.returncode != 0:
                        raise SystemExit(f"{name} failed: {done.stderr[-1000:]}")
                    results[name].append(json.loads(done.stdout))
                    with open("/proc/loadavg") as loadavg:
                        load = loadavg.read().split()[0]
                    print(f"round {round_ + 1}/{args.rounds} {name} (load {load})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"medians of {args.rounds} rounds, 200 B values (ratio to base = python/secure_redis at {args.base})")
    for metric in results[names[0]][0]:
        medians = {name: statistics.median(run[metric] for run in results[name]) for name in names}
        print(f"  {metric:34}" + "".join(
            f"  {name} {medians[name]:10.2f} ({medians[name] / medians[names[0]]:4.2f})" for name in names))


if __name__ == "__main__":
    main()
