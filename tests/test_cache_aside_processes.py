"""Cache-aside (issue 17) across real OS processes against a real TLS Redis: the loader lock
shared by processes (one load for a herd of four), a lock holder that dies, a lease that runs
out under a slow loader, and early refresh that keeps a hot key warm for every process.

The children run tests/aside_workers.py under multiprocessing's spawn context; their settings
(secrets included) travel over multiprocessing's pipe, never argv, and nothing a child reports
holds a secret. Events across processes are compared by ``time.monotonic()`` (system-wide on
Linux): these tests assert on the order of events and on counts, never on durations. Every
wait is bounded by time and by count, and every child is killed and joined on the way out.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import aside_workers
import secure_redis as sr
from conftest import make_config
from secure_redis.testing import RedisServer, TestPKI

LOCK_PATTERN = "secure_redis:lock:*"


class Settings(dict):
    """What a child needs to build its cache; its repr leaves the secrets out (pytest prints
    a failing test's locals)."""

    def __repr__(self) -> str:
        return f"Settings(url={self['url']!r})"


@pytest.fixture
def settings(redis_server: RedisServer, pki: TestPKI, password: str, encryption_key: str) -> Settings:
    return Settings(url=redis_server.url, host=redis_server.host, port=redis_server.port, password=password,
                    encryption_key=encryption_key, ca=str(pki.ca_cert))


class Children:
    """Spawned children running ``aside_workers.run``, the state they share, their results.
    Use as a context manager: on the way out every child still alive is killed and joined."""

    def __init__(self, tmp_path: Path, settings: Settings) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.folder = tmp_path
        self.settings = settings
        self.shared = {"loads": self.ctx.Value("i", 0), "ready": self.ctx.Value("i", 0),
                       "go": self.ctx.Event(), "started": self.ctx.Event()}
        self.processes: dict[str, Any] = {}

    def start(self, name: str, **role: Any) -> Any:
        process = self.ctx.Process(target=aside_workers.run, name=f"aside-{name}", daemon=True,
                                   args=(name, role, self.settings, self.shared, str(self.folder / f"{name}.json")))
        process.start()
        self.processes[name] = process
        return process

    async def wait_ready(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.02) + 1):
            if self.shared["ready"].value >= count or time.monotonic() > deadline:
                break
            dead = [n for n, p in self.processes.items() if not p.is_alive()]
            assert not dead, f"children died before they were ready: {dead} {self.results(dead)}"
            await asyncio.sleep(0.02)
        assert self.shared["ready"].value >= count, "children not ready in time"

    def go(self) -> None:
        self.shared["go"].set()

    async def join(self, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            await asyncio.to_thread(process.join, max(0.1, deadline - time.monotonic()))
        alive = [name for name, p in self.processes.items() if p.is_alive()]
        assert not alive, f"children still running after {timeout} s: {alive}"
        results = self.results(list(self.processes))
        errors = {name: r["error"] for name, r in results.items() if r.get("error")}
        assert not errors, errors
        return results

    def results(self, names: list[str]) -> dict[str, dict[str, Any]]:
        found = {}
        for name in names:
            path = self.folder / f"{name}.json"
            found[name] = json.loads(path.read_text()) if path.exists() else {"error": "no result file"}
        return found

    @property
    def loads(self) -> int:
        return self.shared["loads"].value

    def __enter__(self) -> "Children":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shared["go"].set()  # a child still waiting for the start gives up at once
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
        for process in self.processes.values():
            process.join(timeout=5)


@pytest.fixture
def admin(raw_redis: redis.Redis):
    """redis-py as the test's own observer; deletes the test's keys and leftover locks after."""
    names: list[str] = []
    yield names
    for name in names:
        raw_redis.delete(name)
    for lock in raw_redis.keys(LOCK_PATTERN):
        raw_redis.delete(lock)


async def fresh_cache(redis_server: RedisServer, pki: TestPKI, password: str,
                      encryption_key: str) -> sr.GenericRedisCache:
    """A cache of the test process itself, without L1 (it reads what Redis holds)."""
    cache = sr.GenericRedisCache(redis_server.url, security_config=make_config(pki, password, encryption_key),
                                 enable_l1_cache=False, share_connection=False)
    assert await cache.connect() is True
    return cache


# -- a herd of processes ---------------------------------------------------------------------------


@pytest.mark.parametrize("lock", [True, False], ids=["lock", "no-lock"])
async def test_four_processes_of_sixteen_callers_share_the_load(tmp_path, settings, admin, raw_redis, lock) -> None:
    key = f"aside:proc:herd:{lock}"
    admin.append(key)
    raw_redis.delete(key)
    with Children(tmp_path, settings) as children:
        for n in range(4):
            children.start(f"p{n}", kind="herd", key=key, lock=lock, concurrency=16, delay=0.3, value="v")
        await children.wait_ready(4)
        children.go()
        results = await children.join()
    for name, result in results.items():
        assert result["results"] == ["v"] * 16, name
        assert result["my_loads"] <= 1, (name, result["my_loads"])  # single-flight inside a process
    if lock:
        assert children.loads == 1, children.loads
    else:
        assert 1 <= children.loads <= 4, children.loads
    assert sum(r["my_loads"] for r in results.values()) == children.loads
    assert not raw_redis.keys(LOCK_PATTERN)  # every lock was released


# -- the lock holder dies ----------------------------------------------------------------------------


async def test_a_dead_lock_holder_frees_the_lock_after_its_lease(tmp_path, settings, admin, raw_redis, redis_server,
                                                                  pki, password, encryption_key) -> None:
    key = "aside:proc:holder-dies"
    admin.append(key)
    raw_redis.delete(key)
    cache = await fresh_cache(redis_server, pki, password, encryption_key)
    try:
        with Children(tmp_path, settings) as children:
            holder = children.start("holder", kind="hold_forever", key=key, lock=2)
            await children.wait_ready(1)
            children.go()
            assert await asyncio.to_thread(children.shared["started"].wait, 15), "the holder's loader never started"
            # The lock the holder took is in Redis (the loader only starts once it is).
            deadline = time.monotonic() + 5
            for _ in range(500):
                if raw_redis.keys(LOCK_PATTERN) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            # One lock, the holder's (none only if this machine stalled us past its 2 s lease).
            assert len(raw_redis.keys(LOCK_PATTERN)) <= 1
            os.kill(holder.pid, signal.SIGKILL)
            await asyncio.to_thread(holder.join, 10)
            assert holder.exitcode == -signal.SIGKILL
            calls = 0

            async def loader() -> str:
                nonlocal calls
                calls += 1
                return "after the holder died"

            value = await asyncio.wait_for(cache.get_or_set(key, loader, 60, lock=2), 15)
            assert value == "after the holder died"
            assert calls == 1
            assert children.loads == 1  # the dead holder's one start
            assert await cache.get(key) == "after the holder died"
            # The lease ended the dead holder's lock; ours was released (or expired) after.
            deadline = time.monotonic() + 5
            for _ in range(500):
                if not raw_redis.keys(LOCK_PATTERN) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            assert not raw_redis.keys(LOCK_PATTERN)
    finally:
        await cache.disconnect()


# -- the lease runs out under a slow loader -------------------------------------------------------------


async def test_a_lease_that_runs_out_lets_the_next_process_load(tmp_path, settings, admin, raw_redis, redis_server,
                                                                 pki, password, encryption_key) -> None:
    """A holds the lock with a 0.5 s lease and a 2 s loader; B asks 0.1 s after A's loader
    started. B must not wait for A's loader: once A's lease ends B takes the lock and loads.
    Asserted on the order of events (monotonic, system-wide), not on durations."""
    key = "aside:proc:lease-ends"
    admin.append(key)
    raw_redis.delete(key)
    with Children(tmp_path, settings) as children:
        children.start("A", kind="timed_load", key=key, lock=0.5, delay=2.0, value="A", signal=True)
        children.start("B", kind="timed_load", key=key, lock=0.5, delay=0.05, value="B", after_started=0.1)
        await children.wait_ready(2)
        children.go()
        results = await children.join()
    a, b = results["A"], results["B"]
    assert a["value"] == "A" and b["value"] == "B"  # each loaded by itself
    assert children.loads == 2
    assert a["times"]["loader_started"] < b["times"]["called"]  # B came while A was loading
    assert b["times"]["loader_finished"] < a["times"]["loader_finished"]  # B did not wait for A's loader
    assert b["times"]["returned"] < a["times"]["loader_finished"]  # B stored before A's loader even finished
    # So A wrote last, and its late release freed nothing it did not hold.
    cache = await fresh_cache(redis_server, pki, password, encryption_key)
    try:
        assert await cache.get(key) == "A"
    finally:
        await cache.disconnect()
    assert not raw_redis.keys(LOCK_PATTERN)


# -- early refresh across processes ------------------------------------------------------------------------


@pytest.mark.parametrize("lock", [True, False], ids=["lock", "no-lock"])
async def test_early_refresh_keeps_the_key_warm_for_every_process(tmp_path, settings, admin, raw_redis, lock) -> None:
    """3 processes hammer one key (ttl=1, early_refresh=0.5, a 0.2 s loader): only the very
    first load finds the key absent, every later one is a refresh ahead of expiry, and there
    are about as many loads as TTL periods (a bound on a count, not a timing)."""
    key = f"aside:proc:hot:{lock}"
    admin.append(key)
    raw_redis.delete(key)
    seconds = 3.0
    with Children(tmp_path, settings) as children:
        for n in range(3):
            children.start(f"p{n}", kind="hammer", key=key, lock=lock, ttl=1, early_refresh=0.5, delay=0.2,
                           seconds=seconds, max_calls=2000, pause=0.005)
        await children.wait_ready(3)
        children.go()
        results = await children.join(timeout=40)
    loads = sorted((load for r in results.values() for load in r["loads"]), key=lambda load: load["at"])
    assert loads and loads[0]["existed"] is False  # the very first load found nothing
    cold = [n for n, load in enumerate(loads) if not load["existed"]]
    if lock:
        # One process loads the cold key, the others wait for it; every later load is a refresh.
        assert cold == [0], f"loads that found the key absent (it expired before a refresh): {cold} of {len(loads)}"
    else:
        # Without the lock each process may load the cold key once (its own single-flight),
        # all of them before any later load; after that every load is a refresh.
        assert cold == list(range(len(cold))) and len(cold) <= 3, f"cold loads: {cold} of {len(loads)}"
        assert len({loads[n]["pid"] for n in cold}) == len(cold)
    assert len(loads) > len(cold)  # 3 s with a 1 s TTL: refreshed at least once
    bound = 3 * seconds + 3 if lock else 3 * (3 * seconds + 3)  # without the lock: per process
    assert len(loads) <= bound, len(loads)
    assert all(r["calls"] > 0 for r in results.values())
