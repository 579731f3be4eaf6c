"""InMemoryCache: the replaced layer's API with its bugs fixed."""

from __future__ import annotations

import asyncio
import time

import pytest

import secure_redis as sr


async def test_round_trip_copies_and_json_only() -> None:
    cache = sr.InMemoryCache()
    assert isinstance(cache, sr.CacheInterface)
    await cache.set("k", {"list": [1, 2]})
    got = await cache.get("k")
    got["list"].append(3)
    assert await cache.get("k") == {"list": [1, 2]}
    with pytest.raises(sr.ValidationError):
        await cache.set("bad", {1, 2})
    assert await cache.delete("k") is True and await cache.delete("k") is False


async def test_updating_a_key_on_a_full_cache_evicts_nothing() -> None:
    cache = sr.InMemoryCache(max_size=2)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.set("a", 3)
    assert await cache.get("b") == 2 and await cache.get("a") == 3
    assert cache.get_stats()["evictions"] == 0
    await cache.get("a")
    await cache.set("c", 4)  # evicts the least recently used: b
    assert await cache.get("b") is None and cache.get_stats()["evictions"] == 1


async def test_ttls_and_lazy_expiry() -> None:
    cache = sr.InMemoryCache(default_ttl=60)
    await cache.set("short", 1, ttl=1)
    await cache.set("default", 2)
    assert await cache.get_ttl("short") == 1 and 59 <= await cache.get_ttl("default") <= 60
    await asyncio.sleep(1.1)
    assert cache.size() == 2 and cache.get_active_keys() == ["default"]
    assert await cache.get("short") is None and cache.size() == 1
    with pytest.raises(sr.ValidationError):
        await cache.set("k", 1, ttl=-1)  # the replaced layer silently meant "never expire"


async def test_patterns_stats_and_clear() -> None:
    cache = sr.InMemoryCache(max_size=10)
    for i in range(3):
        await cache.set(f"user:{i}", i)
    await cache.set("order:1", 1)
    assert await cache.invalidate_pattern("user:*") == 3
    assert sorted(cache.get_keys()) == ["order:1"]
    await cache.get("order:1")
    await cache.get("missing")
    stats = cache.get_stats()
    assert stats["hit_rate"] == 50.0 and stats["utilization"] == "1/10"
    assert (await cache.get_cache_stats())["performance"]["hit_rate"] == 0.5
    cache.clear()
    assert cache.size() == 0 and cache.get_stats()["hits"] == 0


def test_constructor_ranges() -> None:
    for kwargs in ({"default_ttl": 0}, {"max_size": 0}, {"max_size": 100_001}, {"default_ttl": "1"}):
        with pytest.raises(sr.ConfigurationError):
            sr.InMemoryCache(**kwargs)


async def test_size_needs_no_sweep() -> None:
    cache = sr.InMemoryCache(default_ttl=60, max_size=100_000)
    for i in range(50_000):
        await cache.set(f"k{i}", i)
    await cache.set("short", 1, ttl=1)
    started = time.perf_counter()
    for _ in range(2000):
        assert cache.size() == 50_001
    elapsed = time.perf_counter() - started
    # A sweep of 50,000 entries per call would take well over a second for 2000 calls.
    assert elapsed < 0.5, elapsed
    await asyncio.sleep(1.1)
    assert cache.size() == 50_001  # expired but not yet removed: still counted, as documented
    assert await cache.get("short") is None and cache.size() == 50_000
    assert cache.get_stats()["active_entries"] == 50_000
