"""The same secure cache behind Redis Sentinel: a primary, a replica and three sentinels.

The sentinels are asked over TLS with a password of their own; the primary they name is
reached over TLS with the Redis password. A killed primary is followed to the promoted replica.
"""

from __future__ import annotations

import time

import pytest

import secure_redis as sr
from conftest import assert_serves_through_outage, back_on_redis, make_config, remember_secret, wait_until
from secure_redis.testing import RedisSentinelSet, TestPKI, random_password


@pytest.fixture(scope="module")
def sentinel_password() -> str:
    return remember_secret(random_password(40))


def start_set(folder, pki: TestPKI, password: str, sentinel_password: str, **options) -> RedisSentinelSet:
    return RedisSentinelSet(
        folder,
        password=password,
        sentinel_password=sentinel_password,
        cert=pki.server_cert,
        key=pki.server_key,
        ca=pki.ca_cert,
        **options,
    ).start()


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory, pki, password, sentinel_password):
    running = start_set(tmp_path_factory.mktemp("sentinel"), pki, password, sentinel_password)
    yield running
    running.stop()


def sentinel_cache(sentinels: RedisSentinelSet, config: sr.SecurityConfig, **kwargs) -> sr.GenericRedisCache:
    return sr.GenericRedisCache(
        "rediss://127.0.0.1:6380/0",  # scheme and database; the address comes from the sentinels
        security_config=config,
        sentinel_nodes=sentinels.sentinel_urls,
        sentinel_master=RedisSentinelSet.MASTER_NAME,
        **kwargs,
    )


def raw_primary(sentinels: RedisSentinelSet, pki: TestPKI, password: str):
    import redis

    return redis.Redis(
        host="127.0.0.1", port=sentinels.primary_port(), password=password, ssl=True, ssl_ca_certs=str(pki.ca_cert)
    )


async def test_workload_through_the_primary_the_sentinels_name(
    monkeypatch, sentinels, pki, password, encryption_key, sentinel_password
) -> None:
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", sentinel_password)
    cache = sentinel_cache(sentinels, make_config(pki, password, encryption_key))
    assert await cache.connect() is True
    await cache.set_many({f"s:{i}": {"n": i, "secret": "private"} for i in range(50)})
    assert (await cache.get_many([f"s:{i}" for i in range(50)]))["s:9"] == {"n": 9, "secret": "private"}
    assert await cache.invalidate_pattern("s:1*") == 11
    raw = raw_primary(sentinels, pki, password)
    stored = raw.get("s:2")
    assert stored.startswith(b"gAAAAA") and b"private" not in stored
    raw.close()
    status = cache.get_security_status()["connection"]
    assert status["topology"] == "sentinel"
    roles = {node["role"]: node for node in status["nodes"]}
    assert roles["primary"]["address"] == f"rediss://127.0.0.1:{sentinels.primary_port()}/0"
    assert roles["sentinel"]["address"] in sentinels.sentinel_urls
    assert all(node["tls_version"].startswith("TLSv1.") for node in status["nodes"])
    # The live validation surveys the primary, its replica and every sentinel.
    report = await cache.validate_security()
    assert report.is_valid, report.errors
    surveyed = report.connectivity_info["nodes"]
    assert sorted(n["role"] for n in surveyed) == ["primary", "replica", "sentinel", "sentinel", "sentinel"]
    assert sorted(n["address"] for n in surveyed if n["role"] == "sentinel") == sorted(sentinels.sentinel_urls)
    assert all(n["tls_version"].startswith("TLSv1.") and "error" not in n for n in surveyed)
    await cache.clear()
    await cache.disconnect()


async def test_sentinel_refusals_are_configuration_errors(
    monkeypatch, sentinels, pki, password, encryption_key, sentinel_password
) -> None:
    config = make_config(pki, password, encryption_key)
    # Without REDIS_SENTINEL_PASSWORD the Redis password is offered to the sentinels: refused.
    with pytest.raises(sr.ConfigurationError) as info:
        await sentinel_cache(sentinels, config).connect()
    assert info.value.context["error_type"] == "authentication_failed"
    assert "REDIS_SENTINEL_PASSWORD" in info.value.message
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", sentinel_password)
    unknown = sr.GenericRedisCache(
        "rediss://127.0.0.1:6380/0", security_config=config,
        sentinel_nodes=sentinels.sentinel_urls, sentinel_master="no-such-primary",
    )
    with pytest.raises(sr.ConfigurationError) as info:
        await unknown.connect()
    assert "REDIS_SENTINEL_MASTER" in info.value.message
    other_ca = make_config(pki, password, encryption_key, tls_ca_path=pki.other_ca_cert)
    with pytest.raises(sr.ConfigurationError) as info:
        await sentinel_cache(sentinels, other_ca).connect()
    assert "REDIS_TLS_CA_PATH" in info.value.message
    with pytest.raises(sr.ConfigurationError) as info:  # a plaintext sentinel address is refused outright
        sr.GenericRedisCache(
            "rediss://127.0.0.1:6380/0", security_config=config,
            sentinel_nodes=["redis://127.0.0.1:26379"], sentinel_master="x",
        )
    assert "rediss://" in info.value.message
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache("rediss://127.0.0.1:6380/0", security_config=config, sentinel_nodes=sentinels.sentinel_urls)
    assert "REDIS_SENTINEL_MASTER" in info.value.message


async def test_sentinel_without_a_ca_is_refused_unless_public_roots_are_chosen(
    monkeypatch, sentinels, pki, password, encryption_key, sentinel_password
) -> None:
    """Issue 14: the primary's name comes from a sentinel's reply, so with the public roots a
    compromised sentinel could send the client, password included, to any host with a public
    certificate for the name it announces. A CA is required, in every environment."""
    for name in ("ENVIRONMENT", "ENFORCE_AUTH", "REDIS_TLS_TRUST_PUBLIC_ROOTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", sentinel_password)
    no_ca = make_config(pki, password, encryption_key, tls_ca_path=None)
    with pytest.raises(sr.ConfigurationError) as info:
        sentinel_cache(sentinels, no_ca)
    assert info.value.context["error_type"] == "tls_ca_required"
    assert info.value.context["topology"] == "sentinel"
    assert "REDIS_TLS_CA_PATH" in info.value.message and "REDIS_TLS_TRUST_PUBLIC_ROOTS=true" in info.value.message
    # The same from the environment, and the validator agrees.
    for name, value in {
        "REDIS_URL": "rediss://127.0.0.1:6380/0",
        "REDIS_SENTINEL_NODES": ",".join(sentinels.sentinel_urls),
        "REDIS_SENTINEL_MASTER": RedisSentinelSet.MASTER_NAME,
        "REDIS_PASSWORD": password,
        "REDIS_ENCRYPTION_KEY": encryption_key,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REDIS_TLS_CA_PATH", raising=False)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache.create_secure()
    assert info.value.context["error_type"] == "tls_ca_required"
    with pytest.raises(sr.ConfigurationError) as info:
        sr.validate_redis_security()
    assert "required with Sentinel" in info.value.message
    # Chosen explicitly, the public roots are used (and these sentinels' private CA is not among them).
    public = make_config(pki, password, encryption_key, tls_ca_path=None, tls_trust_public_roots=True)
    with pytest.raises(sr.ConfigurationError) as info:
        await sentinel_cache(sentinels, public).connect()
    assert info.value.context["error_type"] == "tls_handshake_failed"
    assert "not trusted by the public web roots" in info.value.message


async def test_sentinel_from_the_environment(monkeypatch, sentinels, pki, password, encryption_key, sentinel_password) -> None:
    for name, value in {
        "REDIS_URL": "rediss://127.0.0.1:6380/0",
        "REDIS_SENTINEL_NODES": ",".join(sentinels.sentinel_urls),
        "REDIS_SENTINEL_MASTER": RedisSentinelSet.MASTER_NAME,
        "REDIS_SENTINEL_PASSWORD": sentinel_password,
        "REDIS_PASSWORD": password,
        "REDIS_ENCRYPTION_KEY": encryption_key,
        "REDIS_TLS_CA_PATH": str(pki.ca_cert),
    }.items():
        monkeypatch.setenv(name, value)
    cache = sr.GenericRedisCache.create_secure()
    assert await cache.connect() is True
    await cache.set("env", 1)
    assert await cache.get("env") == 1
    result = sr.validate_redis_security(test_connectivity=True)
    assert result.is_valid, result.errors
    assert result.connectivity_info["topology"] == "sentinel"
    await cache.delete("env")
    await cache.disconnect()


async def test_failover_is_followed_while_the_cache_keeps_answering(
    monkeypatch, tmp_path, pki, password, encryption_key, sentinel_password
) -> None:
    """Its own set: this test kills the primary."""
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", sentinel_password)
    running = start_set(tmp_path / "failover", pki, password, sentinel_password, down_after_ms=1000)
    try:
        config = make_config(pki, password, encryption_key, socket_timeout=0.5, connection_timeout=1.0)
        manager = sr.CacheManager(cache=sentinel_cache(running, config))
        await manager.connect()
        for i in range(50):
            await manager.set(f"f:{i}", {"i": i})
        old_port = running.primary_port()
        raw = raw_primary(running, pki, password)
        assert raw.wait(1, 5000) >= 1  # the replica has every write before its primary dies
        raw.close()
        running.primary.kill()

        # Every value L1 holds is answered throughout the outage.
        await assert_serves_through_outage(
            manager, {f"f:{i}": {"i": i} for i in range(0, 50, 5)}, seconds=4, min_calls=20
        )

        running.wait_for_failover(old_port)
        assert running.primary_port() == running.replica.port

        assert await wait_until(lambda: back_on_redis(manager, "after"), timeout=30)
        fresh = sentinel_cache(running, config, enable_l1_cache=False)
        assert await fresh.connect()
        assert await fresh.get("f:7") == {"i": 7}  # replicated before the kill, served by the new primary
        await fresh.set("written-after", 3)
        assert await fresh.get("written-after") == 3
        primary = {n["role"]: n for n in fresh.get_security_status()["connection"]["nodes"]}["primary"]
        assert primary["address"] == f"rediss://127.0.0.1:{running.replica.port}/0"
        await fresh.disconnect()
        await manager.disconnect()
    finally:
        running.stop()


async def test_a_frozen_sentinel_costs_nothing(monkeypatch, sentinels, pki, password, encryption_key, sentinel_password) -> None:
    """All sentinels are asked at once: one that accepts TCP and never answers (SIGSTOP) must
    not use up the connect timeout of the others."""
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", sentinel_password)
    config = make_config(pki, password, encryption_key, connection_timeout=2.0)
    sentinels.sentinels[0].pause()
    try:
        cache = sentinel_cache(sentinels, config)
        started = time.monotonic()
        assert await cache.connect() is True
        assert time.monotonic() - started < 1.5
        await cache.set("frozen-sentinel", 1)
        assert await cache.get("frozen-sentinel") == 1
        # The validation reports the frozen sentinel instead of skipping it.
        report = await cache.validate_security()
        frozen = sentinels.sentinel_urls[0]
        assert any(frozen in error for error in report.errors), report.errors
        await cache.delete("frozen-sentinel")
        await cache.disconnect()
    finally:
        sentinels.sentinels[0].resume()
