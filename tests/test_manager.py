"""CacheManager: Redis first, memory while Redis is away, back to Redis when it returns."""

from __future__ import annotations

import asyncio
import time

import pytest

import secure_redis as sr
from conftest import make_config, remember_secret, wait_until


async def reaches_mode(manager: sr.CacheManager, mode: str, key: str) -> bool:
    """Keeps using the manager (which is how it notices changes) until it reports `mode`."""

    async def in_mode() -> bool:
        await manager.get(key)
        return manager.cache_type == mode

    return await wait_until(in_mode, timeout=10.0)
from secure_redis.testing import free_port


async def test_uses_redis_with_real_tls(redis_server, config) -> None:
    manager = sr.CacheManager(cache=sr.GenericRedisCache(redis_server.url, security_config=config))
    assert await manager.connect() is True
    await manager.set("m:k", {"v": 1})
    assert await manager.get("m:k") == {"v": 1}
    info = manager.get_cache_info()
    assert info["cache_type"] == "redis_secure" and info["connection_secure"] and info["encryption_active"]
    assert info["tls_version"].startswith("TLSv1.")
    health = await manager.health_check()
    assert health["healthy"] and not health["degraded"]
    await manager.delete("m:k")
    await manager.disconnect()


async def test_never_falls_back_on_a_wrong_password(redis_server, pki, encryption_key) -> None:
    wrong = make_config(pki, remember_secret("Not-the-password-but-long-enough-1"), encryption_key)
    manager = sr.CacheManager(cache=sr.GenericRedisCache(redis_server.url, security_config=wrong))
    with pytest.raises(sr.ConfigurationError):
        await manager.connect()
    assert manager.cache_type == "redis_secure" and manager.switches == 0


async def test_keeps_answering_through_an_outage_and_returns(make_server, config, caplog) -> None:
    server = make_server("manager")
    manager = sr.CacheManager(
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1, max_probe_interval=0.5
    )
    assert await manager.connect()
    await manager.set("stable", "v1")
    await manager.set("changed", "old")

    server.kill()
    started = time.monotonic()
    deadline = started + 3.0
    answered = 0
    while time.monotonic() < deadline:  # a workload during several seconds of outage
        await manager.set("changed", "new")
        value = await manager.get("changed")
        assert value == "new"
        assert await manager.get("stable") in ("v1", None)
        answered += 1
        await asyncio.sleep(0.02)
    assert answered > 20
    assert manager.cache_type == "memory_fallback"
    switch = manager.get_cache_info()["last_switch"]
    assert switch["to"] == "memory_fallback" and switch["reason"]

    server.restart()
    assert await reaches_mode(manager, "redis_secure", "changed")
    # The value written during the outage never reverts to the one Redis held before it.
    assert await manager.get("changed") in ("new", None)
    await manager.set("after", "back")
    fresh = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    assert await fresh.get("after") == "back"
    assert await fresh.get("changed") is None  # reset in Redis on return
    switch_logs = [r.getMessage() for r in caplog.records if r.name == "secure_redis.manager"]
    assert len(switch_logs) == 2, switch_logs
    await manager.disconnect()


async def test_unreachable_at_start_then_redis_appears(make_server, config, tmp_path, pki, password) -> None:
    port = free_port()
    cache = sr.GenericRedisCache(f"rediss://127.0.0.1:{port}/0", security_config=config)
    manager = sr.CacheManager(cache=cache, probe_interval=0.1, max_probe_interval=0.3)
    assert await manager.connect() is False
    assert manager.cache_type == "memory_fallback"
    await manager.set("k", 1)
    assert await manager.get("k") == 1
    health = await manager.health_check()
    assert health["degraded"] and health["healthy"]

    from secure_redis.testing import RedisServer

    server = RedisServer(tmp_path / "late", password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert)
    server.port = port
    server.restart()
    try:
        assert await reaches_mode(manager, "redis_secure", "k")
        await manager.set("k", 2)
        assert await manager.get("k") == 2
    finally:
        await manager.disconnect()
        server.stop()


async def test_no_fallback_when_redis_refuses_us_even_without_connect(redis_server, pki, encryption_key) -> None:
    wrong = make_config(pki, remember_secret("Refused-password-long-enough-0123"), encryption_key)
    manager = sr.CacheManager(cache=sr.GenericRedisCache(redis_server.url, security_config=wrong))
    await manager.set("a", 1)  # the first use connects inline and is refused
    with pytest.raises(sr.ConfigurationError):
        await manager.get("a")
    assert manager.cache_type == "redis_secure" and manager.switches == 0


async def test_clear_during_an_outage_holds_after_return(make_server, config) -> None:
    server = make_server("clear", extra_config=["appendonly yes", "appendfsync always"])
    manager = sr.CacheManager(
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1, max_probe_interval=0.3
    )
    assert await manager.connect()
    await manager.set("C", "before-clear")
    server.kill()
    await manager.get("C")
    await manager.clear()
    assert await manager.get("C") is None
    server.restart()
    assert await reaches_mode(manager, "redis_secure", "C")
    assert await manager.get("C") is None
    await manager.disconnect()


async def test_invalid_input_during_an_outage_does_not_pin_the_fallback(make_server, config) -> None:
    server = make_server("pinned", extra_config=["appendonly yes", "appendfsync always"])
    manager = sr.CacheManager(
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1, max_probe_interval=0.3
    )
    assert await manager.connect()
    server.kill()
    assert await reaches_mode(manager, "memory_fallback", "k")
    for bad in ("", "k" * 2000):
        with pytest.raises(sr.ValidationError):
            await manager.delete(bad)
        with pytest.raises(sr.ValidationError):
            await manager.set(bad, 1)
    server.restart()
    assert await reaches_mode(manager, "redis_secure", "k")
    await manager.disconnect()
