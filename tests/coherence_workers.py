"""What the child processes of tests/test_coherence.py run, and the one definition of a stale read.

Owns the versioned workload those tests share:

- Keys are ``coherence:<index>``; each key has exactly one writer process. A writer performs
  versioned operations on its keys: version ``i`` is either ``set(key, {"key": key, "v": i})``
  or ``delete(key)``. Version 0 is seeded by the test before any child starts.
- After each operation Redis acknowledged, the writer stores ``time.monotonic()`` in a shared
  table (``acks[key * MAX_VERSIONS + version]``; 0.0 means not acknowledged). CLOCK_MONOTONIC
  is system-wide on Linux, so times from different processes compare.
- A reader logs every read as ``(key, t0, version)``, ``t0`` taken just before the call and
  version -1 for a miss, and hands the log back in its result file; the test applies
  ``stale_reads`` to it once every writer has finished.

A read that started at ``t0`` and returned version ``v`` is stale iff some operation on that
key with a version above ``v`` was acknowledged before ``t0 - FRESHNESS_BOUND``. A miss is
never stale. This is the bound of issue 13 item 1: 100 ms on loopback.

Invariants: one writer per key (so acknowledgement times rise with the version, which
``stale_reads`` relies on), and no secret in a result file, a log record or argv (settings
travel through multiprocessing's pipe, never the command line).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import traceback
from typing import Any

import secure_redis as sr

FRESHNESS_BOUND = 0.100
MAX_VERSIONS = 4000  # per key: the shared table's width; a writer stops at this many
DELETE_SHARE = 0.2  # of a writer's operations; the rest are sets
SAMPLE_EVERY = 0.25  # seconds between two L1 hit counts taken by a reader


def key_name(index: int) -> str:
    return f"coherence:{index}"


def make_cache(settings: dict[str, Any]) -> sr.GenericRedisCache:
    """A cache built from picklable settings (url, secrets, CA path, topology arguments).

    ``settings["env"]`` is applied first: the Sentinel password is only read from the
    environment, and putting it there (not on argv) keeps it off the command line."""
    os.environ.update(settings.get("env", {}))
    config = sr.SecurityConfig(
        redis_auth=settings["password"],
        encryption_key=settings["encryption_key"],
        tls_ca_path=settings["ca"],
        # Short, as the rest of the suite uses them: a fault must not stall a worker for long.
        connection_timeout=2.0,
        socket_timeout=1.0,
        max_retries=1,
        retry_delay=0.05,
    )
    return sr.GenericRedisCache(settings["url"], security_config=config, **settings.get("cache_kwargs", {}))


async def failure_count(cache: sr.GenericRedisCache) -> int:
    """Operations that did not reach Redis so far: an unchanged count around an operation
    means Redis acknowledged it (set and delete never raise for an outage)."""
    performance = (await cache.get_cache_stats())["performance"]
    return performance["redis_failures"] + performance["l1_only_writes"]


def run_role(name: str, settings: dict[str, Any], role: dict[str, Any], shared: dict[str, Any],
             result_path: str, cache: sr.GenericRedisCache | None = None) -> None:
    """A child process's entry point: write the result file, whatever happens.

    ``cache`` is given only to forked children (the cache their parent used before forking,
    as under gunicorn --preload); spawned children build their own from ``settings``."""
    result: dict[str, Any] = {"name": name, "pid": os.getpid(), "error": None}
    try:
        result.update(asyncio.run(_run(settings, role, shared, cache)))
    except BaseException:  # reported to the test through the file, which fails on it
        result["error"] = traceback.format_exc()[-3000:]
    with open(result_path, "w") as out:
        json.dump(result, out)


async def _run(settings: dict[str, Any], role: dict[str, Any], shared: dict[str, Any],
               cache: sr.GenericRedisCache | None) -> dict[str, Any]:
    if cache is None:
        cache = make_cache(settings)
        if not await cache.connect():
            raise RuntimeError(f"could not connect: {cache.last_error}")
    deadline = time.monotonic() + role["max_seconds"]
    # Warm up: every key this process reads is read until it holds a value, twice, so the
    # reader's L1 holds each key before any writer changes it (else nothing could go stale).
    for index in role["reads"]:
        while await cache.get(key_name(index)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{key_name(index)} never became readable")
            await asyncio.sleep(0.05)
        await cache.get(key_name(index))
    # Every child warm before the parent starts its clock (and before any write).
    with shared["ready"].get_lock():
        shared["ready"].value += 1
    if not shared["go"].wait(timeout=60):
        raise RuntimeError("the test never said go")

    stop = shared["stop"]

    def running() -> bool:
        return not stop.is_set() and time.monotonic() < deadline

    outcome: dict[str, Any] = {"reads": [], "timeline": [], "writes": 0, "unacknowledged": 0}
    tasks = []
    if role["writes"]:
        tasks.append(_write(cache, role, shared, running, outcome))
    if role["reads"]:
        tasks.append(_read(cache, role, running, outcome))
        tasks.append(_sample(cache, running, outcome))
    await asyncio.gather(*tasks)
    outcome["l1_hits"] = (await cache.get_cache_stats())["performance"]["l1_hits"]
    await cache.disconnect()
    return outcome


async def _write(cache: sr.GenericRedisCache, role: dict[str, Any], shared: dict[str, Any],
                 running, outcome: dict[str, Any]) -> None:
    acks, pause, paused = shared["acks"], shared["pause"], shared["paused"]
    rng = random.Random(role["seed"])
    versions = {index: 0 for index in role["writes"]}  # version 0 was seeded by the test
    failures = await failure_count(cache)
    while running() and outcome["writes"] < role["max_writes"]:
        for index in role["writes"]:
            if pause.is_set():  # the test quiesces writes (before a failover it provokes)
                paused.set()
                while pause.is_set() and running():
                    await asyncio.sleep(0.01)
                paused.clear()
            version = versions[index] + 1
            if version >= MAX_VERSIONS or not running():
                return
            name = key_name(index)
            if rng.random() < DELETE_SHARE:
                await cache.delete(name)
            else:
                await cache.set(name, {"key": name, "v": version})
            acknowledged_at = time.monotonic()
            now = await failure_count(cache)
            if now == failures:
                acks[index * MAX_VERSIONS + version] = acknowledged_at
            else:  # Redis did not take it (an outage): it is not a version anyone must see
                outcome["unacknowledged"] += 1
            failures = now
            versions[index] = version
            outcome["writes"] += 1
            await asyncio.sleep(role["write_pause"])


async def _read(cache: sr.GenericRedisCache, role: dict[str, Any], running, outcome: dict[str, Any]) -> None:
    log = outcome["reads"]
    while running():
        for index in role["reads"]:
            name = key_name(index)
            started = time.monotonic()
            value = await cache.get(name)
            if value is None:
                log.append((index, started, -1))
            elif not (isinstance(value, dict) and value.get("key") == name and isinstance(value.get("v"), int)):
                raise AssertionError(f"{name} read back as {value!r}")
            else:
                log.append((index, started, value["v"]))
        # Paced so that readers, writer, Redis and the caches' background threads share two
        # cores without starving one another: a starved invalidation thread is not the bug.
        await asyncio.sleep(role["read_pause"])


async def _sample(cache: sr.GenericRedisCache, running, outcome: dict[str, Any]) -> None:
    """L1 hits over time, so a test can tell that L1 served again after a fault."""
    while running():
        performance = (await cache.get_cache_stats())["performance"]
        outcome["timeline"].append((time.monotonic(), performance["l1_hits"], performance["gets"]))
        await asyncio.sleep(SAMPLE_EVERY)


def stale_reads(reads: list[tuple[int, float, int]], acks, bound: float = FRESHNESS_BOUND) -> list[dict[str, Any]]:
    """The reads (from a reader's log) that were stale under the rule in the module doc;
    ``bound=0`` gives the stricter "read after an acknowledged write" count.

    With one writer per key, acknowledgement times rise with the version, so the first
    acknowledged version above ``v`` is the earliest newer operation."""
    first_newer: dict[int, list[float]] = {}  # per key: for each v, when the first newer op was acked
    found = []
    for index, started, version in reads:
        if version < 0:
            continue  # a miss is never stale
        if index not in first_newer:
            base = index * MAX_VERSIONS
            table, earliest = [0.0] * MAX_VERSIONS, 0.0
            for v in range(MAX_VERSIONS - 1, -1, -1):
                table[v] = earliest  # the ack time of the first acknowledged version above v
                if acks[base + v] > 0:
                    earliest = acks[base + v]
            first_newer[index] = table
        newer = first_newer[index][version]
        if 0 < newer < started - bound:
            found.append({"key": key_name(index), "read_version": version,
                          "newer_acknowledged_ms_before_read": round((started - newer) * 1000, 1)})
    return found
