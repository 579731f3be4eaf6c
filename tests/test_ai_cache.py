"""AIResponseCache against a real TLS Redis: key names, per-operation TTLs, invalidation, stats."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import secure_redis as sr
from conftest import make_config, remember_secret

KEY_FORMAT = re.compile(r"^ai_cache:op:[a-z_]+\|txt:[0-9a-f]{32}(\|opts:[0-9a-f]{32})?(\|q:[0-9a-f]{32})?$")


def test_key_format_and_option_order(config) -> None:
    cache = sr.AIResponseCache(redis_url="rediss://localhost:6380/0", security_config=config)
    plain = cache.build_key("Hello world", "summarize", {})
    assert KEY_FORMAT.match(plain) and "|opts:" not in plain
    a = cache.build_key("Hello world", "summarize", {"max_length": 100, "style": {"b": 1, "a": 2}})
    b = cache.build_key("Hello world", "summarize", {"style": {"a": 2, "b": 1}, "max_length": 100})
    assert a == b and KEY_FORMAT.match(a) and "|opts:" in a
    qa = cache.build_key("a" * 1500, "qa", {"question": "why?"})
    assert KEY_FORMAT.match(qa) and "|q:" in qa
    assert cache.build_key("Hello world", "summarize", {"max_length": 50}) != a
    with pytest.raises(sr.ValidationError):
        cache.build_key("text", "not an operation!", {})
    with pytest.raises(TypeError):
        cache.build_key(None, "summarize", {})  # type: ignore[arg-type]


def test_keys_are_stable_across_processes_and_keyed(config, pki, password, encryption_key) -> None:
    cache = sr.AIResponseCache(redis_url="rediss://localhost:6380/0", security_config=config)
    mine = cache.build_key("Patient reports chest pain", "summarize", {"max_length": 80})
    script = (
        "import secure_redis as sr, sys\n"
        "c = sr.SecurityConfig(redis_auth=sys.argv[1], encryption_key=sys.argv[2])\n"
        "ai = sr.AIResponseCache(redis_url='rediss://localhost:6380/0', security_config=c)\n"
        "print(ai.build_key('Patient reports chest pain', 'summarize', {'max_length': 80}))\n"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", script, password, encryption_key], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other_process == mine
    stranger = make_config(pki, password, remember_secret(sr.generate_encryption_key()))
    assert sr.AIResponseCache(redis_url="rediss://localhost:6380/0", security_config=stranger).build_key(
        "Patient reports chest pain", "summarize", {"max_length": 80}
    ) != mine


async def test_no_user_text_in_any_key_name(ai, raw_redis) -> None:
    texts = ["Confidential merger with ACME Corp", "Patient John Doe has diabetes", "短いテキスト", "x"]
    for n, text in enumerate(texts):
        for operation, options in [("summarize", {"max_length": 50}), ("qa", {"question": f"Who is {text}?"})]:
            key = ai.build_key(text, operation, options)
            await ai.set(key, {"answer": f"result {n}"})
    names = [k.decode() for k in raw_redis.scan_iter(count=1000)]
    assert len(names) == 8
    for name in names:
        assert KEY_FORMAT.match(name), name
        for text in texts[:3]:
            for word in text.split():
                if len(word) >= 4:
                    assert word.lower() not in name.lower(), (word, name)


async def test_operation_ttls_as_seen_by_redis(redis_server, config, raw_redis) -> None:
    cache = sr.AIResponseCache(
        redis_url=redis_server.url, security_config=config, default_ttl=900, operation_ttls={"qa": 600}
    )
    expected = {"summarize": 7200, "sentiment": 3600, "key_points": 5400, "questions": 3600, "qa": 600,
                "translate": 900}
    for operation, ttl in expected.items():
        key = cache.build_key("some text", operation, {})
        await cache.set(key, {"op": operation})
        assert ttl - 5 <= raw_redis.ttl(key) <= ttl, operation
    explicit = cache.build_key("other text", "summarize", {})
    await cache.set(explicit, 1, ttl=42)
    assert 37 <= raw_redis.ttl(explicit) <= 42
    await cache.set("not-an-ai-key", 1)
    assert 895 <= raw_redis.ttl("not-an-ai-key") <= 900
    raw_redis.flushdb()


async def test_invalidation_counts_and_unrelated_keys_survive(ai, raw_redis, redis_server, config) -> None:
    raw_redis.set("unrelated:config", "keep me")
    generic = sr.GenericRedisCache(redis_server.url, security_config=config)
    await generic.set("user:1", {"keep": True})
    for n in range(3):
        await ai.set(ai.build_key(f"doc {n}", "summarize", {}), n)
    for n in range(2):
        await ai.set(ai.build_key(f"doc {n}", "qa", {"question": "q"}), n)
    await ai.set(ai.build_key("doc", "sentiment", {}), "positive")
    first = ai.build_key("doc 0", "summarize", {})
    assert await ai.get(first) == 0  # now also in L1

    assert await ai.invalidate_by_operation("summarize") == 3
    assert await ai.get(first) is None  # gone from L1 too
    assert await ai.invalidate_pattern("op:qa") == 2
    assert await ai.invalidate_by_operation("summarize") == 0
    assert await ai.clear() == 1
    assert raw_redis.get("unrelated:config") == b"keep me"
    assert await generic.get("user:1") == {"keep": True}
    with pytest.raises(sr.ValidationError):
        await ai.invalidate_by_operation("")
    snap = (await ai.get_cache_stats())["ai_metrics"]["invalidations"]
    assert snap["by_operation"] == {"summarize": 2} and snap["keys_invalidated"] == 6


async def test_statistics_by_operation_and_tier(ai) -> None:
    short, long_text = "short text", "y" * 6000
    for text in (short, long_text):
        key = ai.build_key(text, "summarize", {})
        assert await ai.get(key) is None
        await ai.set(key, {"summary": "s"})
        assert await ai.get(key) == {"summary": "s"}
    await ai.get(ai.build_key(short, "qa", {"question": "?"}))
    perf = ai.get_operation_performance()
    summarize = perf["operations"]["summarize"]
    assert summarize["total_operations"] == 6 and summarize["configured_ttl"] == 7200
    assert set(summarize["percentiles"]) == {"p50", "p95", "p99"}
    assert perf["summary"]["total_operation_types"] == 2
    tiers = ai.get_text_tier_statistics()
    assert tiers["tier_distribution"] == {"small": 2, "medium": 0, "large": 1, "xlarge": 0}
    assert tiers["tier_performance_analysis"]["tier_hit_rates"] == {"small": 33.33, "large": 50.0}
    assert tiers["tier_configuration"] == {"small": 500, "medium": 5000, "large": 50000}
    assert ai.get_cache_hit_ratio() == 40.0  # 2 hits of 5 lookups
    summary = ai.get_ai_performance_summary()
    assert summary["hit_rate_by_operation"] == {"summarize": 50.0, "qa": 0.0}
    assert summary["key_generation_stats"]["total_keys_generated"] == 3
    stats = await ai.get_cache_stats()
    assert stats["encryption"]["encrypt_operations"] == 2
    assert stats["encryption"]["stored_bytes"] > stats["encryption"]["plaintext_bytes"]
    assert stats["encryption"]["avg_encrypt_ms"] > 0
    assert ai.get_performance_summary()["cache_hits"] == 2


def test_parameter_errors_are_listed_together(config) -> None:
    with pytest.raises(sr.ValidationError) as info:  # the alias warns once per process
        sr.AIResponseCache(
            redis_url="rediss://localhost:6380/0",
            security_config=config,
            default_ttl=0,
            compression_level=12,
            text_size_tiers={"small": 10, "medium": 5, "large": 100},
            operation_ttls={"qa": -1},
            memory_cache_size=50,
            l1_cache_size=200,
        )
    errors = info.value.context["validation_errors"]
    assert len(errors) == 5, errors
    for name in ("default_ttl", "compression_level", "text_size_tiers", "operation_ttls", "memory_cache_size"):
        assert any(name in e for e in errors), name


def test_security_config_is_honoured(redis_server, pki, encryption_key) -> None:
    import asyncio

    wrong = make_config(pki, remember_secret("Wrong-password-for-the-ai-cache-123"), encryption_key)
    cache = sr.AIResponseCache(redis_url=redis_server.url, security_config=wrong)
    with pytest.raises(sr.ConfigurationError):
        asyncio.run(cache.connect())
    assert isinstance(cache, sr.CacheInterface) and isinstance(cache, sr.GenericRedisCache)
    legacy = sr.AIResponseCache(redis_url=redis_server.url, security_config=wrong, memory_cache_size=20)
    assert legacy.memory_cache_size == 20


# -- fixed key names, namespace statistics, rotation, compatibility ---------------------------

FIXED_KEY = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="  # a published test key, never a real one


def test_build_key_matches_the_fixed_vector(pki, password) -> None:
    # Computed independently with hmac/hashlib: a change here empties every deployed AI cache.
    config = make_config(pki, password, FIXED_KEY)
    cache = sr.AIResponseCache(redis_url="rediss://localhost:6380/0", security_config=config)
    assert cache.build_key("The quick brown fox", "qa", {"question": "Who jumps?", "max_length": 100}) == (
        "ai_cache:op:qa|txt:66b5ef11c23444107b202ac866656974|opts:f9b1d801b17f1195f060deefb8fc137a"
        "|q:35e0eaa965a7e1aad645edb436cf89f0"
    )
    assert cache.build_key("The quick brown fox", "summarize", {}) == (
        "ai_cache:op:summarize|txt:66b5ef11c23444107b202ac866656974"
    )


async def test_cache_stats_count_only_the_namespace_and_read_info(ai, raw_redis) -> None:
    for n in range(5):
        raw_redis.set(f"unrelated:{n}", "x")
    for n in range(3):
        await ai.set(ai.build_key(f"stats doc {n}", "summarize", {}), n)
    redis = (await ai.get_cache_stats())["redis"]
    assert raw_redis.dbsize() == 8
    assert redis["status"] == "connected" and redis["keys"] == 3
    info = raw_redis.info("memory")
    assert isinstance(redis["memory_used"], str) and redis["memory_used"][0].isdigit()
    assert isinstance(redis["memory_used_bytes"], int) and redis["memory_used_bytes"] > 0
    assert abs(redis["memory_used_bytes"] - info["used_memory"]) < 10 * 1024 * 1024
    assert isinstance(redis["connected_clients"], int) and redis["connected_clients"] >= 2  # us and raw_redis


def acl_server(make_server, app_password: str, admin_password: str, rules: str):
    server = make_server(
        "ai-acl",
        password=admin_password,
        acl_lines=[f"user default on >{admin_password} ~* &* +@all", f"user cache-app on >{app_password} {rules}"],
    )
    server.password = admin_password
    return server


def admin_client(server, pki, admin_password: str):
    import ssl

    import redis

    return redis.Redis(host=server.host, port=server.port, password=admin_password, ssl=True,
                       ssl_ca_certs=str(pki.ca_cert), ssl_cert_reqs=ssl.CERT_REQUIRED)


async def test_stats_without_info_permission(make_server, pki, encryption_key) -> None:
    app_password = remember_secret("ai-stats-app-password-0123456789")
    admin_password = remember_secret("ai-stats-admin-password-0123456789")
    server = acl_server(make_server, app_password, admin_password, "~* -@all +@read +@write +@keyspace +ping")
    config = make_config(pki, app_password, encryption_key, acl_username="cache-app")
    cache = sr.AIResponseCache(redis_url=server.url, security_config=config)
    assert await cache.connect()
    await cache.set(cache.build_key("acl text", "sentiment", {}), "neutral")
    redis = (await cache.get_cache_stats())["redis"]
    assert redis["status"] == "connected" and redis["keys"] == 1
    assert redis["memory_used"] is None and redis["memory_used_bytes"] is None and redis["connected_clients"] is None
    await cache.disconnect()


async def test_invalidation_never_uses_keys(make_server, pki, encryption_key) -> None:
    app_password = remember_secret("ai-nokeys-app-password-0123456789")
    admin_password = remember_secret("ai-nokeys-admin-password-012345678")
    server = acl_server(make_server, app_password, admin_password, "~* +@all -keys")
    admin = admin_client(server, pki, admin_password)
    admin.set("unrelated", "survives")
    config = make_config(pki, app_password, encryption_key, acl_username="cache-app")
    cache = sr.AIResponseCache(redis_url=server.url, security_config=config)
    assert await cache.connect()
    for n in range(3):
        await cache.set(cache.build_key(f"doc {n}", "summarize", {}), n)
        await cache.set(cache.build_key(f"doc {n}", "qa", {"question": "q"}), n)
    await cache.set(cache.build_key("doc", "sentiment", {}), "positive")
    admin.config_resetstat()
    assert await cache.invalidate_by_operation("summarize") == 3
    assert await cache.invalidate_pattern("op:qa") == 3
    assert (await cache.get_cache_stats())["redis"]["keys"] == 1
    assert await cache.clear() == 1
    assert admin.get("unrelated") == b"survives"
    commands = admin.info("commandstats")
    assert "cmdstat_scan" in commands and "cmdstat_keys" not in commands
    assert "errorstat_NOPERM" not in admin.info("errorstats")  # KEYS was not even attempted
    admin.close()
    await cache.disconnect()


async def test_key_rotation_keeps_ai_entries_readable(redis_server, pki, password, raw_redis) -> None:
    key_a = remember_secret(sr.generate_encryption_key())
    key_b = remember_secret(sr.generate_encryption_key())
    raw_redis.flushdb()

    def cache_with(keys: str) -> sr.AIResponseCache:
        return sr.AIResponseCache(redis_url=redis_server.url, security_config=make_config(pki, password, keys))

    text, options = "Quarterly report for rotation", {"max_length": 40}
    before = cache_with(key_a)
    old_name = before.build_key(text, "summarize", options)
    await before.set(old_name, {"summary": "written under A"})

    only_b = cache_with(key_b)  # without A in the list, nothing can find or open the entry
    assert await only_b.get(only_b.build_key(text, "summarize", options)) is None

    rotated = cache_with(f"{key_b},{key_a}")
    new_name = rotated.build_key(text, "summarize", options)
    assert new_name != old_name
    assert await rotated.get(new_name) == {"summary": "written under A"}
    assert rotated.get_performance_summary()["cache_hits"] == 1
    # Moved under the new name, sealed with B, keeping its TTL; the old name is gone.
    assert raw_redis.get(old_name) is None and raw_redis.get(new_name).startswith(b"gAAAAA")
    assert 7190 <= raw_redis.ttl(new_name) <= 7200
    assert await cache_with(key_b).get(new_name) == {"summary": "written under A"}

    # Deleting under the new name does not let the old one answer again.
    await before.set(old_name, {"summary": "stale copy under A"})
    assert await rotated.delete(new_name) is True
    assert await rotated.get(new_name) is None
    assert raw_redis.get(old_name) is None
    raw_redis.flushdb()


async def test_set_many_applies_operation_ttls_and_statistics(ai, raw_redis) -> None:
    summary, answer = ai.build_key("batch", "summarize", {}), ai.build_key("batch", "qa", {"question": "?"})
    await ai.set_many({summary: 1, answer: 2, "plain:batch": 3})
    assert 7195 <= raw_redis.ttl(summary) <= 7200
    assert 1795 <= raw_redis.ttl(answer) <= 1800
    assert 3595 <= raw_redis.ttl("plain:batch") <= 3600
    metrics = ai.get_performance_summary()["ai_operation_metrics"]
    assert metrics["summarize"]["sets"] == 1 and metrics["qa"]["sets"] == 1
    await ai.set_many({summary: 5}, ttl=60)
    assert 55 <= raw_redis.ttl(summary) <= 60
    raw_redis.flushdb()
    with pytest.raises(sr.ValidationError):  # every entry is checked before anything is written
        await ai.set_many({summary: 1, answer: {1, 2}})
    with pytest.raises(sr.ValidationError):
        await ai.set_many({summary: 1, "": 2})
    assert raw_redis.dbsize() == 0


def test_operation_ttls_must_be_a_dict(config) -> None:
    with pytest.raises(sr.ValidationError) as info:
        sr.AIResponseCache(redis_url="rediss://localhost:6380/0", security_config=config, operation_ttls=[("qa", 1)])
    assert any("operation_ttls must be a dict" in e for e in info.value.context["validation_errors"])


async def test_memory_cache_property(ai, redis_server, config, caplog) -> None:
    key = ai.build_key("memory text", "sentiment", {})
    await ai.set(key, {"label": "positive"})
    snapshot = ai.memory_cache
    assert snapshot == {key: {"label": "positive"}}
    snapshot[key]["label"] = "changed"  # a copy: the cache is unaffected
    assert ai.memory_cache[key] == {"label": "positive"}
    ai.memory_cache = {}
    assert ai.memory_cache and any("memory_cache cannot be replaced" in r.getMessage() for r in caplog.records)
    del ai.memory_cache
    assert ai.memory_cache == {}
    assert await ai.get(key) == {"label": "positive"}  # still in Redis
    without_l1 = sr.AIResponseCache(redis_url=redis_server.url, security_config=config, enable_l1_cache=False)
    await without_l1.set(key, 1)
    assert without_l1.memory_cache == {}


@pytest.mark.parametrize(
    ("pattern", "removed"),
    [
        ("*summarize*", {"summarize-a", "summarize-b", "summarize-opts"}),  # the starter's endpoint
        ("summarize", {"summarize-a", "summarize-b", "summarize-opts"}),  # a plain word: substring
        ("op:summarize|*", {"summarize-a", "summarize-b", "summarize-opts"}),
        ("op:s*", {"summarize-a", "summarize-b", "summarize-opts", "sentiment"}),
        ("op:qa|*|q:*", {"qa"}),  # entries with a question
        ("*|opts:*", {"summarize-opts", "qa"}),  # entries built with options
        ("op:[qs]e*", {"sentiment"}),
        ("op:?a|*", {"qa"}),
        ("nothing-matches", set()),
        ("*", {"summarize-a", "summarize-b", "summarize-opts", "sentiment", "qa"}),
    ],
)
async def test_invalidate_pattern_is_the_replaced_layers_glob(ai, raw_redis, pattern, removed) -> None:
    raw_redis.set("summarize:not-ours", "keep me")
    entries = {
        "summarize-a": ai.build_key("first document", "summarize", {}),
        "summarize-b": ai.build_key("second document", "summarize", {}),
        "summarize-opts": ai.build_key("third document", "summarize", {"max_length": 50}),
        "sentiment": ai.build_key("first document", "sentiment", {}),
        "qa": ai.build_key("first document", "qa", {"question": "why?"}),
    }
    for name, key in entries.items():
        await ai.set(key, name)
    assert await ai.invalidate_pattern(pattern) == len(removed)
    for name, key in entries.items():
        assert (await ai.get(key) is None) == (name in removed), name
    assert raw_redis.get("summarize:not-ours") == b"keep me"


async def test_prompt_words_are_not_in_key_names_so_they_match_nothing(ai) -> None:
    key = ai.build_key("the quarterly summarize report", "sentiment", {})
    await ai.set(key, "neutral")
    assert await ai.invalidate_pattern("*quarterly*") == 0
    assert await ai.get(key) == "neutral"
