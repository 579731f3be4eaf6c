"""Keys this cache did not write survive every bulk path: invalidate_pattern (connected and
replayed after an outage), the repair after an outage too large to track key by key, a clear
missed during an outage, and CacheManager's return to Redis. Only clear() while connected
deletes keys it did not write, and only inside its namespace (the whole database without one).

Foreign keys are plain strings, a hash and a list, a Fernet-looking string, another keyring's
entry, another namespace's entry under the same keyring, and a token of ours copied to another
name; each is compared byte for byte (DUMP) before and after.
"""

from __future__ import annotations

import ssl

import pytest

import secure_redis as sr
from conftest import make_config, remember_secret, wait_until
from secure_redis.manager import MAX_OUTAGE_KEYS

FOREIGN = [b"user:plain", b"user:hash", b"user:list", b"user:lookalike", b"user:stranger",
           b"user:copied", b"tenant:t:1"]
PERSISTENT = ["appendonly yes", "appendfsync always"]


def raw_client(server, pki, password: str):
    import redis

    return redis.Redis(host=server.host, port=server.port, password=password, ssl=True,
                       ssl_ca_certs=str(pki.ca_cert), ssl_cert_reqs=ssl.CERT_REQUIRED)


async def plant_foreign(client, url: str, config: sr.SecurityConfig, pki, password: str) -> dict[bytes, bytes]:
    """Writes the foreign keys (the cache under test must already hold ``user:1``) and returns
    their serialized values."""
    stranger = sr.GenericRedisCache(url, enable_l1_cache=False, security_config=make_config(
        pki, password, remember_secret(sr.generate_encryption_key())))
    await stranger.set("user:stranger", "another keyring")
    tenant = sr.GenericRedisCache(url, security_config=config, namespace="tenant:", enable_l1_cache=False)
    await tenant.set("t:1", "same keyring, another namespace")
    client.set("user:plain", "hello")
    client.hset("user:hash", mapping={"f": "v"})
    client.rpush("user:list", "a", "b")
    client.set("user:lookalike", b"gAAAAA" + b"A" * 150)  # token-shaped, opens with no key
    client.set("user:copied", client.get("user:1"))  # our token, bound to another name
    await stranger.disconnect()
    await tenant.disconnect()
    return {name: client.dump(name) for name in FOREIGN}


def assert_untouched(client, before: dict[bytes, bytes]) -> None:
    after = {name: client.dump(name) for name in FOREIGN}
    gone = [name for name in FOREIGN if after[name] != before[name]]
    assert not gone, f"foreign keys deleted or changed: {gone}"


async def test_invalidate_pattern_deletes_only_entries_this_cache_wrote(
    cache, raw_redis, redis_server, config, pki, password
) -> None:
    for i in range(1, 4):
        await cache.set(f"user:{i}", i)
    before = await plant_foreign(raw_redis, redis_server.url, config, pki, password)
    assert await cache.invalidate_pattern("user:*") == 3
    assert raw_redis.exists("user:1", "user:2", "user:3") == 0
    assert await cache.invalidate_pattern("*") == 0  # the other namespace's entry is not ours
    assert_untouched(raw_redis, before)
    tenant = sr.GenericRedisCache(redis_server.url, security_config=config, namespace="tenant:")
    assert await tenant.invalidate_pattern("*") == 1
    assert raw_redis.exists("tenant:t:1") == 0


async def test_ai_invalidation_deletes_only_entries_this_cache_wrote(redis_server, raw_redis, config) -> None:
    ai = sr.AIResponseCache(redis_server.url, security_config=config)
    key = ai.build_key("a document", "summarize")
    await ai.set(key, "ours")
    raw_redis.set("ai_cache:op:summarize|foreign", "hello")
    raw_redis.hset("ai_cache:op:summarize|hash", mapping={"f": "v"})
    assert await ai.invalidate_by_operation("summarize") == 1
    assert await ai.clear() == 0
    assert raw_redis.get("ai_cache:op:summarize|foreign") == b"hello"
    assert raw_redis.hgetall("ai_cache:op:summarize|hash") == {b"f": b"v"}
    raw_redis.delete("ai_cache:op:summarize|foreign", "ai_cache:op:summarize|hash")
    # A namespace prefixes the ai_cache: names too; statistics count only its own.
    tenant = sr.AIResponseCache(redis_server.url, security_config=config, namespace="t:")
    await tenant.set(key, "tenant's")
    await ai.set(key, "ours")
    assert raw_redis.exists(f"t:{key}", key) == 2
    assert (await tenant.get_cache_stats())["redis"]["keys"] == 1
    assert await tenant.clear() == 1 and raw_redis.exists(key) == 1
    assert await ai.clear() == 1
    await tenant.disconnect()
    await ai.disconnect()


async def test_namespace_prefixes_names_and_bounds_clear(redis_server, raw_redis, config) -> None:
    tenant = sr.GenericRedisCache(redis_server.url, security_config=config, namespace="tenant:")
    await tenant.set("k", {"v": 1})
    await tenant.set_many({"a": 1, "b": 2})
    assert raw_redis.exists("tenant:k", "tenant:a", "tenant:b") == 3 and raw_redis.exists("k") == 0
    fresh = sr.GenericRedisCache(redis_server.url, security_config=config, namespace="tenant:",
                                 enable_l1_cache=False)
    assert await fresh.get("k") == {"v": 1} and await fresh.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert await fresh.exists("k") and 3590 <= await fresh.get_ttl("k") <= 3600
    raw_redis.set("outside", "kept")
    raw_redis.set("tenant:foreign", "written by someone else, inside the namespace")
    stats = await tenant.get_cache_stats()
    assert stats["redis"]["namespace"] == "tenant:" and stats["redis"]["keys"] == 4
    assert "namespace='tenant:'" in repr(tenant)
    # clear() is the documented exception: everything in the namespace, whoever wrote it...
    assert await tenant.clear() == 4
    assert raw_redis.exists("tenant:foreign") == 0 and raw_redis.get("outside") == b"kept"
    # ...and, without a namespace, everything in the database.
    plain = sr.GenericRedisCache(redis_server.url, security_config=config)
    assert await plain.clear() >= 1 and raw_redis.dbsize() == 0
    for bad in ("has space", "x" * 129, "caf\u00e9:"):
        with pytest.raises(sr.ConfigurationError) as caught:
            sr.GenericRedisCache(redis_server.url, security_config=config, namespace=bad)
        assert caught.value.context["error_type"] == sr.ErrorCode.INVALID_CACHE_PARAMETER.value


@pytest.mark.parametrize("path", ["missed-invalidation", "missed-clear", "overflow"])
async def test_outage_paths_never_delete_foreign_keys(make_server, config, pki, password, path) -> None:
    server = make_server(f"foreign-{path}", extra_config=PERSISTENT)
    client = raw_client(server, pki, password)
    cache = sr.GenericRedisCache(server.url, security_config=config)
    assert await cache.connect()
    await cache.set("user:1", "before the outage")
    before = await plant_foreign(client, server.url, config, pki, password)

    server.kill()
    if path == "missed-invalidation":
        # Only L1 can be reached, and L1 is flushed once its invalidation link is lost.
        assert await cache.invalidate_pattern("user:*") in (0, 1)
    elif path == "missed-clear":
        await cache.clear()
    else:  # more distinct writes than the repair tracks one by one
        for chunk in range(101):
            await cache.set_many({f"bulk:{chunk}:{i}": i for i in range(1000)})
    server.restart()  # with every key it held, ours and foreign
    assert client.exists("user:1") == 1

    async def repaired() -> bool:
        await cache.ping()  # reconnects; any call then starts the repair
        await cache.exists("user:2")
        return client.exists("user:1") == 0

    assert await wait_until(repaired), "the repair did not remove our stale entry"
    assert_untouched(client, before)
    client.close()
    await cache.disconnect()


async def test_manager_return_after_a_long_outage_deletes_only_our_entries(make_server, config, pki, password) -> None:
    server = make_server("foreign-manager", extra_config=PERSISTENT)
    client = raw_client(server, pki, password)
    manager = sr.CacheManager(
        cache=sr.GenericRedisCache(server.url, security_config=config), probe_interval=0.1
    )
    assert await manager.connect()
    await manager.set("user:1", "before the outage")
    before = await plant_foreign(client, server.url, config, pki, password)

    server.kill()
    await manager.get("not-in-l1")  # a read that reaches for Redis notices the outage
    for i in range(MAX_OUTAGE_KEYS + 100):  # past the key-by-key reset
        await manager.set(f"outage:{i}", i)
    assert manager.cache_type == "memory_fallback"
    server.restart()

    async def back() -> bool:
        await manager.get("user:2")
        return manager.cache_type == "redis_secure"

    assert await wait_until(back), "the manager did not return to Redis"
    assert client.exists("user:1") == 0  # ours, possibly stale: removed before switching back
    assert_untouched(client, before)
    client.close()
    await manager.disconnect()


async def coherent(cache) -> bool:
    return (await cache.get_cache_stats())["memory"]["coherent"]


async def test_an_acl_user_limited_to_its_namespace_can_do_everything(make_server, pki, encryption_key) -> None:
    """A namespace lets the ACL confine the application's user to its keys (``~tenant:*``):
    reads, writes, invalidation, clear() and the live security check all stay inside, and
    the permissions the docs list for coherence and fencing are all it needs (no NOPERM)."""
    app_password = remember_secret("namespace-app-password-0123456789")
    admin_password = remember_secret("namespace-admin-password-0123456789")
    server = make_server("acl-namespace", password=admin_password, acl_lines=[
        f"user default on >{admin_password} ~* &* +@all",
        # The connection commands docs/reliability.md lists: coherent L1 and fencing.
        f"user cache-app on >{app_password} ~tenant:* -@all +@read +@write +@keyspace +ping "
        "+hello +client|id +client|kill +client|tracking +client|setname",
    ])
    admin = raw_client(server, pki, admin_password)
    admin.set("outside", "kept")
    config = make_config(pki, app_password, encryption_key, acl_username="cache-app")
    cache = sr.GenericRedisCache(server.url, security_config=config, namespace="tenant:")
    assert await cache.connect()
    await cache.set("k", {"v": 1})
    await cache.set_many({"a": 1, "b": 2})
    assert await cache.get("k") == {"v": 1}
    # L1 kept coherent under this ACL (the lease may lapse for a moment on a busy machine).
    assert await wait_until(lambda: coherent(cache), timeout=5)
    assert (await cache.validate_security()).is_valid
    assert await cache.invalidate_pattern("a") == 1
    assert await cache.clear() == 2
    assert admin.get("outside") == b"kept" and admin.dbsize() == 1
    assert "errorstat_NOPERM" not in admin.info("errorstats")
    admin.close()
    await cache.disconnect()
