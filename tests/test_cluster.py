"""The same secure cache on a TLS-only Redis Cluster: three primaries with a replica each.

Everything here runs against real `redis-server --cluster-enabled yes` processes that talk
TLS on the client port, the cluster bus and replication, all with the password.
"""

from __future__ import annotations

import pytest

import secure_redis as sr
from conftest import assert_serves_through_outage, back_on_redis, make_config, remember_secret, wait_until
from secure_redis.testing import RedisCluster, RedisServer, TestPKI


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI, password: str):
    with RedisCluster(
        tmp_path_factory.mktemp("cluster"), password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert,
        client_cert=pki.client_cert, client_key=pki.client_key,
    ) as running:
        yield running


def raw_node(node: RedisServer, pki: TestPKI, password: str):
    """redis-py on one node (not cluster-aware): to see what that node really stores."""
    import redis

    return redis.Redis(host=node.host, port=node.port, password=password, ssl=True, ssl_ca_certs=str(pki.ca_cert))


async def cluster_cache(cluster: RedisCluster, config: sr.SecurityConfig, cls=sr.GenericRedisCache, **kwargs):
    cache = cls(cluster.seed_url, security_config=config, cluster=True, **kwargs)
    assert await cache.connect() is True
    return cache


async def test_cluster_without_a_ca_is_refused_unless_public_roots_are_chosen(monkeypatch, cluster, pki, password,
                                                                              encryption_key) -> None:
    """Issue 14: node addresses come from CLUSTER SLOTS replies, so the public roots would let a
    compromised node send the client, password included, to any host with a public certificate
    for the name it announces. A CA is required, in every environment."""
    for name in ("ENVIRONMENT", "ENFORCE_AUTH", "REDIS_TLS_TRUST_PUBLIC_ROOTS"):
        monkeypatch.delenv(name, raising=False)
    no_ca = make_config(pki, password, encryption_key, tls_ca_path=None,
                        tls_cert_path=pki.client_cert, tls_key_path=pki.client_key)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache(cluster.seed_url, security_config=no_ca, cluster=True)
    assert info.value.context["error_type"] == "tls_ca_required"
    assert info.value.context["topology"] == "cluster"
    assert "required with Redis Cluster" in info.value.message
    monkeypatch.setenv("REDIS_CLUSTER_NODES", cluster.seed_url)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache(cluster.seed_url, security_config=no_ca)
    assert info.value.context["error_type"] == "tls_ca_required"
    monkeypatch.delenv("REDIS_CLUSTER_NODES")
    # Chosen explicitly, the public roots are used, and this cluster's private CA is not among them.
    public = make_config(pki, password, encryption_key, tls_ca_path=None, tls_trust_public_roots=True,
                         tls_cert_path=pki.client_cert, tls_key_path=pki.client_key)
    cache = sr.GenericRedisCache(cluster.seed_url, security_config=public, cluster=True)
    with pytest.raises(sr.ConfigurationError) as info:
        await cache.connect()
    assert "not trusted by the public web roots" in info.value.message, info.value.message


async def test_workload_spreads_over_every_primary_encrypted(cluster, pki, password, encryption_key) -> None:
    # A generous socket timeout: this is about where 2000 entries land, and on a loaded machine a
    # primary's batch can take longer than the suite's 1 s, which (rightly) fails the batch and
    # has its keys deleted by the repair, so the reads below would miss them.
    config = make_config(pki, password, encryption_key, socket_timeout=10.0)
    cache = await cluster_cache(cluster, config)
    await cache.clear()
    # 2000 keys: about 670 per primary, more than one SCAN batch (500) on each.
    values = {f"user:{i}": {"i": i, "name": f"private-{i}"} for i in range(2000)}
    await cache.set_many(values, ttl=600)
    await cache.set("single", [1, 2, 3])
    fresh = await cluster_cache(cluster, config, enable_l1_cache=False)
    assert await fresh.get_many(list(values) + ["absent"]) == values
    assert await fresh.get("single") == [1, 2, 3]
    assert await fresh.exists("user:7") and 590 <= await fresh.get_ttl("user:7") <= 600
    assert await fresh.delete("user:7") and not await fresh.exists("user:7")
    # Every primary holds a share, and every value it holds is a Fernet token.
    for primary in cluster.primaries():
        raw = raw_node(primary, pki, password)
        names = [name for name in raw.scan_iter(count=500)]
        assert len(names) > 500, f"primary {primary.port} holds {len(names)} keys"
        for name in names[:20]:
            stored = raw.get(name)
            assert stored.startswith(b"gAAAAA") and b"private" not in stored
        raw.close()
    # SCAN visits every primary: the count is the whole keyspace, not one node's share.
    assert await cache.invalidate_pattern("user:*") == 1999
    assert await fresh.get_many(list(values)) == {}
    assert await cache.clear() == 1
    await cache.disconnect()
    await fresh.disconnect()


async def test_invalidation_spares_foreign_keys_on_every_primary(cluster, pki, password, encryption_key) -> None:
    """The ownership checks (STRLEN + GETRANGE pipelines, MGET) run per hash slot, and a
    WRONGTYPE reply inside one of them only skips that key."""
    import redis

    config = make_config(pki, password, encryption_key)
    cache = await cluster_cache(cluster, config)
    await cache.clear()
    await cache.set_many({f"f:{i}": i for i in range(300)})
    seed = cluster.primaries()[0]
    client = redis.RedisCluster(host=seed.host, port=seed.port, password=password, ssl=True,
                                ssl_ca_certs=str(pki.ca_cert))
    for i in range(300):
        client.set(f"f:plain:{i}", "hello")
        client.hset(f"f:hash:{i}", "field", "value")
    assert await cache.invalidate_pattern("f:*") == 300
    survivors = sum(client.exists(f"f:plain:{i}") + client.exists(f"f:hash:{i}") for i in range(300))
    assert survivors == 600
    assert await cache.clear() == 600
    client.close()
    await cache.disconnect()


async def test_batches_stay_inside_one_slot(cluster, pki, password, encryption_key) -> None:
    """A pipeline or MGET across slots is refused by Redis Cluster (CROSSSLOT); ours never is."""
    config = make_config(pki, password, encryption_key)
    cache = await cluster_cache(cluster, config, enable_l1_cache=False)
    keys = [f"{{tenant-{i % 7}}}:item:{i}" for i in range(70)] + [f"loose:{i}" for i in range(30)]
    await cache.set_many({key: key for key in keys})
    assert await cache.get_many(keys) == {key: key for key in keys}
    stats = await cache.get_cache_stats()
    assert stats["performance"]["redis_failures"] == 0, stats["redis"]["last_error"]
    await cache.clear()
    await cache.disconnect()


def owner_of(cluster: RedisCluster, pki: TestPKI, password: str, name: str):
    """redis-py on the primary that serves `name`'s slot (the others answer MOVED)."""
    import redis

    for primary in cluster.primaries():
        raw = raw_node(primary, pki, password)
        try:
            raw.exists(name)
            return raw
        except redis.exceptions.ResponseError:
            raw.close()
    raise AssertionError(f"no primary serves {name}")


async def test_oversized_and_other_type_values_spoil_no_slot(cluster, pki, password, encryption_key) -> None:
    """As on one node: a value planted past the cap (48 MiB) and a hash under a cache key are
    misses, counted, and the entries of their own slot and of the others are still read, through
    get and get_many, with and without L1."""
    config = make_config(pki, password, encryption_key)
    cache = await cluster_cache(cluster, config)
    await cache.clear()
    genuine = {f"{{t{i}}}:ok": i for i in range(6)}
    await cache.set_many(genuine)
    planted, hashed = "{t0}:planted", "{t1}:hashed"  # each shares a slot with a genuine entry
    for name, plant in ((planted, lambda raw: raw.set(planted, b"x" * (48 * 2**20))),
                        (hashed, lambda raw: raw.hset(hashed, mapping={"field": "value"}))):
        raw = owner_of(cluster, pki, password, name)
        plant(raw)
        raw.close()
    for l1 in (False, True):
        fresh = await cluster_cache(cluster, config, enable_l1_cache=l1)
        assert await fresh.get(planted) is None and await fresh.get(hashed) is None
        assert await fresh.get_many([planted, hashed, *genuine]) == genuine
        performance = (await fresh.get_cache_stats())["performance"]
        assert performance["rejected_by_kind"]["oversized"] == 2, performance
        await fresh.disconnect()
    assert await cache.clear() == 8
    await cache.disconnect()


async def test_ai_cache_on_the_cluster(cluster, pki, password, encryption_key) -> None:
    config = make_config(pki, password, encryption_key)
    ai = await cluster_cache(cluster, config, cls=sr.AIResponseCache)
    await ai.clear()
    for i in range(60):
        await ai.set(ai.build_key(f"document {i}", "summarize", {"max_length": 50}), {"summary": f"s{i}"})
        await ai.set(ai.build_key(f"document {i}", "sentiment"), {"label": "positive"})
    key = ai.build_key("document 3", "summarize", {"max_length": 50})
    fresh = await cluster_cache(cluster, config, cls=sr.AIResponseCache, enable_l1_cache=False)
    assert await fresh.get(key) == {"summary": "s3"}
    assert await ai.invalidate_by_operation("summarize") == 60
    assert await fresh.get(key) is None
    stats = await ai.get_cache_stats()
    assert stats["redis"]["keys"] == 60  # the sentiment entries, counted on every primary
    assert await ai.clear() == 60
    await ai.disconnect()
    await fresh.disconnect()


async def test_security_report_covers_every_primary(cluster, pki, password, encryption_key) -> None:
    cache = await cluster_cache(cluster, make_config(pki, password, encryption_key))
    status = cache.get_security_status()
    nodes = status["connection"]["nodes"]
    assert status["connection"]["topology"] == "cluster"
    assert sorted(n["address"] for n in nodes) == sorted(f"rediss://127.0.0.1:{p.port}/0" for p in cluster.primaries())
    assert {n["role"] for n in nodes} == {"primary"}  # what the connection uses
    for node in nodes:
        assert node["tls_version"] in ("TLSv1.2", "TLSv1.3")
        assert 80 <= node["server_certificate_days_until_expiry"] <= 90
    # The live validation surveys every node, replicas included, each through our TLS checks.
    report = await cache.validate_security()
    assert report.is_valid, report.errors
    surveyed = report.connectivity_info["nodes"]
    assert report.connectivity_info["topology"] == "cluster"
    assert sorted(n["address"] for n in surveyed) == sorted(f"rediss://127.0.0.1:{n.port}/0" for n in cluster.nodes)
    assert sorted(n["role"] for n in surveyed) == ["primary"] * 3 + ["replica"] * 3
    assert all(n["tls_version"].startswith("TLSv1.") and "error" not in n for n in surveyed)
    await cache.disconnect()


async def test_every_node_gets_the_same_refusals(cluster, pki, password, encryption_key, redis_server) -> None:
    wrong = make_config(pki, remember_secret("not-the-cluster-password-123"), encryption_key)
    with pytest.raises(sr.ConfigurationError) as info:
        await sr.GenericRedisCache(cluster.seed_url, security_config=wrong, cluster=True).connect()
    assert info.value.context["error_type"] == "authentication_failed"
    other_ca = make_config(pki, password, encryption_key, tls_ca_path=pki.other_ca_cert)
    with pytest.raises(sr.ConfigurationError) as info:
        await sr.GenericRedisCache(cluster.seed_url, security_config=other_ca, cluster=True).connect()
    assert "REDIS_TLS_CA_PATH" in info.value.message
    # A single node asked to act as a cluster says so, instead of half working.
    config = make_config(pki, password, encryption_key)
    with pytest.raises(sr.ConfigurationError) as info:
        await sr.GenericRedisCache(redis_server.url, security_config=config, cluster=True).connect()
    assert info.value.context["error_type"] == "not_a_cluster"
    with pytest.raises(sr.ConfigurationError):  # Redis Cluster has database 0 only
        sr.GenericRedisCache(cluster.seed_url.replace("/0", "/2"), security_config=config, cluster=True)
    with pytest.raises(sr.ConfigurationError) as info:  # no plaintext node can sneak into the list
        sr.GenericRedisCache(cluster.seed_url, security_config=config, cluster_nodes=["redis://127.0.0.1:1"])
    assert "rediss://" in info.value.message


async def test_cluster_from_the_environment(monkeypatch, cluster, pki, password, encryption_key) -> None:
    monkeypatch.setenv("REDIS_URL", cluster.seed_url)
    monkeypatch.setenv("REDIS_CLUSTER_NODES", ",".join(u.removeprefix("rediss://") for u in cluster.node_urls[1:3]))
    monkeypatch.setenv("REDIS_PASSWORD", password)
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    cache = sr.GenericRedisCache.create_secure()
    assert await cache.connect() is True
    await cache.set("from-env", {"ok": True})
    assert cache.get_security_status()["connection"]["topology"] == "cluster"
    # Startup validation reads the same variables and checks every primary live.
    result = sr.validate_redis_security(test_connectivity=True)
    assert result.is_valid, result.errors
    assert result.connectivity_info["topology"] == "cluster"
    roles = [node["role"] for node in result.connectivity_info["nodes"]]
    assert roles.count("primary") == 3 and roles.count("replica") >= 1, roles
    await cache.delete("from-env")
    await cache.disconnect()


async def test_killed_primary_fails_over_while_the_cache_keeps_answering(
    tmp_path, pki, password, encryption_key
) -> None:
    """Its own cluster: this test kills a primary."""
    with RedisCluster(
        tmp_path / "failover", password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert,
        client_cert=pki.client_cert, client_key=pki.client_key, node_timeout_ms=1000,
    ) as cluster:
        config = make_config(pki, password, encryption_key, socket_timeout=0.5, connection_timeout=1.0)
        manager = sr.CacheManager(
            cache=sr.GenericRedisCache(cluster.seed_url, security_config=config, cluster=True)
        )
        await manager.connect()
        keys = [f"k:{i}" for i in range(200)]
        for key in keys:
            await manager.set(key, {"v": key})
        victim = cluster.primaries()[0]
        replica = cluster.replica_of(victim)
        raw = raw_node(victim, pki, password)
        assert raw.wait(1, 5000) >= 1  # its replica has every write before the primary dies
        raw.close()
        victim.kill()

        # During the outage and the election: the 100 keys L1 still holds are all answered.
        await assert_serves_through_outage(
            manager, {key: {"v": key} for key in keys[-100:][::5]}, seconds=6, min_calls=40
        )

        cluster.wait_until_healthy()
        assert cluster.info(replica, "replication")["role"] == "master"

        assert await wait_until(lambda: back_on_redis(manager, "after-failover"), timeout=30)
        # A new process needs a seed that is alive: the dead primary was the first node.
        fresh = sr.GenericRedisCache(
            cluster.seed_url, security_config=config, cluster_nodes=cluster.node_urls, enable_l1_cache=False
        )
        assert await fresh.connect()
        await fresh.set("written-after", {"ok": 1})
        assert await fresh.get("written-after") == {"ok": 1}
        # Every key, those whose primary died included, is read from Redis: the promoted
        # replica serves what the dead primary held.
        assert await fresh.get_many(keys) == {key: {"v": key} for key in keys}
        addresses = {n["address"] for n in fresh.get_security_status()["connection"]["nodes"]}
        assert f"rediss://127.0.0.1:{replica.port}/0" in addresses
        assert f"rediss://127.0.0.1:{victim.port}/0" not in addresses
        await fresh.disconnect()
        await manager.disconnect()


async def test_tls_1_3_only_cluster_serves_every_primary(cluster, pki, password, encryption_key) -> None:
    """min_tls_version=1.3 against nodes that offer 1.2 and 1.3: every primary, and so every
    key's slot, is reached over TLS 1.3."""
    config = make_config(pki, password, encryption_key, min_tls_version="1.3")
    cache = await cluster_cache(cluster, config, enable_l1_cache=False)
    values = {f"tls13:{i}": i for i in range(200)}  # spread over every primary
    await cache.set_many(values)
    assert await cache.get_many(list(values)) == values
    stats = await cache.get_cache_stats()
    assert stats["performance"]["redis_failures"] == 0, stats["redis"]["last_error"]
    nodes = cache.get_security_status()["connection"]["nodes"]
    assert len(nodes) == 3 and {n["tls_version"] for n in nodes} == {"TLSv1.3"}, nodes
    assert await cache.invalidate_pattern("tls13:*") == 200
    await cache.disconnect()


async def test_nodes_reached_later_get_the_same_tls_settings(tmp_path, pki, password, encryption_key) -> None:
    """A node that starts serving slots after the cache connected (added, then given a slot, as
    resharding does) is reached through MOVED by the cluster client, with our rustls settings like
    the first ones: one offering TLS 1.3 is used; one offering only TLS 1.2 is refused under
    min_tls_version=1.3 (the cache answers misses and reports why), and nothing is written to it.
    Its own cluster: this test changes who serves what."""
    with RedisCluster(
        tmp_path / "growing", password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert,
        client_cert=pki.client_cert, client_key=pki.client_key, replicas=0,
    ) as cluster:
        config = make_config(pki, password, encryption_key, min_tls_version="1.3")
        cache = await cluster_cache(cluster, config, enable_l1_cache=False)
        await cache.set("{before}:k", "v")
        assert await cache.get("{before}:k") == "v"

        # A node that accepts TLS 1.3 joins and takes the slot of a key: used at once.
        modern = cluster.add_node()
        welcome = "{later-modern}:k"
        cluster.move_empty_slot(cluster.slot_of(welcome), modern)
        await cache.set(welcome, {"v": 1})
        assert await cache.get(welcome) == {"v": 1}
        raw = raw_node(modern, pki, password)
        assert raw.get(welcome).startswith(b"gAAAAA")  # written to the new node, encrypted
        raw.close()
        stats = await cache.get_cache_stats()
        assert stats["performance"]["redis_failures"] == 0, stats["redis"]["last_error"]

        # A node that offers only TLS 1.2 takes the slot of another key: never used.
        legacy = cluster.add_node(tls_protocols="TLSv1.2")
        refused = "{later-legacy}:k"
        cluster.move_empty_slot(cluster.slot_of(refused), legacy)
        await cache.set(refused, {"v": 2})
        assert await cache.get(refused) is None
        raw = raw_node(legacy, pki, password)  # redis-py itself accepts TLS 1.2
        assert raw.exists(refused) == 0, "a value went to a node over TLS 1.2"
        raw.close()
        stats = await cache.get_cache_stats()
        assert stats["performance"]["redis_failures"] >= 1
        # The reconnect that follows checks every primary and names the refusal.
        async def refusal_reported() -> bool:
            last_error = (await cache.get_cache_stats())["redis"]["last_error"] or ""
            return "TLS version" in last_error

        assert await wait_until(refusal_reported, timeout=15), (await cache.get_cache_stats())["redis"]
        assert str(legacy.port) in (await cache.get_cache_stats())["redis"]["last_error"]
        await cache.disconnect()
