"""GenericRedisCache against a real TLS redis-server: round trips, TTLs, batches, L1, stats."""

from __future__ import annotations

import asyncio
import json

import pytest
from cryptography.fernet import Fernet

import secure_redis as sr

JSON_VALUES = {
    "dict": {"a": 1, "b": [True, None, 2.5], "c": {"d": "é ✓ 漢字 \u0000 \"quoted\""}},
    "list": [1, "two", 3.0, [4], {"five": 5}],
    "str": "hello",
    "empty_str": "",
    "int": 42,
    "negative": -7,
    "big_int": 2**63 - 1,
    "float": 0.1,
    "true": True,
    "false": False,
    "empty_dict": {},
    "empty_list": [],
}


async def test_round_trip_of_every_json_type(cache: sr.GenericRedisCache) -> None:
    for name, value in JSON_VALUES.items():
        await cache.set(f"type:{name}", value)
    fresh = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=False)
    for name, value in JSON_VALUES.items():
        got = await fresh.get(f"type:{name}")  # straight from Redis, no L1
        assert got == value and type(got) is type(value), name


async def test_none_is_stored_and_reads_back_as_none(cache: sr.GenericRedisCache) -> None:
    await cache.set("nothing", None)
    assert await cache.exists("nothing")
    assert await cache.get("nothing") is None


async def test_one_megabyte_value_is_cached_compressed(cache, raw_redis, encryption_key) -> None:
    value = {"text": "lorem ipsum dolor sit amet " * 40000, "n": list(range(1000))}
    assert len(json.dumps(value)) > 1_000_000
    await cache.set("big", value)
    no_l1 = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=False)
    assert await no_l1.get("big") == value
    stored = raw_redis.get("big")
    plaintext = Fernet(encryption_key).decrypt(stored)
    assert plaintext[:3] == b"SR\x02" and plaintext[3:4] == b"l"  # LZ4 at the default level, before encryption
    assert len(stored) < len(json.dumps(value)) / 10


async def test_ttl_is_honoured_in_redis_and_l1(cache: sr.GenericRedisCache) -> None:
    await cache.set("short", {"v": 1}, ttl=1)
    assert await cache.get_ttl("short") == 1
    assert await cache.get("short") == {"v": 1}
    await asyncio.sleep(1.2)
    assert await cache.get("short") is None  # L1 must not outlive the Redis entry
    assert await cache.exists("short") is False
    await cache.set("default", 1)
    assert 3590 <= await cache.get_ttl("default") <= 3600
    assert await cache.get_ttl("missing") is None


async def test_l1_copy_never_outlives_redis(cache, raw_redis) -> None:
    await cache.set("k", "v", ttl=100)
    raw_redis.pexpire("k", 300)  # someone shortened it on the server
    other = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config)
    assert await other.get("k") == "v"  # fills other's L1 with the remaining ~300 ms
    await asyncio.sleep(0.45)
    assert await other.get("k") is None


@pytest.mark.parametrize("ttl", [-1, 366 * 24 * 3600])
async def test_invalid_ttls_raise(cache, ttl) -> None:
    with pytest.raises(sr.ValidationError) as info:
        await cache.set("k", 1, ttl=ttl)
    assert info.value.context["error_type"] == "invalid_ttl"


async def test_delete_and_exists(cache: sr.GenericRedisCache) -> None:
    await cache.set("gone", [1])
    assert await cache.exists("gone") is True
    assert await cache.delete("gone") is True
    assert await cache.delete("gone") is False
    assert await cache.exists("gone") is False
    assert await cache.get("gone") is None


async def test_l1_hits_are_independent_objects(cache: sr.GenericRedisCache) -> None:
    await cache.set("obj", {"list": [1, 2]})
    # L1 answers only under its lease, which a busy machine can let lapse for a moment: read
    # until two answers came from L1 (bounded), every one a fresh object.
    for _ in range(200):
        first = await cache.get("obj")
        first["list"].append(3)
        first["new"] = True
        assert await cache.get("obj") == {"list": [1, 2]}
        if (await cache.get_cache_stats())["performance"]["l1_hits"] >= 2:
            break
        await asyncio.sleep(0.01)
    assert (await cache.get_cache_stats())["performance"]["l1_hits"] >= 2


async def test_get_many_and_set_many(cache: sr.GenericRedisCache, raw_redis) -> None:
    await cache.set_many({f"m:{i}": {"i": i} for i in range(100)}, ttl=60)
    assert 55 <= await cache.get_ttl("m:5") <= 60
    no_l1 = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=False)
    got = await no_l1.get_many([f"m:{i}" for i in range(100)] + ["m:missing"])
    assert got == {f"m:{i}": {"i": i} for i in range(100)}
    assert raw_redis.get("m:7").startswith(b"gAAAAA")
    with pytest.raises(sr.ValidationError):
        await cache.set_many({"ok": 1, "bad": {1, 2}})
    assert await no_l1.get("ok") is None  # nothing written when one value is invalid


async def test_invalidate_pattern_uses_globs_in_redis_and_l1(cache: sr.GenericRedisCache) -> None:
    for i in range(1200):  # more than one SCAN batch
        await cache.set(f"user:{i}", i)
    await cache.set("order:1", 1)
    assert await cache.invalidate_pattern("user:*") == 1200
    assert await cache.get("user:5") is None  # evicted from L1 as well
    assert await cache.get("order:1") == 1
    assert await cache.invalidate_pattern("user:*") == 0
    for malformed in ("", "user:[ab", "[a-]", "trailing\\"):
        with pytest.raises(sr.ValidationError):
            await cache.invalidate_pattern(malformed)


async def test_clear_and_ping(cache: sr.GenericRedisCache) -> None:
    assert await cache.ping() is True
    await cache.set_many({"a": 1, "b": 2})
    assert await cache.clear() == 2
    assert await cache.get("a") is None
    stats = await cache.get_cache_stats()
    assert stats["redis"]["keys"] == 0


async def test_callbacks_fire_and_broken_ones_are_contained(cache: sr.GenericRedisCache, caplog) -> None:
    events: list[tuple] = []
    cache.register_callback("get_success", lambda k, v: events.append(("hit", k, v)))
    cache.register_callback("get_miss", lambda k: events.append(("miss", k)))
    cache.register_callback("set_success", lambda k, v: events.append(("set", k, v)))
    cache.register_callback("delete_success", lambda k: events.append(("del", k)))
    cache.register_callback("get_miss", lambda k: 1 / 0)
    await cache.set("cb", 1)
    await cache.get("cb")
    await cache.get("nope")
    await cache.delete("cb")
    assert events == [("set", "cb", 1), ("hit", "cb", 1), ("miss", "nope"), ("del", "cb")]
    assert "ZeroDivisionError" in caplog.text
    with pytest.raises(sr.ValidationError):
        cache.register_callback("on_everything", print)


@pytest.mark.parametrize(
    "value,type_name",
    # tuple, bytes, datetime, UUID, Decimal, Enum, dataclasses and pydantic models are stored as
    # typed values (issue 17: tests/test_cache_aside.py, tests/test_typed_values.py)
    [({1}, "set"), (float("nan"), "float"), ({"k": object()}, "object"), ([frozenset()], "frozenset")],
    ids=["set", "nan", "nested-object", "nested-frozenset"],
)
async def test_non_json_values_raise_validation_error(cache, value, type_name) -> None:
    with pytest.raises(sr.ValidationError) as info:
        await cache.set("bad", value)
    assert info.value.context["type"] == type_name
    assert type_name in info.value.message


@pytest.mark.parametrize("key", ["", "k" * 1025, "\udcff-lone-surrogate", 42, b"bytes"])
async def test_invalid_keys_raise(cache, key) -> None:
    with pytest.raises(sr.ValidationError):
        await cache.set(key, 1)
    with pytest.raises(sr.ValidationError):
        await cache.get(key)


async def test_oversized_value_is_refused(cache) -> None:
    with pytest.raises(sr.ValidationError) as info:
        await cache.set("huge", "x" * (33 * 1024 * 1024))
    assert info.value.context["error_type"] == "value_too_large"


async def test_constructor_range_checks(redis_server, config) -> None:
    for kwargs in ({"default_ttl": 0}, {"l1_cache_size": 10001}, {"compression_level": 10},
                   {"compression_threshold": 50}, {"default_ttl": "60"}):
        with pytest.raises(sr.ConfigurationError) as info:
            sr.GenericRedisCache(redis_server.url, security_config=config, **kwargs)
        assert list(kwargs)[0] in info.value.context


async def test_stats_report_encryption_and_hits(cache) -> None:
    await cache.set("s", {"payload": "x" * 2000})
    await cache.get("s")
    await cache.get("absent")
    stats = await cache.get_cache_stats()
    assert stats["redis"]["status"] == "connected" and stats["redis"]["tls"] is True
    assert stats["performance"]["hits"] == 1 and stats["performance"]["misses"] == 1
    assert stats["performance"]["hit_ratio"] == 0.5
    assert stats["encryption"]["enabled"] is True
    assert stats["encryption"]["encrypt_operations"] == 1
    assert stats["encryption"]["compressed_writes"] == 1
    assert stats["memory"]["memory_cache_entries"] == 1


async def test_cache_is_a_cache_interface(cache) -> None:
    assert isinstance(cache, sr.CacheInterface)
    assert cache.redis_url.startswith("rediss://127.0.0.1:")


async def test_create_secure_reads_the_environment(monkeypatch, redis_server, pki, password, encryption_key) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_PASSWORD", password)
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    cache = sr.GenericRedisCache.create_secure()
    assert await cache.connect() is True
    await cache.set("env", "ok")
    assert await cache.get("env") == "ok"
    await cache.delete("env")


async def test_reads_racing_deletes_never_resurrect_values(cache: sr.GenericRedisCache) -> None:
    writer = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=False)
    for round_ in range(50):
        await writer.set("race", {"round": round_})  # in Redis, not in cache's L1
        await asyncio.gather(cache.get("race"), cache.delete("race"))
        assert await cache.get("race") is None, f"round {round_}: a deleted value came back from L1"


async def test_l1_never_keeps_a_value_longer_than_default_ttl(redis_server, config) -> None:
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, default_ttl=1)
    await cache.set("long", "lived", ttl=3600)
    await asyncio.sleep(1.1)
    stats_before = (await cache.get_cache_stats())["performance"]["redis_hits"]
    assert await cache.get("long") == "lived"
    assert (await cache.get_cache_stats())["performance"]["redis_hits"] == stats_before + 1  # not from L1
    await cache.delete("long")


async def test_empty_batches_are_no_ops(cache) -> None:
    await cache.set_many({})
    assert await cache.get_many([]) == {}
    assert (await cache.get_cache_stats())["performance"]["redis_failures"] == 0


def _command_calls(raw_redis) -> dict[str, int]:
    """Server-side command counts since the last CONFIG RESETSTAT."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in raw_redis.info("commandstats").items()}


async def test_batches_cross_the_network_in_one_pipeline_and_scans_never_use_keys(cache, raw_redis) -> None:
    await cache.set_many({f"rt:{i}": i for i in range(50)})
    no_l1 = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=False)
    assert await no_l1.connect()
    raw_redis.config_resetstat()
    assert len(await no_l1.get_many([f"rt:{i}" for i in range(50)])) == 50
    calls = _command_calls(raw_redis)
    # One pipeline for fifty keys: a GETRANGE of at most 1 MiB for each, never GET or MGET
    # (which read a value whole, however large it is); small values need no STRLEN.
    assert calls.get("getrange") == 50 and "strlen" not in calls, calls
    assert "get" not in calls and "mget" not in calls, calls
    raw_redis.config_resetstat()
    assert await cache.invalidate_pattern("rt:*") == 50
    await cache.clear()
    calls = _command_calls(raw_redis)
    assert calls.get("scan", 0) >= 2 and "keys" not in calls and "flushdb" not in calls, calls
    await no_l1.disconnect()
