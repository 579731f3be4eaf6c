"""performance_monitor= is recorded into, through a real TLS Redis (issue 15 item 4).

The monitor here has the shape of the replaced layer's ``CachePerformanceMonitor`` (the
``record_*`` methods with its keyword names, and its hit/miss counters that only ``get``
moves); it is written for these tests, not taken from the starter.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import secure_redis as sr

USER_TEXT = "Patient Jane Roe reports chest pain"  # must never reach the monitor from an AI key


class ShapedMonitor:
    """The replaced layer's recording methods; every call is kept as (method, kwargs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.total_operations = self.cache_hits = self.cache_misses = 0

    def record_cache_operation_time(self, operation: str, duration: float, cache_hit: bool,
                                    text_length: int = 0, additional_data: dict | None = None) -> None:
        self.calls.append(("operation", {"operation": operation, "duration": duration, "cache_hit": cache_hit,
                                         "text_length": text_length, "additional_data": additional_data}))
        self.total_operations += 1
        if operation == "get":
            if cache_hit:
                self.cache_hits += 1
            else:
                self.cache_misses += 1

    def record_key_generation_time(self, duration: float, text_length: int, operation_type: str = "",
                                   additional_data: dict | None = None) -> None:
        self.calls.append(("key_generation", {"duration": duration, "text_length": text_length,
                                              "operation_type": operation_type, "additional_data": additional_data}))

    def record_compression_ratio(self, original_size: int, compressed_size: int, compression_time: float,
                                 operation_type: str = "") -> None:
        self.calls.append(("compression", {"original_size": original_size}))

    def record_memory_usage(self, memory_cache: dict, redis_stats: dict | None = None,
                            additional_data: dict | None = None) -> None:
        self.calls.append(("memory", {"memory_cache": memory_cache, "redis_stats": redis_stats,
                                      "additional_data": additional_data}))

    def record_invalidation_event(self, pattern: str, keys_invalidated: int, duration: float,
                                  invalidation_type: str = "manual", operation_context: str = "",
                                  additional_data: dict | None = None) -> None:
        self.calls.append(("invalidation", {"pattern": pattern, "keys_invalidated": keys_invalidated,
                                            "duration": duration, "invalidation_type": invalidation_type,
                                            "operation_context": operation_context,
                                            "additional_data": additional_data}))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [arguments for name, arguments in self.calls if name == kind]

    def operations(self) -> list[tuple[str, bool]]:
        return [(a["operation"], a["cache_hit"]) for a in self.of("operation")]


class RaisingMonitor:
    """Every method raises, with text that must not reach the log."""

    def _fail(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("monitor exploded while holding " + USER_TEXT)

    record_cache_operation_time = record_key_generation_time = _fail
    record_invalidation_event = record_memory_usage = record_compression_ratio = _fail


class AsyncMonitor(ShapedMonitor):
    async def record_cache_operation_time(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise AssertionError("never awaited by the cache")


def _durations_are_seconds(monitor: ShapedMonitor) -> None:
    for _kind, arguments in monitor.calls:
        if "duration" in arguments:
            assert isinstance(arguments["duration"], float) and 0 <= arguments["duration"] < 5


@pytest.mark.parametrize("l1", [True, False], ids=["l1", "no_l1"])
async def test_get_set_delete_exists_are_recorded_with_hit_flags(redis_server, config, l1: bool) -> None:
    monitor = ShapedMonitor()
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=l1,
                                 performance_monitor=monitor)
    assert cache.performance_monitor is monitor
    assert await cache.connect()
    try:
        await cache.set("pm:user:1", {"name": "Ada"})
        assert await cache.get("pm:user:1") == {"name": "Ada"}
        assert await cache.get("pm:absent") is None
        assert await cache.exists("pm:user:1") is True
        assert await cache.exists("pm:absent") is False
        assert await cache.delete("pm:user:1") is True
        assert await cache.delete("pm:user:1") is False
        assert monitor.operations() == [
            ("set", True), ("get", True), ("get", False), ("exists", True), ("exists", False),
            ("delete", True), ("delete", False),
        ]
        assert (monitor.total_operations, monitor.cache_hits, monitor.cache_misses) == (7, 1, 1)
        assert [a["additional_data"] for a in monitor.of("operation") if a["operation"] == "delete"] == [
            {"key_existed": True}, {"key_existed": False}]
        assert all(a["text_length"] == 0 for a in monitor.of("operation"))
        assert "pm:user" not in repr(monitor.of("operation"))  # names and flags, never key text
        _durations_are_seconds(monitor)
    finally:
        await cache.clear()
        await cache.disconnect()


async def test_a_failing_operation_is_recorded_then_raised(redis_server, config) -> None:
    monitor = ShapedMonitor()
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, performance_monitor=monitor)
    with pytest.raises(sr.ValidationError):
        await cache.set("", "value")  # an empty key is refused
    assert monitor.operations() == [("set", False)]
    assert monitor.of("operation")[0]["additional_data"] == {"error_type": "ValidationError"}


async def test_invalidation_clear_and_memory_usage_are_recorded(redis_server, config) -> None:
    monitor = ShapedMonitor()
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, namespace="pm-inv:",
                                 performance_monitor=monitor)
    assert await cache.connect()
    try:
        await cache.set_many({"a:1": 1, "a:2": 2, "b:1": 3})
        assert await cache.invalidate_pattern("a:*") == 2
        stats = await cache.get_cache_stats()
        assert await cache.clear() == 1
        invalidation, clear = monitor.of("invalidation")
        assert invalidation["pattern"] == "a:*" and invalidation["keys_invalidated"] == 2
        assert invalidation["invalidation_type"] == "manual"
        assert invalidation["additional_data"]["status"] == "success"
        assert clear["keys_invalidated"] == 1 and clear["invalidation_type"] == "clear"
        (memory,) = monitor.of("memory")
        assert memory["memory_cache"] == {"b:1": 3}  # the L1 entries, which the monitor measures
        assert memory["redis_stats"]["keys"] == stats["redis"]["keys"] == 1
        assert memory["additional_data"]["source"] == "get_cache_stats"
        assert monitor.of("compression") == []  # no per-write sizes reach Python: nothing faked
        _durations_are_seconds(monitor)
    finally:
        await cache.disconnect()


async def test_a_raising_or_incomplete_monitor_never_breaks_an_operation(redis_server, config, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="secure_redis.monitor")
    for monitor in (RaisingMonitor(), object()):
        caplog.clear()
        cache = sr.AIResponseCache(redis_url=redis_server.url, security_config=config, performance_monitor=monitor)
        assert await cache.connect()
        try:
            for _ in range(3):
                key = cache.build_key(USER_TEXT, "summarize", {"question": USER_TEXT})
                await cache.set(key, {"summary": "ok"})
                assert await cache.get(key) == {"summary": "ok"}
                assert await cache.exists(key) is True
                assert await cache.delete(key) is True
                assert await cache.invalidate_by_operation("summarize") == 0
                assert (await cache.get_cache_stats())["redis"]["status"] == "connected"
        finally:
            await cache.clear()
            await cache.disconnect()
        warnings = [r.getMessage() for r in caplog.records if r.name == "secure_redis.monitor"]
        methods = ["record_key_generation_time", "record_cache_operation_time", "record_invalidation_event",
                   "record_memory_usage"]
        assert sorted(warnings) == sorted(
            f"Performance monitor {type(monitor).__name__}.{method} "
            f"{'raised RuntimeError' if isinstance(monitor, RaisingMonitor) else 'has no such method'}; "
            "secure_redis stops calling it for this cache"
            for method in methods
        ), warnings
        assert USER_TEXT not in caplog.text and "exploded" not in caplog.text


async def test_an_async_record_method_is_closed_not_left_unawaited(redis_server, config, caplog) -> None:
    monitor = AsyncMonitor()
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, performance_monitor=monitor)
    await cache.set("pm:async", 1)
    assert await cache.get("pm:async") == 1
    assert sum("is async" in r.getMessage() for r in caplog.records) == 1
    await cache.disconnect()


async def test_ai_cache_records_key_generation_operations_and_invalidations(redis_server, config) -> None:
    monitor = ShapedMonitor()
    cache = sr.AIResponseCache(redis_url=redis_server.url, security_config=config, text_hash_threshold=100,
                               performance_monitor=monitor)
    assert await cache.connect()
    try:
        short = cache.build_key(USER_TEXT, "summarize", {})
        long = cache.build_key(USER_TEXT * 10, "summarize", {"max_length": 50})
        qa = cache.build_key(USER_TEXT, "qa", {"question": "Is it urgent?"})
        assert [(a["operation_type"], a["text_length"], a["additional_data"]) for a in monitor.of("key_generation")] == [
            ("summarize", len(USER_TEXT), {"text_tier": "small", "has_options": False, "has_question": False}),
            ("summarize", len(USER_TEXT) * 10, {"text_tier": "large", "has_options": True, "has_question": False}),
            ("qa", len(USER_TEXT), {"text_tier": "small", "has_options": True, "has_question": True}),
        ]
        for key in (short, long, qa):
            await cache.set(key, {"answer": 1})
        assert await cache.get(short) == {"answer": 1}
        assert await cache.get(cache.build_key("unseen", "sentiment", {})) is None
        # One record per call, although AIResponseCache.get and set run GenericRedisCache's.
        assert monitor.operations() == [("set", True)] * 3 + [("get", True), ("get", False)]

        assert await cache.invalidate_by_operation("summarize", operation_context="model_update") == 2
        assert await cache.invalidate_pattern("op:qa") == 1
        await cache.set(short, {"answer": 2})
        assert await cache.clear(operation_context="reset") == 1
        by_operation, by_pattern, clear = monitor.of("invalidation")
        assert (by_operation["pattern"], by_operation["keys_invalidated"], by_operation["invalidation_type"],
                by_operation["operation_context"]) == ("op:summarize", 2, "operation_specific", "model_update")
        assert by_operation["additional_data"]["operation"] == "summarize"
        assert (by_pattern["pattern"], by_pattern["keys_invalidated"], by_pattern["invalidation_type"]) == (
            "op:qa", 1, "manual")
        assert (clear["pattern"], clear["keys_invalidated"], clear["invalidation_type"],
                clear["operation_context"]) == ("ai_cache:*", 1, "clear", "reset")

        await cache.set(short, {"answer": 3})
        await cache.get_cache_stats()
        (memory,) = monitor.of("memory")
        assert memory["memory_cache"] == {short: {"answer": 3}} and memory["redis_stats"]["keys"] == 1
        assert USER_TEXT not in repr(monitor.calls)  # AI key names carry digests, not the text
        _durations_are_seconds(monitor)
    finally:
        await cache.clear()
        await cache.disconnect()


async def test_assigning_or_removing_the_monitor_takes_effect_at_once(redis_server, config) -> None:
    cache = sr.GenericRedisCache(redis_server.url, security_config=config)
    assert cache.performance_monitor is None
    assert "get" not in vars(cache)  # no monitor: the plain class methods answer
    monitor = ShapedMonitor()
    cache.performance_monitor = monitor
    await cache.set("pm:later", 1)
    cache.performance_monitor = None
    assert "get" not in vars(cache)
    assert await cache.get("pm:later") == 1
    assert monitor.operations() == [("set", True)]
    await cache.delete("pm:later")
    await cache.disconnect()


async def test_a_scope_view_records_its_own_calls_into_the_cache_monitor(cache) -> None:
    """The monitor's timed methods are bound to each instance: a view gets its own, so its
    calls reach the view's scope (not the whole cache) and are recorded."""
    monitor = ShapedMonitor()
    cache.performance_monitor = monitor
    view = cache.scope("tenant-monitored")
    await view.set("k", 1)
    assert await view.get("k") == 1
    assert await cache.get("k") is None
    assert monitor.operations() == [("set", True), ("get", True), ("get", False)]
    cache.performance_monitor = None
    await cache.forget_scope("tenant-monitored", wait=True)
