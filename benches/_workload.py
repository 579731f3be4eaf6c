"""What the interleaved A/B benches (metrics_overhead.py, monitor_overhead.py, read_path.py)
share: the get/set workload through GenericRedisCache, the rounds of freshly exec'd worker
processes, and the table of medians with each variant's ratio to the first.

Invariants: every run is a new process (an interpreter warmed by an earlier variant would
flatter the later ones); the order of variants reverses every round, so drift on a shared,
loaded machine falls on all of them alike; a worker's settings, the Redis password and
encryption key among them, go in its environment, never on its command line. Nothing here
imports ``secure_redis`` at run time: a worker must measure the package copy its PYTHONPATH
names.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from _run_record import load_average

if TYPE_CHECKING:
    from secure_redis import GenericRedisCache

L1_GETS = 20_000
SEQUENTIAL = 2000  # sets through Redis, then as many gets
KEYS = 500
TASKS = 64
GETS_PER_TASK = 200
VALUE = {"text": "x" * 188}  # 200 B once serialised as JSON


def p50_us(samples: list[float]) -> float:
    """The median of durations in seconds, in microseconds."""
    return statistics.median(samples) * 1e6


async def l1_get_p50_us(cache: GenericRedisCache, key: str) -> float:
    """Median latency of a get answered from L1: no I/O, so the Python overhead shows most."""
    await cache.set(key, VALUE, ttl=3600)
    times: list[float] = []
    for _ in range(L1_GETS):
        started = time.perf_counter()
        await cache.get(key)
        times.append(time.perf_counter() - started)
    return p50_us(times)


async def redis_workload(cache: GenericRedisCache, prefix: str) -> dict[str, float]:
    """Sequential set and get medians and 64-task get throughput with client CPU per get.

    ``cache`` must have L1 off, or the gets would never reach Redis.
    """
    keys = [f"{prefix}:{i}" for i in range(KEYS)]
    out: dict[str, float] = {}
    times: list[float] = []
    for i in range(SEQUENTIAL):
        started = time.perf_counter()
        await cache.set(keys[i % KEYS], VALUE, ttl=3600)
        times.append(time.perf_counter() - started)
    out["redis_set_p50_us"] = p50_us(times)
    times = []
    for i in range(SEQUENTIAL):
        started = time.perf_counter()
        await cache.get(keys[i % KEYS])
        times.append(time.perf_counter() - started)
    out["redis_get_p50_us"] = p50_us(times)

    async def task(n: int) -> None:
        for j in range(GETS_PER_TASK):
            await cache.get(keys[(n * GETS_PER_TASK + j) % KEYS])

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task(n) for n in range(TASKS)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out["redis_get_64_tasks_ops_per_s"] = TASKS * GETS_PER_TASK / wall
    out["redis_get_64_tasks_cpu_us_per_op"] = cpu / (TASKS * GETS_PER_TASK) * 1e6
    return out


def interleaved_rounds(script: str, names: Sequence[str], rounds: int,
                       env_for: Callable[[str], Mapping[str, str]]) -> dict[str, list[Any]]:
    """Runs ``script --worker`` once per variant and round; each run's JSON stdout, by variant.

    ``env_for(name)`` gives the variables a variant's worker adds to this process's
    environment (its PYTHONPATH and its spec). Progress goes to stderr, with the load average,
    so a reader can see which rounds ran on a busy machine.
    """
    results: dict[str, list[Any]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            env = dict(os.environ, **env_for(name))
            done = subprocess.run([sys.executable, script, "--worker"],
                                  env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed: {done.stderr[-1000:]}")
            results[name].append(json.loads(done.stdout))
            print(f"round {round_ + 1}/{rounds} {name} (load {load_average()[0]})", file=sys.stderr, flush=True)
    return results


def print_medians(runs: Mapping[str, Sequence[Mapping[str, float]]], label_width: int, number: str) -> None:
    """One line per metric: each variant's median over its runs and its ratio to the first variant.

    ``number`` is the format spec of a median (``"8.1f"``); each bench keeps its own, so its
    table reads as it always has.
    """
    names = list(runs)
    for metric in runs[names[0]][0]:
        medians = {name: statistics.median(run[metric] for run in runs[name]) for name in names}
        print(f"  {metric:{label_width}}" + "".join(
            f"  {name} {medians[name]:{number}} ({medians[name] / medians[names[0]]:4.2f})" for name in names))
