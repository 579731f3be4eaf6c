"""InMemoryCache: the process-local cache, backed by the Rust LRU.

The replaced layer's API, with its defects fixed: O(1) LRU, updating a key on a full cache
evicts nothing else, expired entries go lazily, and it accepts the same JSON values as the
Redis caches (each hit is a fresh copy), so a fallback never changes what callers get.
"""

from __future__ import annotations

from typing import Any

from . import _native
from ._args import _check_keywords, _require_int
from .base import CacheInterface

_MISS = object()


class InMemoryCache(CacheInterface):
    """A process-local LRU cache with TTLs, on the Rust core; no Redis, no encryption.

    ``default_ttl`` (seconds, default 3600) applies when ``set`` is given no ``ttl``.

    Holds at most ``max_size`` entries (O(1) LRU: updating a key never evicts another one);
    expired entries are dropped lazily. It accepts exactly the JSON values the Redis caches
    accept and every hit returns a fresh copy, so serving from it (as CacheManager's fallback)
    never changes what callers get. Values stay unencrypted in this process's memory.
    ``clear()`` is synchronous, as in the layer it replaces. ``fail_on_connection_error`` is
    accepted and unused, as before (nothing connects); any other keyword raises
    ``ConfigurationError`` naming the closest valid parameter.
    """

    def __init__(
        self, default_ttl: int = 3600, max_size: int = 1000, fail_on_connection_error: bool = False, **kwargs: Any
    ) -> None:
        _check_keywords(type(self), kwargs, refused={})
        _require_int("default_ttl", default_ttl)
        _require_int("max_size", max_size)
        self._core = _native.MemoryCacheCore(default_ttl, max_size)
        self.default_ttl = default_ttl
        self.max_size = max_size
        self.fail_on_connection_error = fail_on_connection_error  # kept for compatibility; nothing connects

    def __repr__(self) -> str:
        return f"InMemoryCache(default_ttl={self.default_ttl}, max_size={self.max_size}, size={self.size()})"

    async def get(self, key: str) -> Any | None:
        value = self._core.get(key, _MISS)
        return None if value is _MISS else value

    async def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        self._core.set(key, value, ttl)

    async def delete(self, key: str) -> bool:
        return self._core.delete(key)

    async def exists(self, key: str) -> bool:
        return self._core.exists(key)

    async def get_ttl(self, key: str) -> int | None:
        return self._core.ttl(key)

    async def invalidate_pattern(self, pattern: str, operation_context: str = "") -> int:
        """Removes keys matching a Redis-style glob (`*`, `?`, `[abc]`, `[^a]`)."""
        return self._core.invalidate_pattern(pattern)

    def clear(self) -> None:
        """Empties the cache and resets its counters (synchronous, as in the replaced layer)."""
        self._core.clear()

    def size(self) -> int:
        """Entries held, expired ones not yet removed included (O(1): no sweep; an expired
        entry leaves the count when it is next read, or is evicted)."""
        return self._core.len()

    def get_keys(self) -> list[str]:
        return self._core.keys()

    def get_active_keys(self) -> list[str]:
        return self._core.live_keys()

    def build_key(self, text: str, operation: str, options: dict[str, Any] | None = None) -> str:
        """An AI key name built as ``AIResponseCache.build_key`` builds its own (keyed digests,
        never the text), under a random key of this process's: these names never leave it."""
        return self._core.build_key(text, operation, options or None)

    def get_stats(self) -> dict[str, Any]:
        raw = self._core.stats()
        gets = raw["hits"] + raw["misses"]
        used = raw["memory_usage_bytes"]
        return {
            "total_entries": raw["total_entries"],
            "expired_entries": raw["expired_entries"],
            "active_entries": raw["active_entries"],
            "max_size": raw["max_size"],
            "utilization": f"{raw['total_entries']}/{raw['max_size']}",
            "utilization_percent": round(raw["total_entries"] / raw["max_size"] * 100, 2),
            "default_ttl": raw["default_ttl"],
            "hits": raw["hits"],
            "misses": raw["misses"],
            "hit_rate": round(raw["hits"] / gets * 100, 2) if gets else 0.0,  # percent, as before
            "evictions": raw["evictions"],
            "memory_usage_bytes": used,
            "memory_cache_entries": raw["total_entries"],
            "memory_cache_size": raw["max_size"],
            "memory_usage": f"{used}B" if used < 1024 else f"{used / 1024:.1f}KB" if used < 1 << 20 else f"{used / (1 << 20):.1f}MB",
        }

    def get_cache_statistics(self) -> dict[str, Any]:
        stats = self.get_stats()
        return {key: stats[key] for key in ("active_entries", "total_entries", "memory_usage", "max_size", "utilization_percent")}

    async def get_cache_stats(self) -> dict[str, Any]:
        stats = self.get_stats()
        gets = stats["hits"] + stats["misses"]
        return {
            "redis": {"status": "disconnected", "message": "InMemoryCache does not use Redis backend"},
            "memory": {
                "status": "active",
                "entries": stats["active_entries"],
                "max_size": stats["max_size"],
                "utilization_percent": stats["utilization_percent"],
                "memory_usage": stats["memory_usage"],
            },
            "performance": {
                "status": "active",
                "hit_rate": round(stats["hits"] / gets, 4) if gets else 0.0,  # fraction, as before
                "total_operations": gets,
                "hits": stats["hits"],
                "misses": stats["misses"],
                "cache_type": "memory_only",
            },
        }

    def get_invalidation_frequency_stats(self) -> dict[str, Any]:
        return {"frequency": {}, "patterns": {}, "total_operations": 0, "performance": {}}

    def get_invalidation_recommendations(self) -> list[dict[str, Any]]:
        return []
