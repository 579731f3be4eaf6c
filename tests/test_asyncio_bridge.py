"""The asyncio bridge: real awaitables, cancellation reaches Rust, uvloop works, exit is safe."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import secure_redis as sr

SCRIPT = Path(__file__).parent / "scripts" / "exit_in_flight.py"


async def test_methods_return_real_awaitables(cache) -> None:
    coroutine = cache.get("x")
    assert asyncio.iscoroutine(coroutine)
    assert await coroutine is None
    assert asyncio.isfuture(cache._core.ping())


async def test_event_loop_keeps_running_during_io(cache) -> None:
    """Encrypting happens on Rust threads: the loop keeps running while values are sealed."""
    import base64

    stamps: list[float] = []

    async def ticker() -> None:
        while True:
            stamps.append(time.monotonic())
            await asyncio.sleep(0.001)

    incompressible = base64.b64encode(os.urandom(300_000)).decode()
    running = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.monotonic()
    for i in range(20):  # one at a time: the loop only serialises; Rust threads encrypt
        await cache.set(f"c:{i}", {"v": incompressible})
    elapsed = time.monotonic() - started
    running.cancel()
    ticks = len(stamps)
    # The ticker needs the loop every ~1 ms; if encryption ran on it, it would barely tick.
    assert ticks >= elapsed * 1000 / 10, (ticks, elapsed)


async def test_cancellation_and_timeouts_against_a_stopped_server(make_server, config) -> None:
    server = make_server("paused")
    cache = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    assert await cache.connect()
    await cache.set("k", "before")
    server.pause()
    try:
        started = time.monotonic()
        task = asyncio.create_task(cache.get("k"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(cache.get("k"), 0.05)
        assert time.monotonic() - started < 0.5
        # Without cancellation the call still returns, within the socket timeout, without raising.
        started = time.monotonic()
        assert await cache.get("k") is None
        assert time.monotonic() - started < config.socket_timeout + 1.0
    finally:
        server.resume()
    for _ in range(100):
        if await cache.get("k") == "before":
            break
        await asyncio.sleep(0.1)
    assert await cache.get("k") == "before"


async def test_cancelling_the_awaiting_task_aborts_the_rust_work(make_server, config) -> None:
    server = make_server("abort")
    cache = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    assert await cache.connect()
    baseline = sr._native._in_flight_tasks()
    server.pause()
    try:
        tasks = [asyncio.create_task(cache.get(f"k{i}")) for i in range(50)]
        await asyncio.sleep(0.05)
        assert sr._native._in_flight_tasks() >= baseline + 50  # all waiting on the stopped server
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Aborted well before the 1 s socket timeout could have ended them.
        deadline = time.monotonic() + 0.3
        while sr._native._in_flight_tasks() > baseline and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert sr._native._in_flight_tasks() == baseline
    finally:
        server.resume()


def test_works_under_uvloop(redis_server, config) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> object:
        cache = sr.GenericRedisCache(redis_server.url, security_config=config)
        await cache.set("uv", {"loop": "uvloop"})
        result = await asyncio.gather(*(cache.get("uv") for _ in range(50)))
        await cache.delete("uv")
        return result

    loop = uvloop.new_event_loop()
    try:
        results = loop.run_until_complete(main())
    finally:
        loop.close()
    assert results == [{"loop": "uvloop"}] * 50


def test_works_with_several_event_loops_in_turn(redis_server, config) -> None:
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=False)
    for round_ in range(3):
        asyncio.run(cache.set("loops", round_))
        assert asyncio.run(cache.get("loops")) == round_


def test_exit_with_requests_in_flight_is_always_clean(redis_server, pki, password, encryption_key) -> None:
    env = dict(
        os.environ,
        SR_TEST_URL=redis_server.url,
        SR_TEST_PASSWORD=password,
        SR_TEST_KEY=encryption_key,
        SR_TEST_CA=str(pki.ca_cert),
    )
    failures = []
    modes = ["run", "abandon", "exit"]
    for attempt in range(60):
        mode = modes[attempt % len(modes)]
        done = subprocess.run(
            [sys.executable, str(SCRIPT), mode], env=env, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0 or "Fatal Python error" in done.stderr:
            failures.append((mode, done.returncode, done.stderr[-500:]))
    assert not failures, failures


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork only")
def test_caches_work_in_a_forked_child(redis_server, config) -> None:
    async def parent_side() -> sr.GenericRedisCache:
        cache = sr.GenericRedisCache(redis_server.url, security_config=config)
        assert await cache.connect()
        await cache.set("fork:parent", "from parent")
        return cache

    inherited = asyncio.run(parent_side())
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            async def child_side() -> bool:
                fresh = sr.GenericRedisCache(redis_server.url, security_config=config)
                ok = await asyncio.wait_for(fresh.get("fork:parent"), 5) == "from parent"
                await asyncio.wait_for(fresh.set("fork:child", "from child"), 5)
                # The inherited cache's connection belonged to the parent's threads: it must
                # still answer (L1, then a reconnect), never hang.
                ok &= await asyncio.wait_for(inherited.get("fork:parent"), 5) == "from parent"
                return ok
            code = 0 if asyncio.run(child_side()) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status

    async def parent_again() -> object:
        return await inherited.get("fork:child") or await sr.GenericRedisCache(
            redis_server.url, security_config=config, enable_l1_cache=False
        ).get("fork:child")

    assert asyncio.run(parent_again()) == "from child"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork only")
@pytest.mark.parametrize("l1", [False, True])
def test_a_forked_child_never_waits_on_its_parents_connection(
    redis_server, pki, password, encryption_key, l1
) -> None:
    """gunicorn --preload: the parent used the cache, then forked. The child's first call
    through the inherited cache must connect afresh and answer (a hit, not a miss), instead of
    waiting a socket timeout on the parent's connection (it took 2 x socket_timeout before)."""
    from conftest import make_config

    config = make_config(pki, password, encryption_key, socket_timeout=2.0)

    async def parent_side() -> sr.GenericRedisCache:
        cache = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=l1)
        assert await cache.connect()
        await cache.set("fork:first-call", "answer")
        assert await cache.get("fork:first-call") == "answer"
        return cache

    inherited = asyncio.run(parent_side())
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and exit code, never return into pytest
        code = 1
        try:
            os.close(read_end)

            async def child_side() -> tuple[float, object, float]:
                # Another process wrote since the fork, so an L1 copy would be wrong here.
                started = time.perf_counter()
                first = await asyncio.wait_for(inherited.get("fork:first-call"), 10)
                elapsed = time.perf_counter() - started
                started = time.perf_counter()
                await asyncio.wait_for(inherited.set("fork:first-call", "child"), 10)
                return elapsed, first, time.perf_counter() - started

            first_elapsed, value, set_elapsed = asyncio.run(child_side())
            os.write(write_end, json.dumps([first_elapsed, value, set_elapsed]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        report = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    first_elapsed, value, set_elapsed = json.loads(report)
    assert value == "answer", "the child's first read missed"
    # Far below one socket timeout (2 s): a fresh TLS connect takes milliseconds.
    assert first_elapsed < 1.0, f"first call in the child took {first_elapsed:.3f} s"
    assert set_elapsed < 1.0, f"first write in the child took {set_elapsed:.3f} s"

    async def parent_again() -> object:
        return await sr.GenericRedisCache(
            redis_server.url, security_config=config, enable_l1_cache=False
        ).get("fork:first-call")

    assert asyncio.run(parent_again()) == "child"


def test_closed_loops_with_pending_work_are_released(redis_server, config) -> None:
    """A loop closed while a call was in flight must not stay alive (with its sockets)."""
    from secure_redis import _bridge

    cache = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=False)
    for _ in range(20):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(cache.set("pending", 1))
        loop.create_task(cache.get("pending"))  # left in flight
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    asyncio.run(cache.get("pending"))  # a new loop registers and sweeps the closed ones
    import gc

    gc.collect()
    assert len(_bridge._wakers) <= 2, len(_bridge._wakers)
