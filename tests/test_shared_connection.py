"""Caches built per request share one connection: no TLS handshake or AUTH per cache.

The starter backend builds an ``AIResponseCache`` in a FastAPI dependency on every request and
never disconnects it. Here that pattern runs against a real TLS redis-server, whose own
``total_connections_received`` counter says how many connections were really opened.
"""

from __future__ import annotations

import gc

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import secure_redis as sr
from conftest import make_config


def connections_received(raw_redis) -> int:
    return int(raw_redis.info("stats")["total_connections_received"])


async def test_a_cache_per_request_opens_no_connection_per_request(redis_server, config, raw_redis) -> None:
    first = sr.AIResponseCache(redis_server.url, security_config=config)
    assert await first.connect()
    key = first.build_key("a prompt", "summarize", {})
    await first.set(key, {"summary": "short"})
    before = connections_received(raw_redis)
    for _ in range(150):
        cache = sr.AIResponseCache(redis_server.url, security_config=config, memory_cache_size=100)
        assert await cache.connect()
        assert await cache.get(key) == {"summary": "short"}
    # raw_redis's own connection is the only one allowed to appear.
    assert connections_received(raw_redis) - before <= 1
    assert first._core.shared_by >= 1
    await first.disconnect()


async def test_without_sharing_each_cache_has_its_own_connection(redis_server, config, raw_redis) -> None:
    before = connections_received(raw_redis)
    caches = [sr.GenericRedisCache(redis_server.url, security_config=config, share_connection=False)
              for _ in range(3)]
    for cache in caches:
        assert await cache.connect()
        assert cache._core.shared_by == 1
    # A data connection each, plus each one's invalidation link.
    assert connections_received(raw_redis) - before >= 6
    for cache in caches:
        await cache.disconnect()


async def test_disconnecting_one_cache_leaves_the_others_serving(redis_server, config) -> None:
    first = sr.GenericRedisCache(redis_server.url, security_config=config)
    second = sr.GenericRedisCache(redis_server.url, security_config=config, default_ttl=60)
    assert await first.connect() and await second.connect()
    assert first._core.shared_by == 2
    await first.set("shared:k", {"v": 1})
    reconnects = (await second.get_cache_stats())["redis"]["reconnects"]
    await first.disconnect()
    assert second._core.available
    assert await second.get("shared:k") == {"v": 1}
    await second.set("shared:k2", 2)
    stats = await second.get_cache_stats()
    assert stats["redis"]["status"] == "connected" and stats["redis"]["reconnects"] == reconnects
    # The disconnected cache still works: it connects again, on a connection of its own or
    # the shared one, never breaking the other.
    assert await first.get("shared:k2") == 2
    await second.disconnect()
    await first.disconnect()
    assert not second._core.available


@pytest.mark.parametrize(
    "difference",
    ["password", "encryption_key", "namespace", "database", "l1_cache_size", "acl_username"],
)
async def test_caches_that_see_redis_differently_never_share(difference, redis_server, config, pki, password,
                                                             encryption_key, raw_redis) -> None:
    base = sr.GenericRedisCache(redis_server.url, security_config=config)
    assert await base.connect()
    url, kwargs, other_config = redis_server.url, {}, config
    if difference == "password":
        other_config = make_config(pki, password + "-but-different", encryption_key)
    elif difference == "encryption_key":
        other_config = make_config(pki, password, sr.generate_encryption_key())
    elif difference == "namespace":
        kwargs = {"namespace": "tenant:"}
    elif difference == "database":
        url = redis_server.url.rsplit("/", 1)[0] + "/1"
    elif difference == "l1_cache_size":
        kwargs = {"l1_cache_size": 7}
    elif difference == "acl_username":
        other_config = make_config(pki, password, encryption_key, acl_username="someone-else")
    other = sr.GenericRedisCache(url, security_config=other_config, **kwargs)
    assert other._core.shared_by == 1 and base._core.shared_by == 1
    assert not other._core.available
    await base.disconnect()
    await other.disconnect()


async def test_a_dropped_cache_leaves_the_connection_for_the_next_one(redis_server, config, raw_redis) -> None:
    cache = sr.GenericRedisCache(redis_server.url, security_config=config)
    assert await cache.connect()
    del cache
    gc.collect()
    before = connections_received(raw_redis)
    again = sr.GenericRedisCache(redis_server.url, security_config=config)
    assert again._core.available, "the connection outlived the cache that opened it"
    assert await again.connect()
    assert connections_received(raw_redis) == before
    await again.disconnect()


def test_the_per_request_factory_pattern_in_a_fastapi_app(redis_server, config, raw_redis) -> None:
    """An app-shaped dependency: a new AIResponseCache for every request, never closed."""
    app = FastAPI()

    async def get_cache_service() -> sr.AIResponseCache:
        cache = sr.AIResponseCache(redis_server.url, security_config=config, memory_cache_size=100)
        await cache.connect()
        return cache

    @app.post("/summarize")
    async def summarize(body: dict, cache: sr.AIResponseCache = Depends(get_cache_service)) -> dict:
        key = cache.build_key(body["text"], "summarize", {})
        cached = await cache.get(key)
        if cached is not None:
            return {"result": cached, "cached": True}
        result = body["text"][:10]
        await cache.set(key, result)
        return {"result": result, "cached": False}

    with TestClient(app) as client:
        assert client.post("/summarize", json={"text": "a long text to summarise"}).json()["cached"] is False
        before = connections_received(raw_redis)
        for _ in range(50):
            assert client.post("/summarize", json={"text": "a long text to summarise"}).json()["cached"] is True
        assert connections_received(raw_redis) - before <= 1


async def test_dropped_unshared_caches_that_used_scopes_close_their_connections(redis_server, config,
                                                                                raw_redis) -> None:
    """A scope's cache refers to its backend and the backend keeps the scope: the cycle is
    broken when an unshared cache goes, or every such cache would leave its connections open."""
    from conftest import wait_until

    def clients() -> int:
        return int(raw_redis.info("clients")["connected_clients"])

    baseline = clients()
    for i in range(6):
        cache = sr.GenericRedisCache(redis_server.url, security_config=config, share_connection=False)
        assert await cache.connect()
        await cache.scope(f"tenant-{i}").set("k", i)
        assert await cache.scope(f"tenant-{i}").get("k") == i
        del cache
    gc.collect()

    async def closed() -> bool:
        return clients() <= baseline

    assert await wait_until(closed, timeout=10), f"{clients() - baseline} connection(s) left open"
    raw_redis.flushdb()
