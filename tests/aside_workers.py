"""What the child processes of tests/test_cache_aside_processes.py (and benches/cache_aside.py)
run: cache-aside calls from real OS processes against one TLS Redis.

Every entry point is ``run(name, role, settings, shared, result_path)``: it builds its own
cache from ``settings`` (url, password, encryption key, CA path: picklable, handed over through
multiprocessing's pipe, never argv), runs the coroutine ``ROLES[role["kind"]]`` and writes a
JSON result file, whatever happens (an exception is reported as text in ``"error"``; it holds
no secret: no setting is ever formatted into a message).

Shared state (``shared``, made by the parent from the spawn context):

- ``loads``: a ``multiprocessing.Value("i")`` counting loader calls in every process;
- ``ready`` (Value) and ``go`` (Event): every child counts itself ready once connected, then
  waits for ``go``, so the calls of all processes really overlap;
- ``started`` (Event): set by a loader as it starts (the lock-holder tests wait for it).

Times are ``time.monotonic()``: CLOCK_MONOTONIC is system-wide on Linux, so times taken in
different processes compare. Tests assert on their order, never on durations.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import traceback
from typing import Any

import redis

import secure_redis as sr


def make_cache(settings: dict[str, Any]) -> sr.GenericRedisCache:
    config = sr.SecurityConfig(
        redis_auth=settings["password"],
        encryption_key=settings["encryption_key"],
        tls_ca_path=settings["ca"],
        connection_timeout=2.0,
        socket_timeout=settings.get("socket_timeout", 1.0),
        max_retries=1,
        retry_delay=0.05,
    )
    return sr.GenericRedisCache(settings["url"], security_config=config, **settings.get("cache_kwargs", {}))


def raw_client(settings: dict[str, Any]) -> redis.Redis:
    """redis-py as an independent observer of what Redis holds."""
    return redis.Redis(host=settings["host"], port=settings["port"], password=settings["password"], ssl=True,
                       ssl_ca_certs=settings["ca"], socket_timeout=5)


def run(name: str, role: dict[str, Any], settings: dict[str, Any], shared: dict[str, Any], result_path: str) -> None:
    result: dict[str, Any] = {"name": name, "pid": os.getpid(), "error": None}
    try:
        result.update(asyncio.run(_main(role, settings, shared)))
    except BaseException:  # reported to the test through the file, which fails on it
        result["error"] = traceback.format_exc()[-3000:]
    with open(result_path, "w") as out:
        json.dump(result, out)


async def _main(role: dict[str, Any], settings: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    cache = make_cache(settings)
    if not await cache.connect():
        raise RuntimeError("could not connect")
    try:
        with shared["ready"].get_lock():
            shared["ready"].value += 1
        if not await asyncio.to_thread(shared["go"].wait, 60):
            raise RuntimeError("the test never said go")
        return await ROLES[role["kind"]](cache, role, settings, shared)
    finally:
        await cache.disconnect()


def _count(shared: dict[str, Any]) -> None:
    with shared["loads"].get_lock():
        shared["loads"].value += 1


async def herd(cache: sr.GenericRedisCache, role: dict[str, Any], settings: dict[str, Any],
               shared: dict[str, Any]) -> dict[str, Any]:
    """``role["concurrency"]`` concurrent get_or_set on one key; the loader sleeps
    ``role["delay"]`` and counts itself in ``shared["loads"]``."""
    mine = 0

    async def loader() -> str:
        nonlocal mine
        mine += 1
        _count(shared)
        await asyncio.sleep(role["delay"])
        return role["value"]

    results = await asyncio.gather(*(
        cache.get_or_set(role["key"], loader, 60, lock=role["lock"]) for _ in range(role["concurrency"])
    ))
    return {"results": results, "my_loads": mine}


async def hold_forever(cache: sr.GenericRedisCache, role: dict[str, Any], settings: dict[str, Any],
                       shared: dict[str, Any]) -> dict[str, Any]:
    """Takes the loader lock through get_or_set and never finishes loading: the test kills us."""

    async def loader() -> str:
        _count(shared)
        shared["started"].set()
        await asyncio.sleep(3600)
        return "never"

    await cache.get_or_set(role["key"], loader, 60, lock=role["lock"])
    return {}


async def timed_load(cache: sr.GenericRedisCache, role: dict[str, Any], settings: dict[str, Any],
                     shared: dict[str, Any]) -> dict[str, Any]:
    """One get_or_set whose loader takes ``role["delay"]`` seconds; when the loader started
    and finished and when get_or_set returned (monotonic), and what it returned."""
    times: dict[str, float] = {}
    if role.get("after_started"):  # start only once another process's loader started
        if not await asyncio.to_thread(shared["started"].wait, 20):
            raise RuntimeError("the other loader never started")
        await asyncio.sleep(role["after_started"])

    async def loader() -> str:
        times["loader_started"] = time.monotonic()
        _count(shared)
        if role.get("signal"):
            shared["started"].set()
        await asyncio.sleep(role["delay"])
        times["loader_finished"] = time.monotonic()
        return role["value"]

    times["called"] = time.monotonic()
    value = await cache.get_or_set(role["key"], loader, 60, lock=role["lock"])
    times["returned"] = time.monotonic()
    return {"value": value, "times": times}


async def hammer(cache: sr.GenericRedisCache, role: dict[str, Any], settings: dict[str, Any],
                 shared: dict[str, Any]) -> dict[str, Any]:
    """get_or_set on one key over and over (bounded by time and count) with early refresh; the
    loader records whether the key existed in Redis when it started."""
    raw = raw_client(settings)
    loads: list[dict[str, Any]] = []

    async def loader() -> float:
        existed = bool(await asyncio.to_thread(raw.exists, role["key"]))
        loads.append({"at": time.monotonic(), "existed": existed, "pid": os.getpid()})
        _count(shared)
        await asyncio.sleep(role["delay"])
        return time.time()

    calls, errors = 0, 0
    deadline = time.monotonic() + role["seconds"]
    values: set[float] = set()
    try:
        while time.monotonic() < deadline and calls < role["max_calls"]:
            values.add(await cache.get_or_set(role["key"], loader, role["ttl"], lock=role["lock"],
                                              early_refresh=role["early_refresh"]))
            calls += 1
            await asyncio.sleep(role["pause"])
        # A refresh still running in the background finishes (and is recorded) before we go.
        for _ in range(50):
            if not any(k[2] == role["key"] for k in _flights()):
                break
            await asyncio.sleep(0.05)
    finally:
        raw.close()
    return {"loads": loads, "calls": calls, "errors": errors, "distinct_values": len(values)}


def _flights() -> list[Any]:
    from secure_redis import aside

    return [slot for slot, task in aside._FLIGHTS.items() if not task.done()]


ROLES = {"herd": herd, "hold_forever": hold_forever, "timed_load": timed_load, "hammer": hammer}
