"""Tenant scopes (issue 18 part 1) on a TLS-only Redis Cluster and behind Sentinel.

Cluster: a scope's entries spread over every primary (each in its own key's slot), its record
lives on one; every scope command stays inside one slot, and forget_scope, clear and tag
invalidation reach every primary. Sentinel: a scope's record and entries survive a failover
(the replica has them), and the scope keeps serving and can be forgotten on the new primary.
Each node is checked with a raw (not cluster-aware) redis-py client."""

from __future__ import annotations

import secure_redis as sr
from conftest import make_config, wait_until
from test_cluster import cluster, cluster_cache, raw_node  # noqa: F401  (cluster: the module fixture)
from test_sentinel import raw_primary, sentinel_cache, sentinel_password, start_set  # noqa: F401

KEYS = [f"sc:{i}" for i in range(120)]


def names_on(node, pki, password, pattern: str) -> dict[str, bytes]:
    raw = raw_node(node, pki, password)
    try:
        # Strings only: a scope's tag sets live under its location too.
        return {name.decode(): raw.get(name) for name in raw.scan_iter(match=pattern, count=500, _type="string")}
    finally:
        raw.close()


def everywhere(cluster, pki, password, pattern: str) -> dict[int, dict[str, bytes]]:  # noqa: F811
    return {p.port: names_on(p, pki, password, pattern) for p in cluster.primaries()}


async def test_scopes_on_a_cluster_spread_stay_apart_and_forget_on_every_primary(
    cluster, pki, password, encryption_key  # noqa: F811
) -> None:
    config = make_config(pki, password, encryption_key, socket_timeout=10.0)
    cache = await cluster_cache(cluster, config)
    other = await cluster_cache(cluster, config, enable_l1_cache=False, share_connection=False)
    try:
        await cache.clear()
        acme, globex = cache.scope("acme"), cache.scope("globex")
        for key in KEYS:
            await acme.set(key, {"k": key}, ttl=600, tags=["docs"] if key.endswith("7") else ())
        await globex.set_many({key: "globex" for key in KEYS[:10]}, ttl=600)
        entries = everywhere(cluster, pki, password, "secure_redis:scope:*")
        assert all(entries.values()), f"a primary holds no scope entry: {[len(v) for v in entries.values()]}"
        records = everywhere(cluster, pki, password, "secure_redis:scope-key:*")
        assert sum(len(v) for v in records.values()) == 2
        assert not any("acme" in n or "globex" in n for v in entries.values() for n in v)
        # Through a cache of its own (no L1), reading from every primary.
        assert await other.scope("acme").get_many(KEYS) == {key: {"k": key} for key in KEYS}
        assert await other.scope("globex").get("sc:3") == "globex"
        # A token copied onto the other scope's name (on whichever primary holds that name) is a miss.
        acme_entries = {n: v for node in entries.values() for n, v in node.items()}
        acme_location = next(n.split(":")[2] for n in acme_entries if n.endswith(":sc:50"))
        globex_name = next(n for n in acme_entries if n.endswith(":sc:3") and acme_location not in n)
        source = next(p for p in cluster.primaries() if f"secure_redis:scope:{acme_location}:sc:3" in
                      names_on(p, pki, password, f"secure_redis:scope:{acme_location}:sc:3"))
        token = names_on(source, pki, password, f"secure_redis:scope:{acme_location}:sc:3")[
            f"secure_redis:scope:{acme_location}:sc:3"]
        holder = next(p for p in cluster.primaries() if globex_name in names_on(p, pki, password, globex_name))
        raw = raw_node(holder, pki, password)
        try:
            raw.set(globex_name, token)
        finally:
            raw.close()
        assert await other.scope("globex").get("sc:3") is None
        # Tags and patterns stay in their scope, across primaries.
        assert await acme.invalidate_tags(["docs"]) == 12
        assert await acme.invalidate_pattern("sc:1*") == 28  # sc:1, sc:10-19, sc:100-119 (31), less sc:17, 107, 117
        assert await other.scope("globex").get("sc:1") == "globex"
        # Forget: every primary loses the scope's entries; the other scope keeps its own.
        removed = await cache.forget_scope("acme", wait=True)
        assert removed == len(KEYS) - 12 - 28
        assert await other.scope("acme").get("sc:50") is None
        left = everywhere(cluster, pki, password, f"secure_redis:scope:{acme_location}:*")
        assert not any(left.values())
        assert sum(len(v) for v in everywhere(cluster, pki, password, "secure_redis:scope-key:*").values()) == 1
        assert await globex.get("sc:4") == "globex"
    finally:
        await cache.clear()
        await cache.disconnect()
        await other.disconnect()


async def test_a_scope_survives_a_sentinel_failover_and_forgets_on_the_new_primary(
    monkeypatch, tmp_path, pki, password, encryption_key, sentinel_password  # noqa: F811
) -> None:
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", sentinel_password)
    running = start_set(tmp_path / "scope-failover", pki, password, sentinel_password, down_after_ms=1000)
    try:
        config = make_config(pki, password, encryption_key, socket_timeout=0.5, connection_timeout=1.0)
        cache = sentinel_cache(running, config)
        assert await cache.connect()
        tenant = cache.scope("acme")
        await tenant.set_many({f"f:{i}": i for i in range(20)}, ttl=600)
        old_port = running.primary_port()
        raw = raw_primary(running, pki, password)
        assert raw.wait(1, 5000) >= 1  # the replica has the record and every entry
        raw.close()
        running.primary.kill()
        running.wait_for_failover(old_port)
        assert await wait_until(cache.ping, timeout=30)
        # A cache that never saw the scope resolves it from the new primary.
        fresh = sentinel_cache(running, config, enable_l1_cache=False, share_connection=False)
        assert await fresh.connect()
        assert await fresh.scope("acme").get_many([f"f:{i}" for i in range(20)]) == {f"f:{i}": i for i in range(20)}
        await tenant.set("after-failover", "yes")
        assert await fresh.scope("acme").get("after-failover") == "yes"
        assert await fresh.forget_scope("acme", wait=True) == 21
        assert await fresh.scope("acme").get("f:3") is None
        assert await wait_until(lambda: _misses(tenant, "f:3"), timeout=5)
        raw = raw_primary(running, pki, password)
        try:
            assert list(raw.scan_iter("secure_redis:scope*")) == []
        finally:
            raw.close()
        await fresh.disconnect()
        await cache.disconnect()
    finally:
        running.stop()


async def _misses(view: sr.GenericRedisCache, key: str) -> bool:
    return await view.get(key) is None
