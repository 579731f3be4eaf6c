"""Live report documents match the TypedDicts of ``secure_redis.reports`` key for key.

The Rust core builds each document from a typed struct; these declarations are what type
checkers and users read, so a key added, renamed or dropped on one side must fail here.
"""

from __future__ import annotations

import typing

import secure_redis as sr
from secure_redis import reports


def _assert_matches(document: dict, declared: type, where: str) -> None:
    hints = typing.get_type_hints(declared)
    required = declared.__required_keys__
    assert required <= document.keys(), f"{where}: missing {sorted(required - document.keys())}"
    assert document.keys() <= hints.keys(), f"{where}: undeclared {sorted(document.keys() - hints.keys())}"
    for key, value in document.items():
        hint = hints[key]
        if typing.is_typeddict(hint):
            _assert_matches(value, hint, f"{where}.{key}")
        elif typing.get_origin(hint) is list and typing.is_typeddict(typing.get_args(hint)[0]):
            for n, item in enumerate(value):
                _assert_matches(item, typing.get_args(hint)[0], f"{where}.{key}[{n}]")


async def test_cache_stats_and_security_status_match_their_declarations(cache) -> None:
    await cache.set("report:k", {"v": 1})
    await cache.get("report:k")
    stats = await cache.get_cache_stats()
    _assert_matches(stats, reports.CacheStats, "stats")
    assert stats["redis"]["nodes"] and "tls_version" in stats["redis"]["nodes"][0]
    assert "memory_used" not in stats["redis"]  # server figures are for namespace reports
    status = cache.get_security_status()
    _assert_matches(status, reports.SecurityStatus, "status")
    assert "cipher_suite" in status["connection"]  # a live TLS session is reported inline
    assert list(status) == ["security_level", "configuration", "connection"]


async def test_ai_namespace_stats_carry_the_server_figures(redis_server, config) -> None:
    ai = sr.AIResponseCache(redis_url=redis_server.url, security_config=config)
    await ai.connect()
    try:
        await ai.set(ai.build_key("some text", "summarize"), {"summary": "s"})
        stats = await ai._core.stats(ai=True)
        _assert_matches(stats, reports.CacheStats, "ai stats")
        assert {"memory_used", "memory_used_bytes", "connected_clients"} <= stats["redis"].keys()
        assert stats["redis"]["keys"] >= 1
    finally:
        await ai.disconnect()


def test_memory_cache_stats_match_their_declaration() -> None:
    memory = sr.InMemoryCache(default_ttl=60, max_size=10)
    _assert_matches(memory._core.stats(), reports.MemoryCacheStats, "memory stats")


async def test_ai_namespace_stats_keep_the_server_keys_while_redis_is_unreachable(config) -> None:
    """During an outage the INFO figures are unknown (None), not missing: code reading
    ``stats["redis"]["memory_used"]`` must not raise KeyError when it matters most."""
    from secure_redis.testing import free_port

    ai = sr.AIResponseCache(redis_url=f"rediss://127.0.0.1:{free_port()}", security_config=config)
    stats = await ai._core.stats(ai=True)
    _assert_matches(stats, reports.CacheStats, "ai stats, unreachable")
    assert stats["redis"]["status"] == "unavailable"
    assert {key: stats["redis"][key] for key in ("memory_used", "memory_used_bytes", "connected_clients")} == {
        "memory_used": None, "memory_used_bytes": None, "connected_clients": None,
    }
