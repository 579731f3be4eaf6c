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
import subprocess
import sys
import tempfile
from pathlib import Path

from _tls_redis import config_from_spec, tls_redis
from _workload import (GETS_PER_TASK, L1_GETS, SEQUENTIAL, TASKS, interleaved_rounds, l1_get_p50_us, print_medians,
                       redis_workload)

ROOT = Path(__file__).resolve().parent.parent


class ListMonitor:
    """Keeps every record call; the cheapest monitor that still does something with it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def record_cache_operation_time(self, operation, duration, cache_hit, text_length=0, additional_data=None):  # noqa: ANN001
        self.calls.append((operation, duration, cache_hit))


async def worker(spec: dict) -> dict:
    import secure_redis as sr

    config = config_from_spec(spec)
    monitor = ListMonitor() if spec["monitored"] else None

    l1 = sr.GenericRedisCache(spec["url"], security_config=config, performance_monitor=monitor)
    assert await l1.connect()
    out: dict = {"l1_get_p50_us": await l1_get_p50_us(l1, "monitor-bench:l1")}
    await l1.disconnect()

    cache = sr.GenericRedisCache(spec["url"], security_config=config, enable_l1_cache=False,
                                 performance_monitor=monitor)
    assert await cache.connect()
    out.update(await redis_workload(cache, "monitor-bench"))
    await cache.disconnect()
    if monitor is not None:  # every call recorded: the L1 set, then every get and set
        expected = 1 + L1_GETS + 2 * SEQUENTIAL + TASKS * GETS_PER_TASK
        assert len(monitor.calls) == expected, len(monitor.calls)
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
        names = list(variants)
        with tls_redis(workdir) as redis:
            spec = redis.spec()

            def env_for(name: str) -> dict[str, str]:
                path, monitored = variants[name]
                return {"PYTHONPATH": str(path), "MONITOR_BENCH_SPEC": json.dumps({**spec, "monitored": monitored})}

            results = interleaved_rounds(__file__, names, args.rounds, env_for)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"medians of {args.rounds} rounds, 200 B values (ratio to base = python/secure_redis at {args.base})")
    print_medians(results, 34, "10.2f")


if __name__ == "__main__":
    main()
