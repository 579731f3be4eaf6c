"""Recording into the application's performance monitor (``performance_monitor=``).

Owns every call the caches make on a monitor shaped like the replaced layer's
``CachePerformanceMonitor``: ``record_cache_operation_time`` (get, set, delete, exists),
``record_key_generation_time``, ``record_invalidation_event`` and ``record_memory_usage``,
with the keyword names and meanings that layer used (durations in seconds).

Invariants a reader must not break:
- A monitor never breaks a cache operation. A missing method, one that raises and one that
  is async are each logged once per method at warning, by type name only (an exception's text
  may quote a key or a value), and skipped from then on.
- The monitor receives what the replaced layer gave it: operation names, durations, hit flags,
  text lengths and counts. Never a key name or a value, with two exceptions the replaced API
  defines: ``record_memory_usage`` measures the L1 entries themselves, and
  ``record_invalidation_event`` gets the pattern the caller passed.
- Without a monitor nothing here runs. ``attach`` puts timed ``get``/``set``/``delete``/
  ``exists`` on the cache instance only when a monitor is given; otherwise the instance
  answers with its class's own methods, so the unmonitored path is unchanged.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Callable

logger = logging.getLogger("secure_redis.monitor")

TIMED_OPERATIONS = ("get", "set", "delete", "exists")


class MonitorRecorder:
    """Calls one monitor's ``record_*`` methods; never raises."""

    __slots__ = ("monitor", "_skipped")

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self._skipped: set[str] = set()

    def _call(self, method: str, arguments: dict[str, Any]) -> None:
        if method in self._skipped:
            return
        record = getattr(self.monitor, method, None)
        if not callable(record):
            self._skip(method, "has no such method")
            return
        try:
            result = record(**arguments)
        except Exception as error:  # a broken monitor must not break caching
            self._skip(method, f"raised {type(error).__name__}")
            return
        if result is not None and inspect.isawaitable(result):  # nothing would ever await it
            close = getattr(result, "close", None)
            if callable(close):
                close()
            self._skip(method, "is async; only plain methods are called")

    def _skip(self, method: str, reason: str) -> None:
        self._skipped.add(method)
        logger.warning(
            "Performance monitor %s.%s %s; secure_redis stops calling it for this cache",
            type(self.monitor).__name__, method, reason,
        )

    def operation(self, operation: str, duration: float, cache_hit: bool,
                  additional_data: dict[str, Any] | None = None) -> None:
        """``record_cache_operation_time``: ``cache_hit`` is the hit flag for get, whether the
        key existed for delete and exists, and success for set."""
        self._call("record_cache_operation_time", {
            "operation": operation, "duration": duration, "cache_hit": cache_hit,
            "text_length": 0, "additional_data": additional_data,
        })

    def key_generation(self, duration: float, text_length: int, operation: str,
                       additional_data: dict[str, Any]) -> None:
        """``record_key_generation_time`` for one ``build_key``."""
        self._call("record_key_generation_time", {
            "duration": duration, "text_length": text_length, "operation_type": operation,
            "additional_data": additional_data,
        })

    def invalidation(self, pattern: str, keys_invalidated: int, duration: float, invalidation_type: str,
                     operation_context: str, additional_data: dict[str, Any]) -> None:
        """``record_invalidation_event`` for one invalidation or clear."""
        self._call("record_invalidation_event", {
            "pattern": pattern, "keys_invalidated": keys_invalidated, "duration": duration,
            "invalidation_type": invalidation_type, "operation_context": operation_context,
            "additional_data": additional_data,
        })

    def memory_usage(self, memory_cache: dict[str, Any], redis_stats: dict[str, Any] | None,
                     additional_data: dict[str, Any]) -> None:
        """``record_memory_usage`` with the live L1 entries (a copy) and Redis's figures."""
        self._call("record_memory_usage", {
            "memory_cache": memory_cache, "redis_stats": redis_stats, "additional_data": additional_data,
        })


def attach(cache: Any, monitor: Any) -> MonitorRecorder | None:
    """Gives ``cache`` timed ``get``/``set``/``delete``/``exists`` recording into ``monitor``,
    or, for ``monitor=None``, takes them away again. Returns the recorder (or None)."""
    for name in TIMED_OPERATIONS:
        cache.__dict__.pop(name, None)
    if monitor is None:
        return None
    recorder = MonitorRecorder(monitor)
    for name in TIMED_OPERATIONS:
        setattr(cache, name, _timed(cache, name, recorder))
    return recorder


def _timed(cache: object, name: str, recorder: MonitorRecorder) -> Callable[..., Any]:
    """The class's own method, timed around the whole call (an ``AIResponseCache.get`` that
    finds an entry under its pre-rotation name is one recorded hit, not a miss and a hit)."""
    plain = getattr(type(cache), name)

    async def timed(key: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await plain(cache, key, *args, **kwargs)
        except Exception as error:
            recorder.operation(name, time.perf_counter() - started, False, {"error_type": type(error).__name__})
            raise
        duration = time.perf_counter() - started
        if name == "get":
            recorder.operation("get", duration, result is not None)
        elif name == "set":
            recorder.operation("set", duration, True)
        elif name == "delete":
            recorder.operation("delete", duration, bool(result), {"key_existed": bool(result)})
        else:
            recorder.operation("exists", duration, bool(result))
        return result

    timed.__name__ = timed.__qualname__ = name
    timed.__doc__ = plain.__doc__
    return timed
