"""InMemoryCache: the process-local cache, backed by the Rust LRU.

The replaced layer's API, with its defects fixed: O(1) LRU, updating a key on a full cache
evicts nothing else, expired entries go lazily, and it accepts the same JSON values as the
Redis caches (each hit is a fresh copy), so a fallback never changes what callers get.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, TypeVar

from . import _native
from ._args import _check_keywords, _require_int
from .aside import MISS, check_jitter, check_tags, is_type_refusal, jittered, reserved, storable, unwrap
from .base import CacheInterface
from .exceptions import ErrorCode, ValidationError

# What every key of a scope starts with in the shared LRU: no caller's key of a printable name
# does, and the whole cache's key listings leave such keys out.
_SCOPE_MARK = "\x00scope:"
_Memory = TypeVar("_Memory", bound="InMemoryCache")


def _scope_prefix(name: object) -> str:
    checked = _native.MemoryCacheCore.check_scope_name(name)  # as the Redis caches check it
    # A digest, not the name: short, and the same length for every scope.
    return f"{_SCOPE_MARK}{hashlib.sha256(checked.encode()).hexdigest()[:32]}\x00"


class _ScopedCore:
    """The memory core as one scope sees it: every key behind the scope's prefix. Keys that
    are not str go through unchanged, so the core refuses them with its own error."""

    def __init__(self, core: Any, prefix: str) -> None:
        self._core = core
        self._prefix = prefix

    def _name(self, key: Any) -> Any:
        return self._prefix + key if isinstance(key, str) else key

    def get(self, key: str, miss: object) -> Any:
        return self._core.get(self._name(key), miss)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        self._core.set(self._name(key), value, ttl)

    def delete(self, key: str) -> bool:
        return bool(self._core.delete(self._name(key)))

    def exists(self, key: str) -> bool:
        return bool(self._core.exists(self._name(key)))

    def ttl(self, key: str) -> int | None:
        result: int | None = self._core.ttl(self._name(key))
        return result

    def invalidate_pattern(self, pattern: str) -> int:
        if not isinstance(pattern, str):
            return int(self._core.invalidate_pattern(pattern))  # refused there
        # The prefix holds no glob character, so the pattern cannot reach past it.
        return int(self._core.invalidate_pattern(self._prefix + pattern))

    def clear(self) -> None:
        self._core.invalidate_pattern(self._prefix + "*")

    def keys(self) -> list[str]:
        return [k[len(self._prefix):] for k in self._core.keys() if k.startswith(self._prefix)]

    def live_keys(self) -> list[str]:
        return [k[len(self._prefix):] for k in self._core.live_keys() if k.startswith(self._prefix)]

    def len(self) -> int:
        return len(self.keys())

    def build_key(self, text: str, operation: str, options: dict[str, Any] | None = None) -> str:
        key: str = self._core.build_key(text, operation, options)
        return key

    def stats(self) -> Any:
        return self._core.stats()


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
        self,
        default_ttl: int = 3600,
        max_size: int = 1000,
        fail_on_connection_error: bool = False,
        *,
        ttl_jitter: float | None = None,
        **kwargs: Any,
    ) -> None:
        _check_keywords(type(self), kwargs, refused={})
        self.ttl_jitter = check_jitter(ttl_jitter)
        # tag -> keys filed under it (process-local, like the entries; pruned when it outgrows them)
        self._tags: dict[str, set[str]] = {}
        self._tagged = 0
        _require_int("default_ttl", default_ttl)
        _require_int("max_size", max_size)
        self._core: _native.MemoryCacheCore | _ScopedCore = _native.MemoryCacheCore(default_ttl, max_size)
        self.default_ttl = default_ttl
        self.max_size = max_size
        self.fail_on_connection_error = fail_on_connection_error  # kept for compatibility; nothing connects

    def __repr__(self) -> str:
        scope = ", scope=<hidden>" if self.is_scoped else ""
        return f"InMemoryCache(default_ttl={self.default_ttl}, max_size={self.max_size}{scope}, size={self.size()})"

    # -- tenant scopes ---------------------------------------------------------------------

    def scope(self: _Memory, name: str) -> _Memory:
        """A view of this cache for tenant ``name`` (as ``GenericRedisCache.scope``): the same
        LRU and API, keys of its own. Nothing leaves this process, so nothing is encrypted;
        ``clear()``, ``invalidate_pattern`` and ``invalidate_tags`` of a view touch only its
        scope, and ``forget_scope`` removes it. The view's keys count against the shared
        ``max_size`` and against the 1,024-byte key limit with a 42-byte prefix. Scopes do
        not nest. (On the whole cache, ``invalidate_pattern`` and ``clear`` also reach the
        scopes' entries.)"""
        if self.is_scoped:
            raise ValidationError(
                "Scopes do not nest: call scope() on the cache this view came from.",
                {"error_type": ErrorCode.INVALID_SCOPE.value},
            )
        view = object.__new__(type(self))
        vars(view).update(vars(self))
        # Tags are filed under the scope's prefix in the shared index (views are made per
        # request, the index must outlive them); `_core` keeps the whole cache's for that.
        view._core = _ScopedCore(self._core, _scope_prefix(name))
        return view

    @property
    def is_scoped(self) -> bool:
        return isinstance(self._core, _ScopedCore)

    async def forget_scope(self, name: str, *, wait: bool = False) -> int | None:
        """Removes tenant ``name``'s entries and tags from this process's memory; how many
        entries went (``wait`` is accepted for ``GenericRedisCache``'s signature: here it is
        always done at once)."""
        if self.is_scoped:
            raise ValidationError(
                "forget_scope() belongs to the cache a scope came from, not to a scoped view.",
                {"error_type": ErrorCode.INVALID_SCOPE.value},
            )
        prefix = _scope_prefix(name)
        for tag in [t for t in self._tags if t.startswith(prefix)]:
            self._tagged -= len(self._tags.pop(tag))
        return int(self._core.invalidate_pattern(prefix + "*"))

    def _tag_name(self, tag: str) -> str:
        return self._core._prefix + tag if isinstance(self._core, _ScopedCore) else tag

    def _core_name(self, key: str) -> str:
        return self._core._prefix + key if isinstance(self._core, _ScopedCore) else key

    def _whole_core(self) -> Any:
        return self._core._core if isinstance(self._core, _ScopedCore) else self._core

    async def _get_stored(self, key: str) -> Any:
        return self._core.get(key, MISS)

    async def get(self, key: str, model: Any = None) -> Any | None:
        value = self._core.get(key, MISS)
        if value is not MISS and (model is not None or type(value) is dict):
            value = unwrap(value, model)
        return None if value is MISS else value

    async def set(
        self,
        key: str,
        value: Any,
        ttl: int | None = None,
        *,
        tags: Iterable[str] = (),
        ttl_jitter: float | None = None,
    ) -> None:
        tag_list = check_tags(tags)  # before anything is stored
        jitter = self.ttl_jitter if ttl_jitter is None else check_jitter(ttl_jitter)
        if jitter:
            ttl = jittered(ttl, self.default_ttl, jitter)
        if reserved(value):
            value = storable(value)
        try:
            self._core.set(key, value, ttl)
        except ValidationError as error:
            if not is_type_refusal(error):
                raise
            self._core.set(key, storable(value), ttl)
        if tag_list:
            self._file_under(key, tag_list)

    async def _store_envelope(self, key: str, envelope: dict[str, Any], ttl: int, tags: list[str]) -> None:
        self._core.set(key, envelope, ttl)
        if tags:
            self._file_under(key, tags)

    def _file_under(self, key: str, tags: list[str]) -> None:
        key = self._core_name(key)
        for tag in tags:
            keys = self._tags.setdefault(self._tag_name(tag), set())
            if key not in keys:
                keys.add(key)
                self._tagged += 1
        if self._tagged > 4 * self.max_size + 64:
            self._prune_tags()

    def _prune_tags(self) -> None:
        """Drops keys the LRU evicted or that expired, so the index stays proportional to the entries."""
        core = self._whole_core()
        for tag in list(self._tags):
            live = {key for key in self._tags[tag] if core.exists(key)}
            if live:
                self._tags[tag] = live
            else:
                del self._tags[tag]
        self._tagged = sum(len(keys) for keys in self._tags.values())

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Deletes every entry stored with any of ``tags``; how many there were."""
        removed = 0
        core = self._whole_core()
        for tag in check_tags(tags):
            keys = self._tags.pop(self._tag_name(tag), set())
            self._tagged -= len(keys)
            for key in keys:
                removed += bool(core.delete(key))
        return removed

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
        """Empties the cache and resets its counters (synchronous, as in the replaced layer).
        On a scope's view: that scope's entries and tags only."""
        self._core.clear()
        if isinstance(self._core, _ScopedCore):
            for tag in [t for t in self._tags if t.startswith(self._core._prefix)]:
                self._tagged -= len(self._tags.pop(tag))
        else:
            self._tags.clear()
            self._tagged = 0

    def size(self) -> int:
        """Entries held, expired ones not yet removed included (O(1): no sweep; an expired
        entry leaves the count when it is next read, or is evicted)."""
        return self._core.len()

    def get_keys(self) -> list[str]:
        return [key for key in self._core.keys() if not key.startswith(_SCOPE_MARK)]

    def get_active_keys(self) -> list[str]:
        return [key for key in self._core.live_keys() if not key.startswith(_SCOPE_MARK)]

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
