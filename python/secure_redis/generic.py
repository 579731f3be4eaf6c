"""GenericRedisCache: the typed asyncio face of the Rust cache core.

Everything that matters (TLS, AUTH, encryption, L1, fallback) happens in Rust; this class
keeps the public names and signatures of the layer we replace and fires callbacks.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from . import _monitor, _native
from .aside import MISS, check_jitter, check_tags, is_type_refusal, jittered, json_ready, reserved, storable, unwrap
from ._args import _check_keywords, _require_int
from ._native import SecurityConfig
from .base import CacheInterface
from .exceptions import ConfigurationError, ErrorCode, InfrastructureError, ValidationError

if TYPE_CHECKING:
    from .reports import SecurityStatus
    from .validation import SecurityValidationResult

logger = logging.getLogger("secure_redis.cache")

DEFAULT_REDIS_URL: str = _native.DEFAULT_REDIS_URL
# Constructor defaults, from the Rust core (cache/options.rs), the one place they are defined.
_DEFAULTS = _native.CACHE_DEFAULTS
_Cache = TypeVar("_Cache", bound="GenericRedisCache")
# What a cache's __dict__ holds that is bound to that very instance (see scope()).
_BOUND_TO_INSTANCE = frozenset({*_monitor.TIMED_OPERATIONS, "_instrumentation"})
CALLBACK_EVENTS = frozenset({"get_success", "get_miss", "set_success", "delete_success"})



def _node_list(name: str, nodes: Iterable[str] | None) -> list[str] | None:
    """``["rediss://h1:6380", "h2:6380"]`` or one comma-separated string."""
    if nodes is None:
        return None
    if isinstance(nodes, str):
        nodes = nodes.replace(",", " ").split()
    listed = list(nodes)
    if not all(isinstance(node, str) for node in listed):
        raise ConfigurationError(f"{name} must be a list of 'rediss://host:port' strings", {"parameter": name})
    return listed


class GenericRedisCache(CacheInterface):
    """A Redis cache over TLS + AUTH whose values are always Fernet-encrypted.

    ``redis_url`` is a ``rediss://`` URL (default ``REDIS_URL``, then ``DEFAULT_REDIS_URL``);
    ``security_config`` is a ``SecurityConfig`` with the password, Fernet key(s) and TLS
    settings (default ``SecurityConfig.create_for_environment()``, from the ``REDIS_*``
    variables); ``default_ttl`` is the seconds an entry lives when ``set`` is given no
    ``ttl``; ``enable_l1_cache``/``l1_cache_size`` size the in-process tier in front of Redis.
    Nothing here can turn TLS, authentication or encryption off.

    ``get``/``set``/``delete``/``exists`` never raise because Redis is unreachable: reads
    fall back to the L1 memory tier (or miss) and writes land in L1. Invalid input raises
    ``ValidationError``; ``connect()`` raises ``ConfigurationError`` when the server refuses
    us (wrong password, untrusted certificate, not TLS).

    ``namespace`` (keyword, default ``""``) is a prefix put in front of every key in Redis:
    ``namespace="billing:"`` stores ``get("user:1")`` under ``billing:user:1``. The default
    keeps today's key names. Printable ASCII without spaces, at most 128 characters. Bulk
    operations stay inside it, and ``invalidate_pattern`` and the repair after an outage
    delete only keys holding an entry this cache provably wrote; ``clear()`` is the one
    operation that deletes keys it did not write (see its docstring).

    Caches of one process built with the same URL, ``SecurityConfig``, namespace and L1
    settings share one connection, one L1 tier and its invalidation channel, so building a
    cache per request costs no TLS handshake and reads from a warm L1. ``disconnect()`` lets
    go of it; the connection closes when the last cache holding it disconnects (a cache that is
    only dropped leaves it open for 30 s for the next one). ``share_connection=False`` (keyword)
    gives a cache a connection and L1 of its own.

    ``performance_monitor`` (an object with the replaced layer's ``record_*`` methods, such as
    the starter's ``CachePerformanceMonitor``) is recorded into: get/set/delete/exists timings,
    invalidations, clears and memory usage at ``get_cache_stats``. A monitor that lacks a method
    or raises is logged once and never breaks an operation.

    ``fail_on_connection_error=True`` (keyword) makes ``connect()`` raise ``InfrastructureError``
    when Redis is unreachable instead of returning False, the branch the replaced ``connect()``
    had but could never take; operations still never raise on an outage. A keyword no
    signature takes raises ``ConfigurationError`` naming it: a typo names the closest valid
    parameter, and the replaced layer's security keywords (``use_tls``, ``redis_auth``, ...)
    say they belong in ``SecurityConfig``.
    """

    # Which parameter ranges the native core enforces.
    _PROFILE = _native.CacheProfile.GENERIC

    def __init__(
        self,
        redis_url: str | None = None,
        default_ttl: int = _DEFAULTS["default_ttl"],
        enable_l1_cache: bool = _DEFAULTS["enable_l1_cache"],
        l1_cache_size: int = _DEFAULTS["l1_cache_size"],
        compression_threshold: int = _DEFAULTS["compression_threshold"],
        compression_level: int = _DEFAULTS["compression_level"],
        performance_monitor: Any = None,
        security_config: SecurityConfig | None = None,
        *,
        cluster: bool = False,
        cluster_nodes: Iterable[str] | None = None,
        sentinel_nodes: Iterable[str] | None = None,
        sentinel_master: str | None = None,
        namespace: str = "",
        share_connection: bool = True,
        fail_on_connection_error: bool = False,
        ttl_jitter: float | None = None,
        **kwargs: Any,
    ) -> None:
        _check_keywords(type(self), kwargs)
        self.ttl_jitter = check_jitter(ttl_jitter)
        for name, value in (
            ("default_ttl", default_ttl),
            ("l1_cache_size", l1_cache_size),
            ("compression_threshold", compression_threshold),
            ("compression_level", compression_level),
        ):
            _require_int(name, value)
        if not isinstance(namespace, str):
            raise ConfigurationError("namespace must be a str", {"type": type(namespace).__name__})
        if not isinstance(fail_on_connection_error, bool):
            raise ConfigurationError(
                "fail_on_connection_error must be a bool", {"type": type(fail_on_connection_error).__name__}
            )
        if security_config is None:
            security_config = SecurityConfig.create_for_environment()
        elif not isinstance(security_config, SecurityConfig):
            raise ConfigurationError(
                "security_config must be a secure_redis.SecurityConfig",
                {"type": type(security_config).__name__},
            )
        url = redis_url or _native.env_value("REDIS_URL") or DEFAULT_REDIS_URL
        self._core = _native.GenericCacheCore(
            url,
            security_config,
            default_ttl,
            bool(enable_l1_cache),
            l1_cache_size,
            compression_threshold,
            compression_level,
            type(self)._PROFILE,
            cluster=bool(cluster),
            cluster_nodes=_node_list("cluster_nodes", cluster_nodes),
            sentinel_nodes=_node_list("sentinel_nodes", sentinel_nodes),
            sentinel_master=sentinel_master,
            namespace=namespace,
            share_connection=bool(share_connection),
        )
        self.redis_url: str = self._core.redis_url  # credentials removed
        self.namespace = namespace
        self.default_ttl = default_ttl
        self.enable_l1_cache = bool(enable_l1_cache) and l1_cache_size > 0
        self.l1_cache_size = l1_cache_size
        self.compression_threshold = compression_threshold
        self.compression_level = compression_level
        self.performance_monitor = performance_monitor
        self.security_config = security_config
        self.fail_on_connection_error = fail_on_connection_error
        self._callbacks: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._scope_name: str | None = None

    @classmethod
    def create_secure(cls, redis_url: str | None = None, **kwargs: Any) -> "GenericRedisCache":
        """A cache for ``redis_url`` (default ``REDIS_URL``) with ``SecurityConfig`` from the environment."""
        return cls(redis_url=redis_url or _native.env_value("REDIS_URL") or DEFAULT_REDIS_URL, **kwargs)

    def __repr__(self) -> str:
        namespace = f", namespace={self.namespace!r}" if self.namespace else ""
        if self._core.is_scoped:
            namespace += ", scope=<hidden>"  # tenant names stay out of logs
        return (
            f"{type(self).__name__}(redis_url={self.redis_url!r}{namespace}, default_ttl={self.default_ttl}, "
            f"l1_cache_size={self.l1_cache_size if self.enable_l1_cache else 0}, tls={self._core.uses_tls})"
        )

    @property
    def performance_monitor(self) -> Any:
        """The monitor recorded into, or None. Assigning one (or None) takes effect at once."""
        return self._performance_monitor

    @performance_monitor.setter
    def performance_monitor(self, monitor: Any) -> None:
        self._performance_monitor = monitor
        # Timed get/set/delete/exists go on the instance only with a monitor: without one the
        # hot path is the plain class method, and every other recording is one `is not None`.
        self._monitor = _monitor.attach(self, monitor)
        instrumentation = self.__dict__.get("_instrumentation")  # metrics.instrument()'s wrappers go around it
        if instrumentation is not None:
            instrumentation._rewrap()

    # -- callbacks -------------------------------------------------------------------------

    def register_callback(self, event: str, callback: Callable[..., Any]) -> None:
        if event not in CALLBACK_EVENTS:
            raise ValidationError(
                f"Unknown callback event {event!r}; expected one of {sorted(CALLBACK_EVENTS)}",
                {"event": event},
            )
        if not callable(callback):
            raise ValidationError("callback must be callable", {"event": event})
        self._callbacks[event].append(callback)

    def _fire(self, event: str, *args: Any) -> None:
        for callback in self._callbacks.get(event, ()):
            try:
                callback(*args)
            except Exception as exc:  # a broken callback must not break caching
                logger.warning("Callback for %s raised %s", event, type(exc).__name__)

    # -- tenant scopes ---------------------------------------------------------------------

    def scope(self: _Cache, name: str) -> _Cache:
        """A view of this cache for tenant ``name``: the same connection, L1 and API, with
        entries of its own sealed under a data key of its own (docs/tenancy.md).

        Redis shows no tenant identifier: names carry an HMAC of the scope and a random
        location, never ``name``. A token of one scope never opens in another, even copied
        onto its name. ``clear()``, ``invalidate_pattern``, ``invalidate_tags`` and the repair
        after an outage of a view touch only its scope. Reads of a scope that was never
        written (or was forgotten) miss without creating it. Building a view does no I/O;
        views of one scope made per request share its resolved key. Scopes do not nest."""
        core = self._core.scoped(name)  # checks the name
        view = object.__new__(type(self))
        state = vars(self)
        instrumentation = state.get("_instrumentation")
        if self._performance_monitor is None and instrumentation is None:
            vars(view).update(state)  # nothing in it is bound to this instance
        else:
            # Everything but the monitor's and the metrics' wrappers, which would send the
            # view's calls to the whole cache; the view gets its own below.
            vars(view).update({k: v for k, v in state.items() if k not in _BOUND_TO_INSTANCE})
        view._core = core
        # Kept for AIResponseCache.build_key (names digested under the scope's own naming
        # keys); never shown by repr or put in a log.
        view._scope_name = name
        if self._performance_monitor is not None or instrumentation is not None:
            view.performance_monitor = self._performance_monitor
            if instrumentation is not None:
                instrumentation._wrap_view(view)
        return view

    @property
    def is_scoped(self) -> bool:
        """Whether this is a tenant scope's view (``scope()``)."""
        return self._core.is_scoped

    async def forget_scope(self, name: str, *, wait: bool = False) -> int | None:
        """Destroys tenant ``name``'s data key (crypto-shredding): every entry of the scope
        becomes unreadable to every process (to others within about 100 ms with L1 on, at
        once with it off), and this process drops them from L1 now. The entries are then
        deleted from Redis in the background; ``wait=True`` deletes them before returning and
        returns how many went. Raises ``InfrastructureError`` when Redis cannot delete the
        key record: the scope is then not forgotten. A later ``scope(name)`` starts afresh
        under a new key. See docs/tenancy.md for what this does and does not protect against."""
        return await self._core.forget_scope(name, bool(wait))

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> bool:
        """Connects now. False if Redis is unreachable (``InfrastructureError`` instead with
        ``fail_on_connection_error=True``); raises ConfigurationError if it refuses us."""
        connected = await self._core.connect()
        if not connected and self.fail_on_connection_error:
            raise InfrastructureError(
                f"Redis at {self.redis_url} is unreachable and fail_on_connection_error=True",
                {
                    "redis_url": self.redis_url,
                    "error_type": ErrorCode.REDIS_UNREACHABLE.value,
                    "last_error": self.last_error,
                },
            )
        return connected

    async def disconnect(self) -> None:
        self._core.disconnect()

    async def ping(self) -> bool:
        return await self._core.ping()

    @property
    def is_available(self) -> bool:
        """Whether a live Redis connection exists right now (no I/O)."""
        return self._core.available

    @property
    def is_rejected(self) -> bool:
        """The server was reached but refused us: credentials, certificate or a plaintext port."""
        return self._core.rejected

    @property
    def last_error(self) -> str | None:
        """The last connection failure, without secrets."""
        return self._core.last_error

    # -- single keys -----------------------------------------------------------------------

    async def _get_stored(self, key: str) -> Any:
        """The stored value as Redis (or L1) holds it, envelopes unopened; ``MISS`` for none."""
        return await self._core.get(key, MISS)

    async def get(self, key: str, model: Any = None) -> Any | None:
        """The value, or None. ``model`` (a class or a typing form such as ``list[User]``)
        restores a typed value as that type: pydantic models, dataclasses, Enums."""
        # The native read itself, not `_get_stored`: one coroutine less on the hottest path
        # (AIResponseCache, whose reads do more, overrides this to go through `_get_stored`).
        value = await self._core.get(key, MISS)
        if value is MISS or model is not None or type(value) is dict or self._callbacks:
            return self._opened(key, value, model)
        return value  # a plain hit: no envelope to open, no type to restore, nobody to call

    def _opened(self, key: str, value: Any, model: Any) -> Any | None:
        """``get``'s answer for what was stored: envelopes opened, typed values restored,
        callbacks fired."""
        if value is not MISS and (model is not None or type(value) is dict):
            value = unwrap(value, model)
        if value is MISS:
            if self._callbacks:
                self._fire("get_miss", key)
            return None
        if self._callbacks:
            self._fire("get_success", key, value)
        return value

    async def set(
        self,
        key: str,
        value: Any,
        ttl: int | None = None,
        *,
        tags: Iterable[str] = (),
        ttl_jitter: float | None = None,
    ) -> None:
        """Stores ``value`` (JSON, or a typed value: datetime, UUID, Decimal, bytes, tuple,
        Enum, dataclass, pydantic model) for ``ttl`` seconds. ``tags`` file it for
        ``invalidate_tags``; ``ttl_jitter`` (default: the cache's) shortens the TTL by a random
        fraction of at most that much."""
        jitter = self.ttl_jitter if ttl_jitter is None else check_jitter(ttl_jitter)
        if jitter:
            ttl = jittered(ttl, self.default_ttl, jitter)
        tag_list = check_tags(tags) or None
        if reserved(value):
            value = storable(value)
        try:
            await self._core.set(key, value, ttl, tag_list)
        except ValidationError as error:
            if not is_type_refusal(error):
                raise
            await self._core.set(key, storable(value), ttl, tag_list)
        if self._callbacks:
            self._fire("set_success", key, value)

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Deletes every entry stored with any of ``tags`` (in Redis and L1, in every process);
        how many Redis deleted. Costs work proportional to the tagged entries (each tag's index
        is read and deleted), never a scan of the keyspace. Raises ``InfrastructureError`` when
        Redis cannot be reached (this process's L1 is emptied first)."""
        return await self._core.invalidate_tags(check_tags(tags))

    async def _store_envelope(self, key: str, envelope: dict[str, Any], ttl: int, tags: list[str]) -> None:
        await self._core.set(key, envelope, ttl, tags or None)

    async def _lock(self, key: str, seconds: float) -> str | None | bool:
        return await self._core.lock_acquire(key, max(1, int(seconds * 1000)))

    async def _unlock(self, key: str, token: str) -> None:
        await self._core.lock_release(key, token)

    def _digest(self, text: str) -> str:
        return self._core.call_digest(text)

    def _flight_scope(self) -> Any:
        # Caches sharing a backend have the same server, secrets and namespace: a load one
        # started is the other's too. The class matters as well (an AI cache's TTL rules), and
        # the tenant scope: one tenant's load must never answer another's.
        return (type(self), self._core.backend_id, self._core.scope_id)

    async def delete(self, key: str) -> bool:
        existed = await self._core.delete(key)
        if existed and self._callbacks:
            self._fire("delete_success", key)
        return existed

    async def exists(self, key: str) -> bool:
        return await self._core.exists(key)

    async def get_ttl(self, key: str) -> int | None:
        """Seconds left (rounded up), or None for a missing key."""
        return await self._core.get_ttl(key)

    # -- batches and namespaces ------------------------------------------------------------

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """One round trip for every key L1 does not hold. Missing keys are absent from the result."""
        found = await self._core.get_many(list(keys))
        for key, value in list(found.items()):
            if type(value) is dict:
                opened = unwrap(value)
                if opened is MISS:
                    del found[key]
                else:
                    found[key] = opened
        return found

    async def set_many(self, mapping: Mapping[str, Any], ttl: int | None = None) -> None:
        """One pipelined round trip. Every value is validated before anything is written."""
        items = {key: storable(value) if reserved(value) else value for key, value in mapping.items()}
        try:
            await self._core.set_many(items, ttl)
        except ValidationError as error:
            if not is_type_refusal(error):
                raise
            await self._core.set_many({key: json_ready(value) for key, value in items.items()}, ttl)

    async def invalidate_pattern(self, pattern: str) -> int:
        """Deletes this cache's entries whose keys match a Redis glob, in Redis and L1.

        The glob applies to keys as you pass them (inside the namespace). In Redis it deletes
        only keys holding an entry this cache provably wrote (a token its encryption keys open,
        bound to that very key): another application's keys that match survive, whatever their
        type. SCAN in batches, never KEYS. If Redis is unreachable, it is replayed, with the
        same check, when Redis is back. Returns how many keys were removed."""
        if not isinstance(pattern, str):
            raise ValidationError("pattern must be a str", {"type": type(pattern).__name__})
        if self._monitor is None:
            return await self._core.invalidate_pattern(pattern)
        started = time.perf_counter()
        removed = await self._core.invalidate_pattern(pattern)
        self._record_invalidation(pattern, removed, started, "manual", "", {"search_pattern": pattern})
        return removed

    async def clear(self) -> int:
        """DELETES KEYS THIS CACHE DID NOT WRITE: every key in its Redis namespace, or, with
        the default namespace ``""``, EVERY KEY OF ITS REDIS DATABASE, whoever wrote it; and
        empties L1.

        Give the cache a database of its own (``rediss://host:port/N``) or a ``namespace``.
        To remove only this cache's own entries, use ``invalidate_pattern("*")``. If Redis is
        unreachable, the clear is replayed when it is back, but then, like every outage path,
        it deletes only entries this cache provably wrote."""
        if self._monitor is None:
            return await self._core.clear()
        started = time.perf_counter()
        removed = await self._core.clear()
        self._record_invalidation("*", removed, started, "clear", "", {})
        return removed

    async def get_cache_stats(self) -> dict[str, Any]:
        """Counters, L1 use, encryption figures and the connection (``reports.CacheStats``)."""
        stats: dict[str, Any] = dict(await self._core.stats())  # callers may add sections
        if self._monitor is not None:
            self._record_memory_usage(stats)
        return stats

    def _record_invalidation(self, pattern: str, removed: int, started: float, invalidation_type: str,
                             operation_context: str, additional_data: dict[str, Any]) -> None:
        """One ``record_invalidation_event``; "partial" when Redis was away, so the deletion
        there waits for its replay and ``removed`` counts only what went at once."""
        assert self._monitor is not None
        available = self._core.available
        additional_data = {"status": "success" if available else "partial", **additional_data}
        if not available:
            additional_data["reason"] = "redis_unavailable"
        self._monitor.invalidation(pattern, removed, time.perf_counter() - started, invalidation_type,
                                   operation_context, additional_data)

    def _record_memory_usage(self, stats: dict[str, Any]) -> None:
        """``record_memory_usage`` with the L1 entries and the figures Redis gave (left out when
        INFO was refused, since the monitor adds them up)."""
        assert self._monitor is not None
        redis: dict[str, Any] = stats.get("redis") or {}
        redis_stats: dict[str, Any] = {
            name: redis[name] for name in ("keys", "memory_used_bytes")
            if isinstance(redis.get(name), int) and not isinstance(redis.get(name), bool)
        }
        self._monitor.memory_usage(
            self._l1_entries(),
            redis_stats or None,
            {"source": "get_cache_stats", "redis_status": redis.get("status")},
        )

    def _l1_entries(self) -> dict[str, Any]:
        """This cache's live L1 entries (L1 is shared with same-settings caches; see the class doc)."""
        return self._core.l1_entries()

    # -- security --------------------------------------------------------------------------

    async def validate_security(self) -> "SecurityValidationResult":
        """Every configuration check plus a live TLS/AUTH/encrypted round trip on this connection."""
        from .validation import SecurityValidationResult

        return SecurityValidationResult.from_report(await self._core.validate_security())

    def get_security_status(self) -> "SecurityStatus":
        """Configuration and connection facts (TLS version, cipher), without I/O or secrets."""
        return self._core.security_status()

    def get_security_recommendations(self) -> list[str]:
        status = self.get_security_status()["configuration"]
        recommendations: list[str] = []
        if not status["acl_configured"]:
            recommendations.append("Use a least-privilege ACL user (REDIS_ACL_USERNAME) instead of the default user.")
        if not status["mutual_tls"]:
            recommendations.append("Consider mutual TLS (REDIS_TLS_CERT_PATH, REDIS_TLS_KEY_PATH).")
        if status["encryption_keys"] == 1:
            recommendations.append("Plan key rotation: REDIS_ENCRYPTION_KEY=<new>,<old>.")
        return recommendations

    async def generate_security_report(self) -> str:
        """A human-readable report from a live validation of this cache."""
        return (await self.validate_security()).summary()
