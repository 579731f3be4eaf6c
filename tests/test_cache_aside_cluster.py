"""Cache-aside (issue 17) on a TLS-only Redis Cluster (three primaries, a replica each): tags
whose entries spread over every primary, and the loader lock.

The cluster and the helpers come from tests/test_cluster.py; each primary is checked with a
raw (not cluster-aware) redis-py client, so these tests see what every node really holds.
"""

from __future__ import annotations

import asyncio

import pytest

from conftest import make_config
from test_cluster import cluster, cluster_cache, raw_node  # noqa: F401  (cluster: the module fixture)

TAG = "tenant:acme"
TAGGED = [f"ct:tagged:{i}" for i in range(200)]
UNTAGGED = [f"ct:plain:{i}" for i in range(50)]


def names_on(primary, pki, password, pattern: str) -> set[str]:
    raw = raw_node(primary, pki, password)
    try:
        return {name.decode() for name in raw.scan_iter(match=pattern, count=500)}
    finally:
        raw.close()


async def test_invalidate_tags_deletes_exactly_the_tagged_entries_on_every_primary(cluster, pki, password,
                                                                                   encryption_key) -> None:
    """How the entries of one tag spread: the tag set (``secure_redis:tag:<digest>``) lives in
    the slot of its own name, on one primary; its members are the entries' Redis names, sealed,
    and each entry lives in its own key's slot, so 200 tagged keys land on every primary.
    ``invalidate_tags`` takes the set from its one node, opens the members, and deletes them
    slot group by slot group (one DEL per slot, sent to the slot's primary): no command ever
    spans two slots (CROSSSLOT), and keys sharing the tag's slot are not required."""
    # Generous socket timeout: this is about where 250 entries land, not about latency.
    config = make_config(pki, password, encryption_key, socket_timeout=10.0)
    cache = await cluster_cache(cluster, config)
    reader = await cluster_cache(cluster, config, enable_l1_cache=False)
    try:
        await cache.clear()
        for key in TAGGED:
            await cache.set(key, {"k": key}, ttl=600, tags=[TAG])
        await cache.set_many({key: {"k": key} for key in UNTAGGED}, ttl=600)
        primaries = cluster.primaries()
        assert len(primaries) == 3
        before = {p.port: names_on(p, pki, password, "ct:*") for p in primaries}
        tag_sets = {p.port: names_on(p, pki, password, "secure_redis:tag:*") for p in primaries}
        for port, names in before.items():
            assert any(n.startswith("ct:tagged:") for n in names), f"primary {port} holds no tagged entry"
        assert sorted(n for names in before.values() for n in names) == sorted(TAGGED + UNTAGGED)
        # One tag set, on exactly one primary, holding 200 sealed members.
        holders = [port for port, names in tag_sets.items() if names]
        assert len(holders) == 1 and len(tag_sets[holders[0]]) == 1, tag_sets
        tag_name = next(iter(tag_sets[holders[0]]))
        holder = next(p for p in primaries if p.port == holders[0])
        raw = raw_node(holder, pki, password)
        try:
            members = raw.smembers(tag_name)
            assert len(members) == 200 and all(m.startswith(b"gAAAAA") for m in members)
        finally:
            raw.close()

        assert await cache.invalidate_tags([TAG]) == 200

        after = {p.port: names_on(p, pki, password, "ct:*") for p in primaries}
        for port, names in after.items():
            assert not any(n.startswith("ct:tagged:") for n in names), f"primary {port} kept tagged entries"
        assert sorted(n for names in after.values() for n in names) == sorted(UNTAGGED)
        for p in primaries:
            assert not names_on(p, pki, password, "secure_redis:tag:*"), f"primary {p.port} kept a tag set"
        assert await reader.get_many(TAGGED) == {}
        assert await reader.get_many(UNTAGGED) == {key: {"k": key} for key in UNTAGGED}
        assert await cache.get(TAGGED[0]) is None  # and from L1
        assert await cache.invalidate_tags([TAG]) == 0
    finally:
        await cache.clear()
        await cache.disconnect()
        await reader.disconnect()


async def test_loader_lock_on_the_cluster(cluster, pki, password, encryption_key) -> None:
    """The lock's name (``secure_redis:lock:<digest>``) lands in the slot of that name, on one
    primary; it is taken there with SET NX PX and released there by compare-and-delete."""
    config = make_config(pki, password, encryption_key, socket_timeout=10.0)
    cache = await cluster_cache(cluster, config)
    other = await cluster_cache(cluster, config, share_connection=False)
    try:
        await cache.delete("ct:locked")
        # The primitive: held on exactly one primary, refused to another holder, released.
        token = await cache._lock("ct:locked", 5)
        assert isinstance(token, str)
        held = {p.port: names_on(p, pki, password, "secure_redis:lock:*") for p in cluster.primaries()}
        assert sum(len(names) for names in held.values()) == 1, held
        assert await other._lock("ct:locked", 5) is None
        await cache._unlock("ct:locked", token)
        assert not any(names_on(p, pki, password, "secure_redis:lock:*") for p in cluster.primaries())

        # get_or_set(lock=True): one load for 32 callers over two caches with their own
        # connections (as two processes have), and no lock left behind.
        calls = 0

        async def loader() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)
            return "loaded"

        results = await asyncio.wait_for(asyncio.gather(
            *(c.get_or_set("ct:locked", loader, 60, lock=True) for c in [cache, other] * 16)
        ), 30)
        assert results == ["loaded"] * 32
        assert calls == 1
        assert not any(names_on(p, pki, password, "secure_redis:lock:*") for p in cluster.primaries())
        assert await other.get("ct:locked") == "loaded"
    finally:
        await cache.delete("ct:locked")
        await cache.disconnect()
        await other.disconnect()
