"""AIResponseCache: GenericRedisCache plus what an LLM backend needs.

Key names that never contain user text (keyed HMAC digests), a TTL per operation applied by
the cache itself, invalidation confined to the ``ai_cache:`` namespace (SCAN, never KEYS),
and statistics by operation and text-size tier. Security is inherited, never re-implemented:
``security_config`` is honoured exactly as in GenericRedisCache.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, AsyncIterator, Callable, Iterable, Mapping

from . import _native, streams
from ._args import _check_keywords, _is_int, _warn_deprecated_once
from ._native import SecurityConfig
from .exceptions import ConfigurationError, ErrorCode, ValidationError
from .ai_savings import TokenCounter, TokenSavings
from .aside import MISS, check_jitter, check_tags, jittered, json_ready
from .generic import GenericRedisCache

logger = logging.getLogger("secure_redis.ai")

# From the Rust core (ai/mod.rs, cache/options.rs), the one place they are defined.
DEFAULT_TEXT_SIZE_TIERS: dict[str, int] = dict(_native.DEFAULT_TEXT_SIZE_TIERS)
DEFAULT_OPERATION_TTLS: dict[str, int] = dict(_native.DEFAULT_OPERATION_TTLS)
_RANGES: dict[str, tuple[int, int]] = _native.AI_RANGES
_DEFAULTS = _native.CACHE_DEFAULTS
_GLOB_SPECIALS = "*?[]\\"


def _names_sha256(algorithm: Any) -> bool:
    """``hash_algorithm`` values that ask for what build_key does: None, ``hashlib.sha256``
    (or another SHA-256 constructor) or the name ``"sha256"``."""
    if algorithm is None or algorithm is hashlib.sha256:
        return True
    if isinstance(algorithm, str):
        return algorithm.lower().replace("-", "") == "sha256"
    return callable(algorithm) and getattr(algorithm, "__name__", None) in ("sha256", "openssl_sha256")


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIALS else c for c in text)


class AIResponseCache(GenericRedisCache):
    """A GenericRedisCache for LLM responses: same TLS, AUTH and encryption, plus AI policy.

    ``redis_url``, ``security_config`` and ``default_ttl`` mean what they mean for
    ``GenericRedisCache``; ``operation_ttls`` maps an operation name to its TTL in seconds.

    ``build_key(text, operation, options)`` names entries ``ai_cache:op:...|txt:<digest>``
    with HMAC-SHA256 digests under a key derived from the primary encryption key, so no
    user text reaches Redis. ``set`` without ``ttl`` applies the operation's TTL
    (``operation_ttls``, else ``default_ttl``). ``invalidate_pattern``,
    ``invalidate_by_operation`` and ``clear`` touch only ``ai_cache:`` keys (SCAN, never
    KEYS), and in Redis delete only entries this cache provably wrote. ``namespace``
    (default ``""``, which keeps today's names) prefixes every name, ``ai_cache:`` ones
    included. Hits, misses and latencies are counted by operation and text-size tier.
    Parameter errors raise one ``ValidationError`` that lists all of them. After a key
    rotation (``REDIS_ENCRYPTION_KEY=new,old``) an entry written under the old key is still
    found and moved to its new name. A ``performance_monitor`` also gets ``build_key`` timings
    (text length, operation, ``text_tier``/``has_options``/``has_question``) and every
    invalidation (``manual``, ``operation_specific`` or ``clear``) with the keys it removed.

    The replaced constructor's arguments keep their meaning: ``text_hash_threshold`` (the
    monitor's small/large split), ``text_size_tiers``, ``operation_ttls``, and
    ``memory_cache_size``, a deprecated alias of ``l1_cache_size`` (announced once per
    process). ``hash_algorithm`` may be None, ``hashlib.sha256`` or ``"sha256"``; anything else
    raises ``ConfigurationError``, since key names are always HMAC-SHA256.

    Tokens and cost saved: ``set(..., tokens=N)`` or ``token_counter=callable(response) ->
    int | None`` stores the count inside the entry; each hit adds it to ``tokens_saved`` and,
    priced by ``cost_per_1k_tokens`` (one number, or ``{operation: price}``), ``cost_saved``,
    by operation, in ``get_ai_performance_summary()`` (``ai_savings.py``, docs/observability.md).
    """

    _PROFILE = _native.CacheProfile.AI

    def __init__(
        self,
        redis_url: str | None = None,
        default_ttl: int = _DEFAULTS["default_ttl"],
        text_hash_threshold: int = 1000,
        hash_algorithm: Any = None,
        compression_threshold: int = _DEFAULTS["compression_threshold"],
        compression_level: int = _DEFAULTS["compression_level"],
        text_size_tiers: dict[str, int] | None = None,
        memory_cache_size: int | None = None,
        l1_cache_size: int = _DEFAULTS["l1_cache_size"],
        enable_l1_cache: bool = _DEFAULTS["enable_l1_cache"],
        performance_monitor: Any = None,
        operation_ttls: dict[str, int] | None = None,
        security_config: SecurityConfig | None = None,
        token_counter: TokenCounter | None = None,
        cost_per_1k_tokens: Mapping[str, float] | float | None = None,
        **kwargs: Any,
    ) -> None:
        _check_keywords(type(self), kwargs)
        savings = TokenSavings(token_counter, cost_per_1k_tokens)  # raises ValidationError first
        if not _names_sha256(hash_algorithm):
            raise ConfigurationError(
                f"AIResponseCache does not take hash_algorithm={getattr(hash_algorithm, '__name__', hash_algorithm)!r}: "
                "key names are always HMAC-SHA256 digests under a key derived from the encryption key (a plain "
                "hash of the text would let anyone who can read Redis confirm a guessed prompt); pass None or "
                "hashlib.sha256",
                {"error_type": ErrorCode.UNSUPPORTED_PARAMETER.value, "parameter": "hash_algorithm"},
            )
        errors: list[str] = []
        notes: list[str] = []

        def check_range(name: str, value: Any) -> None:
            low, high = _RANGES[name]
            if not _is_int(value):
                errors.append(f"{name} must be an integer, got {type(value).__name__}")
            elif not low <= value <= high:
                errors.append(f"{name} must be between {low} and {high}, got {value}")

        for name, value in (
            ("default_ttl", default_ttl),
            ("text_hash_threshold", text_hash_threshold),
            ("compression_threshold", compression_threshold),
            ("compression_level", compression_level),
            ("l1_cache_size", l1_cache_size),
        ):
            check_range(name, value)
        if memory_cache_size is not None:
            _warn_deprecated_once("memory_cache_size", "l1_cache_size", logger)
            check_range("memory_cache_size", memory_cache_size)
            if _is_int(memory_cache_size) and l1_cache_size not in (_DEFAULTS["l1_cache_size"], memory_cache_size):
                errors.append(
                    f"memory_cache_size ({memory_cache_size}) conflicts with l1_cache_size ({l1_cache_size}); "
                    "give only l1_cache_size"
                )
            elif _is_int(memory_cache_size):
                l1_cache_size = memory_cache_size
        tiers = dict(DEFAULT_TEXT_SIZE_TIERS)
        if text_size_tiers is not None:
            if not isinstance(text_size_tiers, dict):
                errors.append("text_size_tiers must be a dict with small, medium and large")
            else:
                tiers.update(text_size_tiers)
                values = [tiers[name] for name in ("small", "medium", "large")]  # keys of the defaults
                if not all(_is_int(v) and v > 0 for v in values):
                    errors.append("text_size_tiers values must be positive integers")
                elif not values[0] < values[1] < values[2]:
                    errors.append("text_size_tiers must satisfy small < medium < large")
        ttls = dict(DEFAULT_OPERATION_TTLS)
        if operation_ttls is not None and not isinstance(operation_ttls, dict):
            errors.append(f"operation_ttls must be a dict of operation -> seconds, got {type(operation_ttls).__name__}")
        for operation, ttl in (operation_ttls if isinstance(operation_ttls, dict) else {}).items():
            if not _is_int(ttl) or not _RANGES["default_ttl"][0] <= ttl <= _RANGES["default_ttl"][1]:
                errors.append(f"operation_ttls[{operation!r}] must be a positive integer of seconds, got {ttl!r}")
            else:
                if operation not in DEFAULT_OPERATION_TTLS:
                    notes.append(f"operation_ttls has an operation not known by default: {operation!r}")
                ttls[operation] = ttl
        if errors:
            raise ValidationError(
                "AIResponseCache parameter validation failed: " + "; ".join(errors),
                {
                    "validation_errors": errors,
                    "validation_warnings": notes,
                    "ai_params": {
                        "default_ttl": default_ttl,
                        "text_hash_threshold": text_hash_threshold,
                        "compression_threshold": compression_threshold,
                        "compression_level": compression_level,
                        "l1_cache_size": l1_cache_size,
                        "memory_cache_size": memory_cache_size,
                        "text_size_tiers": text_size_tiers,
                        "operation_ttls": operation_ttls,
                    },
                },
            )
        for note in notes:
            logger.warning("%s", note)
        super().__init__(
            redis_url=redis_url,
            default_ttl=default_ttl,
            enable_l1_cache=enable_l1_cache,
            l1_cache_size=l1_cache_size,
            compression_threshold=compression_threshold,
            compression_level=compression_level,
            performance_monitor=performance_monitor,
            security_config=security_config,
            **kwargs,
        )
        self.text_hash_threshold = text_hash_threshold
        self.hash_algorithm = hashlib.sha256  # what the key names use (HMAC-SHA256), whatever was passed
        self.text_size_tiers = tiers
        self.operation_ttls = ttls
        self._ai = _native.AiPolicyCore(
            self.security_config, tiers["small"], tiers["medium"], tiers["large"], default_ttl, list(ttls.items())
        )
        self._savings = savings

    # -- keys and TTLs ---------------------------------------------------------------------

    def build_key(self, text: str, operation: str, options: dict[str, Any] | None = None) -> str:
        """``ai_cache:op:{operation}|txt:{digest}[|opts:{digest}][|q:{digest}]``; no user text in it."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be a dict, not {type(options).__name__}")
        if self._monitor is None:
            return self._ai.build_key(text, operation, options or None, self._scope_name)
        started = time.perf_counter()
        key = self._ai.build_key(text, operation, options or None, self._scope_name)
        # The replaced key generator's fields: its "large" meant "longer than
        # text_hash_threshold" (the text was hashed), and the question is options["question"].
        self._monitor.key_generation(time.perf_counter() - started, len(text), operation, {
            "text_tier": "large" if len(text) > self.text_hash_threshold else "small",
            "has_options": bool(options),
            "has_question": bool(options.get("question")) if options else False,
        })
        return key

    def get_ttl_for_operation(self, operation: str) -> int:
        return self.operation_ttls.get(operation, self.default_ttl)

    def _get_text_tier(self, text: str) -> str:
        if not isinstance(text, str):
            raise ValidationError("text must be a str", {"type": type(text).__name__})
        return self._ai.tier_of_text(text)

    # -- cache operations with statistics -------------------------------------------------------

    def _ttl_for(self, key: str) -> int:
        return self._ai.ttl_for_key(key) or self.default_ttl

    async def get(self, key: str, model: Any = None) -> Any | None:
        return self._opened(key, await self._get_stored(key), model)

    def stream(
        self,
        key: str,
        producer: Callable[[], AsyncIterator[Any]],
        ttl: int | None = None,
        *,
        pace: bool | float | None = None,
        lock: bool | float = False,
    ) -> AsyncIterator[Any]:
        """A cached stream (an LLM's streamed answer): ``async for chunk in cache.stream(key,
        lambda: model.stream(prompt))``.

        On a hit, the stored chunks are replayed (``pace=True``: with the gaps they first came
        with, each at most a second; a number: that many seconds between chunks). On a miss,
        ``producer()``'s chunks (str or JSON values) are yielded as they arrive and the whole
        response is stored when the stream completes; nothing is stored when it fails or every
        reader went away (the producer is then cancelled). Concurrent requests for the key in
        this process follow the live stream instead of calling the model again; with
        ``lock=True`` (or seconds), requests in other processes wait for the stored response
        and replay it. Without ``ttl``, the operation's TTL of a ``build_key`` key applies."""
        return streams.stream(self, key, producer, ttl, pace, lock, read=True, store=True)

    async def _get_stored(self, key: str) -> Any:
        started = time.perf_counter()
        value = await super()._get_stored(key)
        if value is MISS and isinstance(key, str):
            previous = await self._get_under_previous_name(key)
            if previous is not None:
                value = previous
        self._ai.record(key, value is not MISS, time.perf_counter() - started)
        self._savings.record_hit(key, value)
        return value

    async def _get_under_previous_name(self, key: str) -> Any | None:
        """After a key rotation ("new,old"), the entry may still sit under the name the old
        key gave it: one round trip for every older name; a hit moves under the new name."""
        names = self._ai.previous_names(key)
        if not names:
            return None
        found = await self._core.get_many(names)  # the codec still checks each entry's name
        for name in names:
            if name in found:
                value = found[name]
                remaining = await self._core.get_ttl(name)
                await self._core.set(key, value, remaining or self._ai.ttl_for_key(key))
                await self._core.delete(name)  # else a later delete of `key` would resurrect it
                return value
        return None

    async def set(
        self,
        key: str,
        value: Any,
        ttl: int | None = None,
        *,
        tags: Iterable[str] = (),
        ttl_jitter: float | None = None,
        tokens: int | None = None,
    ) -> None:
        """Without ``ttl``, keys from ``build_key`` get their operation's TTL. ``tokens`` (or
        the cache's ``token_counter``) is what producing ``value`` cost: stored with the entry,
        every later hit adds it to ``tokens_saved``/``cost_saved`` (``ai_savings.py``)."""
        if ttl is None and isinstance(key, str):
            ttl = self._ai.ttl_for_key(key)
        started = time.perf_counter()
        count = self._savings.count(value, tokens) if tokens is not None or self._savings.token_counter else None
        if count is None:
            await super().set(key, value, ttl, tags=tags, ttl_jitter=ttl_jitter)
        else:
            await self._set_counted(key, value, ttl, tags, ttl_jitter, count)
        self._ai.record(key, None, time.perf_counter() - started)

    async def _set_counted(self, key: str, value: Any, ttl: int | None, tags: Iterable[str],
                           ttl_jitter: float | None, count: int) -> None:
        """``set`` of a value with its token count, in the cache-aside envelope (``ai_savings.py``)."""
        jitter = self.ttl_jitter if ttl_jitter is None else check_jitter(ttl_jitter)
        lifetime = jittered(ttl, self.default_ttl, jitter) if jitter else ttl
        lifetime = self.default_ttl if lifetime is None else lifetime
        ready = json_ready(value)
        await self._store_envelope(key, self._savings.envelope(ready, count, lifetime), lifetime,
                                   check_tags(tags))
        if self._callbacks:
            self._fire("set_success", key, value)

    async def delete(self, key: str) -> bool:
        existed = await super().delete(key)
        if isinstance(key, str):
            for name in self._ai.previous_names(key):  # an old-name copy must not answer later
                existed = await self._core.delete(name) or existed
        return existed

    async def set_many(self, mapping: Mapping[str, Any], ttl: int | None = None) -> None:
        """As ``set`` for each key (operation TTLs, statistics): one pipelined round trip per
        distinct TTL. Every key and value is validated before anything is written."""
        items = dict(mapping)
        groups: dict[int | None, dict[str, Any]] = {}
        for key, value in items.items():
            key_ttl = ttl if ttl is not None or not isinstance(key, str) else self._ai.ttl_for_key(key)
            groups.setdefault(key_ttl, {})[key] = value
        if len(groups) > 1:
            for key, value in items.items():
                self._core.check_entry(key, value)
        started = time.perf_counter()
        for group_ttl, group in groups.items():
            await super().set_many(group, group_ttl)
        elapsed = (time.perf_counter() - started) / max(len(items), 1)
        for key in items:
            self._ai.record(key, None, elapsed)

    # -- invalidation (only the ai_cache: namespace) ---------------------------------------------

    async def invalidate_pattern(self, pattern: str, operation_context: str = "") -> int:
        """Deletes ``ai_cache:`` entries this cache provably wrote whose key names match
        ``ai_cache:*{pattern}*`` as a Redis glob, as the replaced layer did: a plain word
        matches as a substring (``"op:summarize"``), and ``*``, ``?`` and ``[...]`` keep their
        glob meaning (``"*summarize*"``, ``"op:qa|*|q:*"``); "" means all.

        What a pattern can select: the prefix, the operation name (in names verbatim), and the
        structure (``|opts:`` only on entries built with options, ``|q:`` only with a question).
        The text, options and question are HMAC digests, so words of the prompt match nothing.
        Returns how many entries were removed."""
        if not isinstance(pattern, str):
            raise ValidationError("pattern must be a str", {"type": type(pattern).__name__})
        glob = "ai_cache:*" + (pattern + "*" if pattern else "")
        removed = await self._invalidate(glob, None, pattern, "manual", operation_context)
        logger.info("Invalidated %d AI cache key(s) matching %r (%s)", removed, pattern, operation_context or "manual")
        return removed

    async def invalidate_by_operation(self, operation: str, operation_context: str = "") -> int:
        if not isinstance(operation, str) or not operation.strip():
            raise ValidationError("operation must be a non-empty string", {"operation": repr(operation)})
        removed = await self._invalidate(f"ai_cache:op:{_escape_glob(operation)}|*", operation, f"op:{operation}",
                                         "operation_specific", operation_context)
        logger.info("Invalidated %d AI cache key(s) of operation %r (%s)", removed, operation, operation_context or "manual")
        return removed

    async def clear(self, operation_context: str = "") -> int:
        """Deletes every ``ai_cache:`` entry this cache provably wrote (a token its keys open,
        bound to that key); every other key in the database survives, unlike
        ``GenericRedisCache.clear``."""
        removed = await self._invalidate("ai_cache:*", None, "ai_cache:*", "clear", operation_context)
        logger.info("Invalidated %d AI cache key(s) matching %r (%s)", removed, "", operation_context or "clear")
        return removed

    async def _invalidate(self, glob: str, operation: str | None, pattern: str, invalidation_type: str,
                          operation_context: str) -> int:
        """Deletes by ``glob`` and counts it once: in the AI statistics and, with a monitor,
        as one invalidation event of ``invalidation_type`` named by the caller's ``pattern``."""
        started = time.perf_counter()
        removed = await self._core.invalidate_pattern(glob)
        self._ai.record_invalidation(operation, removed)
        if self._monitor is not None:
            extra: dict[str, Any] = {"search_pattern": glob}
            if operation is not None:
                extra["operation"] = operation
            self._record_invalidation(pattern, removed, started, invalidation_type, operation_context, extra)
        return removed

    # -- statistics ------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        return self._ai.snapshot()

    def get_cache_hit_ratio(self) -> float:
        snap = self._snapshot()
        gets = snap["hits"] + snap["misses"]
        return round(snap["hits"] / gets * 100, 2) if gets else 0.0

    async def get_cache_stats(self) -> dict[str, Any]:
        """``redis.keys`` counts only ``ai_cache:`` keys (SCAN); ``memory_used``,
        ``memory_used_bytes`` and ``connected_clients`` come from INFO (None when the ACL
        user may not run it)."""
        stats: dict[str, Any] = dict(await self._core.stats(ai=True))  # reports.CacheStats, and more
        stats["ai_metrics"] = self._snapshot()
        stats["security"] = self.get_security_status()
        if self._monitor is not None:
            self._record_memory_usage(stats)
        return stats

    def get_text_tier_statistics(self) -> dict[str, Any]:
        snap = self._snapshot()
        tiers = ["small", "medium", "large", "xlarge"]
        distribution = {tier: snap["key_generation"]["keys_by_tier"].get(tier, 0) for tier in tiers}
        by_tier = snap["by_tier"]
        hit_rates = {tier: round(v["hit_rate"] * 100, 2) for tier, v in by_tier.items() if tier in tiers}
        times = {
            tier: {
                "avg_ms": v["avg_duration_ms"],
                "min_ms": v["min_duration_ms"],
                "max_ms": v["max_duration_ms"],
                "sample_count": v["sample_count"],
            }
            for tier, v in by_tier.items()
            if tier in tiers
        }
        opportunities = [
            {"tier": tier, "issue": "low hit rate", "hit_rate": rate,
             "suggestion": "raise this operation's TTL or warm the cache for these inputs"}
            for tier, rate in hit_rates.items()
            if (by_tier[tier]["hits"] + by_tier[tier]["misses"]) >= 10 and rate < 30
        ]
        rankings = sorted(
            (
                {
                    "tier": tier,
                    "hit_rate": hit_rates.get(tier, 0.0),
                    "avg_response_time_ms": times[tier]["avg_ms"],
                    "performance_score": round(hit_rates.get(tier, 0.0) - times[tier]["avg_ms"], 2),
                }
                for tier in times
            ),
            key=lambda r: r["performance_score"],
            reverse=True,
        )
        recorded = [tier for tier in tiers if distribution[tier] or tier in by_tier]
        return {
            "tier_configuration": {k: self.text_size_tiers[k] for k in ("small", "medium", "large")},
            "tier_distribution": distribution,
            "tier_performance_analysis": {
                "tier_hit_rates": hit_rates,
                "average_response_times": times,
                "tier_optimization_opportunities": opportunities,
                "performance_rankings": rankings,
            },
            "data_completeness": {
                "expected_tiers": tiers,
                "recorded_tiers": recorded,
                "missing_tiers": [t for t in tiers if t not in recorded],
                "completeness_percentage": round(len(recorded) / len(tiers) * 100, 1),
            },
        }

    def get_operation_performance(self) -> dict[str, Any]:
        snap = self._snapshot()
        operations = {
            op: {
                "avg_duration_ms": v["avg_duration_ms"],
                "min_duration_ms": v["min_duration_ms"],
                "max_duration_ms": v["max_duration_ms"],
                "percentiles": v["percentiles"],
                "total_operations": v["total_operations"],
                "configured_ttl": v["configured_ttl"],
                "sample_count": v["sample_count"],
            }
            for op, v in snap["by_operation"].items()
        }
        measured = sum(v["total_operations"] for v in operations.values())
        by_speed = sorted(operations, key=lambda op: operations[op]["avg_duration_ms"])
        return {
            "operations": operations,
            "summary": {
                "total_operations_measured": measured,
                "total_operation_types": len(operations),
                "overall_avg_duration_ms": round(
                    sum(v["avg_duration_ms"] * v["total_operations"] for v in operations.values()) / measured, 3
                )
                if measured
                else 0.0,
                "fastest_operation": by_speed[0] if by_speed else None,
                "slowest_operation": by_speed[-1] if by_speed else None,
            },
        }

    def get_performance_summary(self) -> dict[str, Any]:
        snap = self._snapshot()
        operations = snap["by_operation"]
        return {
            "hit_ratio": self.get_cache_hit_ratio(),
            "total_operations": snap["total_operations"],
            "cache_hits": snap["hits"],
            "cache_misses": snap["misses"],
            "recent_avg_cache_operation_time": self.get_operation_performance()["summary"]["overall_avg_duration_ms"],
            "ai_operation_metrics": {op: {"hits": v["hits"], "sets": v["sets"]} for op, v in operations.items()},
            "ai_miss_metrics": {op: v["misses"] for op, v in operations.items()},
            "text_tier_distribution": snap["key_generation"]["keys_by_tier"],
            "recent_ai_operations": snap["total_operations"],
        }

    def get_ai_performance_summary(self) -> dict[str, Any]:
        snap = self._snapshot()
        operations = snap["by_operation"]
        recommendations: list[dict[str, Any]] = []
        for op, v in operations.items():
            gets = v["hits"] + v["misses"]
            if gets >= 10 and v["hit_rate"] < 0.3:
                recommendations.append({
                    "type": "ttl_optimization",
                    "priority": "medium",
                    "title": f"Low hit rate for {op}",
                    "description": f"{op} hits {v['hit_rate'] * 100:.1f}% of {gets} lookups",
                    "action": f"Raise operation_ttls[{op!r}] (now {v['configured_ttl']} s) if answers stay valid longer",
                    "estimated_impact": "fewer model calls",
                    "metrics": {"hit_rate": v["hit_rate"], "lookups": gets},
                })
        return {
            "total_operations": snap["total_operations"],
            "overall_hit_rate": self.get_cache_hit_ratio(),
            "hit_rate_by_operation": {op: round(v["hit_rate"] * 100, 2) for op, v in operations.items()},
            "text_tier_distribution": snap["key_generation"]["keys_by_tier"],
            "key_generation_stats": snap["key_generation"],
            "optimization_recommendations": recommendations,
            "inherited_stats": {"invalidations": snap["invalidations"]},
            **self._savings.snapshot(),
        }

    # -- compatibility properties ----------------------------------------------------------

    def _l1_entries(self) -> dict[str, Any]:
        # The L1 tier may be shared with a GenericRedisCache of the same settings: this cache's
        # entries are its ai_cache: ones.
        return {key: value for key, value in self._core.l1_entries().items() if key.startswith("ai_cache:")}

    @property
    def memory_cache(self) -> dict[str, Any]:
        """The live ``ai_cache:`` L1 entries, as a copy (``{}`` without L1)."""
        return self._l1_entries()

    @memory_cache.setter
    def memory_cache(self, value: Any) -> None:
        logger.warning("memory_cache cannot be replaced; the L1 tier is managed by the cache")

    @memory_cache.deleter
    def memory_cache(self) -> None:
        self._core.clear_l1()

    @property
    def memory_cache_size(self) -> int:
        return self.l1_cache_size if self.enable_l1_cache else 0

    @property
    def memory_cache_order(self) -> list[str]:
        return []
