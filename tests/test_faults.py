"""Faults survived: Redis killed, frozen, re-certified and re-keyed under load, with real servers."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from cryptography.fernet import Fernet

import secure_redis as sr
from conftest import make_config, remember_secret, wait_until
from secure_redis.testing import issue_certificate

PERSISTENT = ["appendonly yes", "appendfsync always"]


def admin(server, pki) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, password=server.password, ssl=True,
                       ssl_ca_certs=str(pki.ca_cert), socket_timeout=5)


async def test_sigkill_under_concurrent_load_then_restart(make_server, config) -> None:
    server = make_server("killed", extra_config=PERSISTENT)
    manager = sr.CacheManager(
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1, max_probe_interval=0.3
    )
    assert await manager.connect()
    last_written: dict[str, int] = {}
    wrong_reads: list[tuple[str, object, int]] = []
    slowest = 0.0
    stop = asyncio.Event()

    async def worker(task: int) -> None:
        nonlocal slowest
        version = 0
        while not stop.is_set():
            key = f"load:{task}:{version % 5}"
            version += 1
            started = time.monotonic()
            await manager.set(key, version)
            last_written[key] = version
            read_key = f"load:{task}:{(version * 3) % 5}"
            value = await manager.get(read_key)
            if value is not None and value != last_written.get(read_key):
                wrong_reads.append((read_key, value, last_written.get(read_key)))
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.005)

    workers = [asyncio.create_task(worker(t)) for t in range(32)]
    await asyncio.sleep(1.0)
    server.kill()
    await asyncio.sleep(2.0)
    server.restart()
    assert await wait_until(lambda: asyncio.sleep(0, manager.cache_type == "redis_secure"))
    await asyncio.sleep(1.0)
    stop.set()
    outcomes = await asyncio.gather(*workers, return_exceptions=True)
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert not wrong_reads, wrong_reads[:5]
    # Every call answered within the socket timeout (1 s here) plus scheduling slack.
    assert slowest < config.socket_timeout + 1.0, slowest
    assert manager.switches == 2
    # What Redis holds afterwards is never older than the last write.
    fresh = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    for key, version in last_written.items():
        assert await fresh.get(key) in (None, version), key
    await manager.disconnect()


async def test_sigstop_calls_return_and_connections_do_not_pile_up(make_server, config, pki) -> None:
    server = make_server("frozen")
    cache = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    assert await cache.connect()
    server.pause()
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(cache.get(f"k{i}") for i in range(200)), return_exceptions=True)
        assert all(r is None for r in results)
        assert time.monotonic() - started < config.socket_timeout + 1.5
        for _ in range(20):  # keep calling during the freeze: reconnect attempts must not multiply
            await cache.get("k")
            await asyncio.sleep(0.1)
    finally:
        server.resume()
    assert await wait_until(cache.ping)
    clients = admin(server, pki).client_list()
    assert len(clients) <= 4, [c.get("addr") for c in clients]  # ours + the admin connection


async def test_server_certificate_replaced_by_the_same_ca(make_server, config, pki) -> None:
    server = make_server("recert")
    cache = sr.GenericRedisCache(server.url, security_config=config)
    assert await cache.connect()
    await cache.set("before", 1)
    cert, key = issue_certificate(pki, "renewed-server", client=False, sans=["localhost", "127.0.0.1"])
    server.cert, server.key = cert, key
    server.restart()
    assert await wait_until(cache.ping)
    assert "renewed-server" in cache.get_security_status()["connection"]["server_certificate_subject"]
    await cache.set("after", 2)
    assert await cache.get("after") == 2


async def test_server_certificate_from_an_unknown_ca_is_refused(make_server, config, pki, caplog) -> None:
    server = make_server("rogue")
    manager = sr.CacheManager(
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1, max_probe_interval=0.2
    )
    assert await manager.connect()
    server.cert, server.key = pki.other_ca_server_cert, pki.other_ca_server_key
    server.restart()  # an impostor now answers on the same address
    cache = manager.cache

    async def refused() -> bool:
        await cache.ping()
        return cache.is_rejected

    assert await wait_until(refused)
    assert "not signed by the configured CA" in cache.last_error
    assert any("refused" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    with pytest.raises(sr.ConfigurationError):  # no silent fallback, and never plaintext
        await manager.get("anything")
    assert cache.get_security_status()["connection"]["connected"] is False


async def test_password_rotation_with_two_acl_passwords(make_server, pki, encryption_key) -> None:
    admin_pw = remember_secret("Admin-password-for-rotation-test-0123")
    old_pw = remember_secret("Old-app-password-0123456789-abcdef")
    new_pw = remember_secret("New-app-password-0123456789-ghijkl")
    server = make_server("rotate", password=admin_pw, acl_lines=[
        f"user default on >{admin_pw} ~* &* +@all",
        f"user app on >{old_pw} ~* &* -@all +@read +@write +@keyspace +ping",
    ])
    before = sr.GenericRedisCache(server.url, security_config=make_config(
        pki, old_pw, encryption_key, acl_username="app"), enable_l1_cache=False)
    assert await before.connect()
    await before.set("k", "v1")
    root = admin(server, pki)
    root.execute_command("ACL", "SETUSER", "app", f">{new_pw}")  # both passwords valid now
    after = sr.GenericRedisCache(server.url, security_config=make_config(
        pki, new_pw, encryption_key, acl_username="app"), enable_l1_cache=False)
    assert await after.connect()
    assert await after.get("k") == "v1"
    root.execute_command("ACL", "SETUSER", "app", f"<{old_pw}")  # retire the old one
    await before.set("k", "v2")  # the old process keeps working on its authenticated connection
    assert await after.get("k") == "v2"
    stale = sr.GenericRedisCache(server.url, security_config=make_config(
        pki, old_pw, encryption_key, acl_username="app"))
    with pytest.raises(sr.ConfigurationError):
        await stale.connect()


async def test_encryption_key_rotation_under_load(redis_server, pki, password, encryption_key, raw_redis) -> None:
    def cache_with(keys: str) -> sr.GenericRedisCache:
        return sr.GenericRedisCache(redis_server.url, enable_l1_cache=False,
                                    security_config=make_config(pki, password, keys))

    old = cache_with(encryption_key)
    await old.set_many({f"rot:{i}": i for i in range(200)})
    new_key = remember_secret(sr.generate_encryption_key())
    rotated = cache_with(f"{new_key},{encryption_key}")

    async def reader(i: int) -> object:
        return await rotated.get(f"rot:{i}")

    async def writer(i: int) -> None:
        await rotated.set(f"rot:new:{i}", i)

    results = await asyncio.gather(*(reader(i) for i in range(200)), *(writer(i) for i in range(200)),
                                   *(old.get(f"rot:{i}") for i in range(200)))
    assert results[:200] == list(range(200))  # every old entry still reads
    assert results[400:] == list(range(200))  # and the old processes still read them too
    for i in (0, 57, 199):
        assert Fernet(new_key).decrypt(raw_redis.get(f"rot:new:{i}"))[:2] == b"SR"  # new writes: new key
    raw_redis.flushdb()


async def test_connection_count_bounded_under_1000_tasks(redis_server, config, pki) -> None:
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=False)
    root = admin(redis_server, pki)
    before = len(root.client_list())
    await asyncio.gather(*(cache.set(f"many:{i}", i) for i in range(1000)))
    results = await asyncio.gather(*(cache.get(f"many:{i}") for i in range(1000)))
    assert results == list(range(1000))
    assert len(root.client_list()) - before <= 1  # one multiplexed connection for all of them
    await cache.clear()
