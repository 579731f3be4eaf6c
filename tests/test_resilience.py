"""Redis going away mid-flight: calls keep returning, L1 keeps serving, the cache comes back."""

from __future__ import annotations

import asyncio
import time

import pytest

import secure_redis as sr
from conftest import make_config, wait_until


async def test_redis_killed_mid_test_then_restarted(make_server, config, caplog) -> None:
    server = make_server("dies")
    cache = sr.GenericRedisCache(server.url, security_config=config)
    assert await cache.connect() is True
    await cache.set("kept", {"in": "l1"})
    await cache.set("evicted-from-l1", 1)
    await cache.delete("evicted-from-l1")

    server.kill()
    started = time.monotonic()
    # None of these may raise. L1 answers only while Redis's invalidations reach it (at most
    # a lease of 80 ms after the kill), so reads are the value or a miss, then misses; a write
    # Redis did not take is not kept in L1 either.
    assert await cache.get("kept") in ({"in": "l1"}, None)
    assert await cache.get("never-written") is None
    await cache.set("during-outage", [1, 2, 3])
    assert await cache.get("during-outage") is None
    assert await cache.exists("never-written") is False
    assert await cache.delete("never-written") is False
    assert await cache.get_ttl("never-written") is None
    assert await cache.ping() is False
    results = await asyncio.gather(*(cache.get(f"k{i}") for i in range(200)), return_exceptions=True)
    assert all(r is None for r in results)
    assert time.monotonic() - started < config.socket_timeout + 2.0
    assert any("unavailable" in r.getMessage() or "lost" in r.getMessage() for r in caplog.records
               if r.name == "secure_redis.connection")
    stats = await cache.get_cache_stats()
    assert stats["redis"]["status"] == "unavailable"

    server.restart()

    async def back() -> bool:
        return await cache.ping()

    assert await wait_until(back), "the cache did not reconnect after Redis came back"
    await cache.set("after", "restart")
    fresh = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    assert await fresh.get("after") == "restart"
    stats = await cache.get_cache_stats()
    assert stats["redis"]["status"] == "connected" and stats["redis"]["reconnects"] >= 1
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_first_use_without_connect_connects_inline(redis_server, config) -> None:
    cache = sr.GenericRedisCache(redis_server.url, security_config=config)
    await cache.set("lazy", "connected on first use")
    fresh = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=False)
    assert await fresh.get("lazy") == "connected on first use"
    await fresh.delete("lazy")


async def test_outage_warnings_are_not_repeated_per_call(make_server, config, caplog) -> None:
    server = make_server("quiet")
    cache = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    assert await cache.connect()
    server.kill()
    for i in range(100):
        await cache.get(f"k{i}")

    def outage() -> list:
        return [r for r in caplog.records if r.name == "secure_redis.connection" and r.levelname == "WARNING"]

    async def reported() -> bool:  # Rust log records reach Python logging from a delivery thread
        return len(outage()) >= 1

    assert await wait_until(reported, timeout=5)
    await asyncio.sleep(0.3)  # anything still in flight lands before counting
    assert 1 <= len(outage()) <= 2, [r.getMessage() for r in outage()]


async def test_writes_and_invalidations_missed_by_redis_never_resurface(make_server, config) -> None:
    """A persistent Redis restarts with the values it had before the outage: none of them may
    be served over a write or an invalidation made while it was down."""
    server = make_server("persistent", extra_config=["appendonly yes", "appendfsync always"])
    cache = sr.GenericRedisCache(server.url, security_config=config, l1_cache_size=100)
    assert await cache.connect()
    keys = [f"doc:{i}" for i in range(700)]  # more than one repair batch, far more than L1 holds
    await cache.set_many({k: "old" for k in keys})
    await cache.set_many({f"stale:{i}": "old" for i in range(20)})

    server.kill()
    for key in keys:
        await cache.set(key, "new")  # reach only L1 (which keeps the last 100)
    assert await cache.invalidate_pattern("stale:*") == 0  # L1 had none; Redis unreachable
    server.restart()

    async def back() -> bool:
        return await cache.ping()

    assert await wait_until(back)
    for _ in range(3):  # reads race the repair; none may see an old value
        values = await asyncio.gather(*(cache.get(k) for k in keys + [f"stale:{i}" for i in range(20)]))
        assert "old" not in values
    fresh = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)

    async def repaired() -> bool:  # the repair runs in the background once Redis is back
        await cache.get(keys[0])
        return await fresh.get_many(keys[:50]) == {} and await fresh.get("stale:3") is None

    assert await wait_until(repaired)  # deleted in Redis by the repair
    assert await fresh.get("stale:3") is None
    assert await cache.get_ttl(keys[0]) is None or await cache.get(keys[0]) == "new"


@pytest.mark.parametrize("missed", ["writes", "invalidation"])
async def test_writes_made_right_after_recovery_survive_the_repair(
    make_server, pki, password, encryption_key, caplog, missed
) -> None:
    """Redis comes back holding values this process replaced (or invalidated) while it was
    down; they are overwritten at once, racing the repair that deletes the stale ones (by key,
    or by replaying the invalidation). Every new value that Redis took must still be there once
    the repair has finished.

    A write that Redis did not answer within `socket_timeout` (or that waited that long behind
    a repair batch) failed: its key is dirty and the repair deletes it, by design, so failed
    writes are counted apart. The long timeout keeps a starved CPU (the full suite, a parallel
    build) from failing them, so that they do race the repair."""
    config = make_config(pki, password, encryption_key, socket_timeout=30.0)
    server = make_server(f"reorder-{missed}", extra_config=["appendonly yes", "appendfsync always"])
    cache = sr.GenericRedisCache(server.url, security_config=config)
    assert await cache.connect()
    keys = [f"doc:{i}" for i in range(1500)]  # three repair batches
    await cache.set_many({k: "old" for k in keys})
    fresh = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)

    server.kill()
    if missed == "writes":
        await cache.set_many({k: "during the outage" for k in keys})  # reaches only L1
    else:
        await cache.invalidate_pattern("doc:*")
    server.restart()  # with the old values
    assert await wait_until(cache.ping)

    # The first of these writes starts the repair; all of them race it.
    failed_before = (await cache.get_cache_stats())["performance"]["l1_only_writes"]
    await asyncio.gather(*(cache.set(k, "new") for k in keys))
    failed = (await cache.get_cache_stats())["performance"]["l1_only_writes"] - failed_before

    def repair_finished() -> bool:
        return any("Redis is back: removed" in r.getMessage() for r in caplog.records)

    async def finished() -> bool:
        await cache.exists("doc:0")  # restarts a repair that was cut short
        return repair_finished()

    assert await wait_until(finished), "the repair did not finish"
    stored = await fresh.get_many(keys)
    lost = [k for k in keys if stored.get(k) != "new"]
    # Each key is written once, so beyond the failed writes, a lost key is a write Redis took.
    assert len(lost) <= failed, (
        f"{len(lost) - failed} write(s) made after Redis came back were deleted by the repair "
        f"({len(lost)} lost, {failed} failed)"
    )


async def test_a_cache_that_only_reads_still_reconnects_and_repairs(make_server, config) -> None:
    """After an invalidation of everything was missed, every read skips Redis (each key may be
    stale there). Reads alone must still bring the connection back, so the repair runs."""
    server = make_server("reads-only", extra_config=["appendonly yes", "appendfsync always"])
    cache = sr.GenericRedisCache(server.url, security_config=config)
    assert await cache.connect()
    await cache.set("k", "old")
    fresh = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    server.kill()
    await cache.invalidate_pattern("*")
    server.restart()  # with "k" = "old"

    async def repaired() -> bool:
        assert await cache.get("k") is None  # the only calls this cache gets
        return await fresh.get("k") is None

    assert await wait_until(repaired), "reads alone never reconnected the cache"
    assert cache.is_available
