"""Faults survived: Redis killed, frozen, re-certified and re-keyed under load, with real servers."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from cryptography.fernet import Fernet

import secure_redis as sr
from conftest import make_config, remember_secret, wait_until
from secure_redis.testing import issue_certificate, random_password

PERSISTENT = ["appendonly yes", "appendfsync always"]


def admin(server, pki) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, password=server.password, ssl=True,
                       ssl_ca_certs=str(pki.ca_cert), socket_timeout=5)


async def test_sigkill_under_concurrent_load_then_restart(make_server, config) -> None:
    server = make_server("killed", extra_config=PERSISTENT)
    manager = sr.CacheManager(
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1
    )
    assert await manager.connect()
    last_written: dict[str, int] = {}
    written_in: dict[str, str] = {}  # the phase of each key's last write
    wrong_reads: list[tuple[str, object, int]] = []
    # Reads while Redis is dead, by when the key was last written: (answered, asked).
    outage_reads = {"before": [0, 0], "outage": [0, 0]}
    phase = "before"
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
            written_in[key] = phase
            read_key = f"load:{task}:{(version * 3) % 5}"
            asked_in, written = phase, written_in.get(read_key)
            value = await manager.get(read_key)
            if value is not None and value != last_written.get(read_key):
                wrong_reads.append((read_key, value, last_written.get(read_key)))
            if asked_in == "outage" == phase and written in outage_reads:
                outage_reads[written][1] += 1
                outage_reads[written][0] += value is not None
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.005)

    workers = [asyncio.create_task(worker(t)) for t in range(32)]
    await asyncio.sleep(1.0)
    server.kill()
    phase = "outage"
    await asyncio.sleep(2.0)
    phase = "after"
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
    # Requests were really served while Redis was dead, not just answered with misses: keys
    # written during the outage from the memory fallback (or L1 before the switch).
    answered, asked = outage_reads["outage"]
    assert asked >= 32 and answered >= 0.9 * asked, outage_reads
    # Keys written before the kill were asked for too; they answer only from L1 until the
    # manager switches (the memory fallback starts empty), so they are counted, not bounded.
    assert outage_reads["before"][1] > 0, outage_reads
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


def connected_clients(server, pki) -> int:
    """Connections the server holds, the admin connection asking excluded."""
    with admin(server, pki) as root:
        return int(root.info("clients")["connected_clients"]) - 1


async def test_sigstop_every_operation_returns_within_its_timeout(make_server, config, pki) -> None:
    server = make_server("frozen-ops")
    OPERATIONS = {
        "get": lambda c: c.get("frozen:1"),
        "set": lambda c: c.set("frozen:new", 1),
        "delete": lambda c: c.delete("frozen:2"),
        "exists": lambda c: c.exists("frozen:3"),
        "get_many": lambda c: c.get_many([f"frozen:{i}" for i in range(10)]),
        "set_many": lambda c: c.set_many({"frozen:a": 1, "frozen:b": 2}),
        "invalidate_pattern": lambda c: c.invalidate_pattern("frozen:[4-6]"),
        "ping": lambda c: c.ping(),
    }
    MANAGER_OPERATIONS = {
        "manager.get": lambda m: m.get("frozen:m"),
        "manager.set": lambda m: m.set("frozen:m2", 2),
        "manager.delete": lambda m: m.delete("frozen:m"),
        "manager.exists": lambda m: m.exists("frozen:m2"),
    }

    def new_cache() -> sr.GenericRedisCache:  # no L1: every call has to ask the frozen server
        return sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False,
                                    share_connection=False)

    # One client per operation, so each one is the first to meet the frozen socket; then a
    # shared client and manager take a concurrent burst of everything.
    own = {name: new_cache() for name in OPERATIONS}
    own_managers = {name: sr.CacheManager(cache=new_cache(), probe_interval=0.1)
                    for name in [*MANAGER_OPERATIONS, "manager.health_check"]}
    shared = new_cache()
    shared_manager = sr.CacheManager(cache=new_cache(), probe_interval=0.1)
    clients = [*own.values(), *own_managers.values(), shared, shared_manager]
    for client in clients:
        assert await client.connect()
    await shared.set_many({f"frozen:{i}": i for i in range(10)})
    await shared_manager.set("frozen:m", "before")
    assert connected_clients(server, pki) == len(clients)  # one multiplexed connection each
    # The documented bound: socket_timeout (1 s here) plus scheduling slack. wait_for turns a
    # hang into a failure instead of a stuck suite.
    bound = config.socket_timeout + 1.0
    durations: dict[str, float] = {}

    async def timed(name: str, call) -> None:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        try:
            await asyncio.wait_for(call(), timeout=bound + 5.0)
        except asyncio.TimeoutError:
            pytest.fail(f"{name} hung against a frozen server")
        durations[name] = max(durations.get(name, 0.0), time.monotonic() - started)

    server.pause()
    try:
        await asyncio.gather(*(timed(name, lambda n=name: OPERATIONS[n](own[n])) for name in OPERATIONS),
                             *(timed(name, lambda n=name: MANAGER_OPERATIONS[n](own_managers[n]))
                               for name in MANAGER_OPERATIONS),
                             timed("manager.health_check", own_managers["manager.health_check"].health_check))
        assert set(durations) == {*OPERATIONS, *MANAGER_OPERATIONS, "manager.health_check"}
        slow = {name: round(d, 2) for name, d in durations.items() if d >= bound}
        assert not slow, slow
        # A timed-out request really waited for the server (it did not fail fast by accident).
        assert durations["set"] >= config.socket_timeout * 0.9, durations
        durations.clear()
        started = time.monotonic()
        await asyncio.gather(*(timed(name, lambda call=call: call(shared)) for _ in range(10)
                               for name, call in OPERATIONS.items()),
                             *(timed(name, lambda call=call: call(shared_manager)) for _ in range(10)
                               for name, call in MANAGER_OPERATIONS.items()))
        assert time.monotonic() - started < bound + 0.5, durations
    finally:
        server.resume()
    for client in clients:
        assert await wait_until(client.ping if isinstance(client, sr.GenericRedisCache) else client.cache.ping)
    assert await wait_until(lambda: asyncio.sleep(0, shared_manager.cache_type == "redis_secure"))
    # Reconnects after the freeze replaced connections instead of adding to them.
    assert await wait_until(lambda: asyncio.sleep(0, connected_clients(server, pki) <= len(clients)), timeout=5), \
        connected_clients(server, pki)
    await shared.set("frozen:after", "ok")
    assert await shared.get("frozen:after") == "ok"
    for client in clients:
        await client.disconnect()


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
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1
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


async def test_password_rotation_inside_one_running_client(make_server, pki, encryption_key) -> None:
    """One process per password, each kept running: A's connection survives the rotation; once
    A is retired and connections are broken, B's client reconnects and A's is refused clearly."""
    admin_pw = remember_secret(random_password(40))
    pw_a = remember_secret(random_password(40))
    pw_b = remember_secret(random_password(40))
    server = make_server("rotate-live", password=admin_pw, acl_lines=[
        f"user default on >{admin_pw} ~* &* +@all",
        f"user app on >{pw_a} ~* &* -@all +@read +@write +@keyspace +ping",
    ])

    def client(password: str) -> sr.GenericRedisCache:
        return sr.GenericRedisCache(server.url, enable_l1_cache=False, security_config=make_config(
            pki, password, encryption_key, acl_username="app"))

    with_a = client(pw_a)
    assert await with_a.connect()
    await with_a.set("rot", "a1")
    root = admin(server, pki)
    root.execute_command("ACL", "SETUSER", "app", f">{pw_b}")  # A and B both valid
    await with_a.set("rot", "a2")  # the running client is unaffected
    assert await with_a.get("rot") == "a2"
    with_b = client(pw_b)
    assert await with_b.connect()
    assert await with_b.get("rot") == "a2"
    root.execute_command("ACL", "SETUSER", "app", f"<{pw_a}")  # retire A
    await with_a.set("rot", "a3")  # still on its authenticated connection
    assert await with_b.get("rot") == "a3"
    assert root.execute_command("CLIENT", "KILL", "USER", "app") >= 2  # every app connection breaks
    # B's client notices and reconnects with B by itself.
    assert await wait_until(with_b.ping)
    await with_b.set("rot", "b1")
    assert await with_b.get("rot") == "b1"
    assert with_b.get_security_status()["connection"]["reconnects"] >= 1
    # A's client cannot: a miss, never a value, never plaintext, and a clear, secret-free reason.
    assert await with_a.get("rot") is None and await with_a.ping() is False

    async def refused() -> bool:
        await with_a.ping()
        return with_a.is_rejected

    assert await wait_until(refused, timeout=10)
    assert "rejected the credentials" in with_a.last_error
    with pytest.raises(sr.ConfigurationError) as info:
        await with_a.connect()
    assert info.value.context["error_type"] == "authentication_failed"
    status = with_a.get_security_status()
    assert status["connection"]["connected"] is False and status["configuration"]["tls_enabled"] is True
    for text in (str(info.value), repr(info.value), with_a.last_error, repr(status)):
        assert pw_a not in text and pw_b not in text and admin_pw not in text
    manager = sr.CacheManager(cache=with_a)
    with pytest.raises(sr.ConfigurationError):  # no silent fallback to memory either
        await manager.get("rot")
    root.close()


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
