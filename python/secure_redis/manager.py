"""CacheManager: the secure Redis cache, and a memory fallback while Redis is away.

It never falls back on a security or configuration error (a wrong password, an untrusted
certificate, a bad key): those raise, because serving from memory would hide them. When Redis
is unreachable at start or disappears later, requests are served from an InMemoryCache and a
background probe brings the manager back to Redis; keys written during the outage are deleted
in Redis on return, so an older value can never resurface. The same probe runs while Redis
refuses the configuration, so the manager stops raising once the server accepts it again.

Invariant: the probe itself never decides how often Redis is contacted. It only looks at the
connection, which reconnects at most once a second (crates/core supervisor.rs,
RECONNECT_INTERVAL); so the probe can look often and the manager is back on Redis within a
look of the connection being back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import Any, Iterable

from .ai import AIResponseCache
from .base import CacheInterface
from .aside import MISS
from .exceptions import ConfigurationError, ErrorCode, InfrastructureError
from .generic import GenericRedisCache
from .memory import InMemoryCache

logger = logging.getLogger("secure_redis.manager")

REDIS = "redis_secure"
# Beyond this many distinct keys written during an outage, the return to Redis removes every
# entry the cache provably wrote (invalidate_pattern("*"), inside its namespace) instead of
# resetting keys one by one; other applications' keys in the database survive it.
MAX_OUTAGE_KEYS = 10_000
MEMORY = "memory_fallback"
# How often the probe looks at the connection. A look is local (no network traffic) except when
# the connection's one-a-second reconnect is due, which it then starts; so looking often costs
# almost nothing and keeps the return to Redis within a second plus one look.
PROBE_INTERVAL = 0.05


def _of_scope(written: str | tuple[str, str], scope: str | None) -> bool:
    """Whether an outage write (a key of the whole cache, or ``(scope, key)``) is ``scope``'s
    (``None``: the whole cache's own)."""
    if scope is None:
        return not isinstance(written, tuple)
    return isinstance(written, tuple) and written[0] == scope


class _Shared:
    """What a manager and the views of its tenant scopes share: which backend serves, the
    probe that brings it back to Redis, and the keys written to the fallback meanwhile (a key
    of the whole cache, or ``(scope name, key)`` for a view's), reset in Redis on return."""

    def __init__(self) -> None:
        self.cache_type = REDIS
        self.switches = 0
        self.last_switch: dict[str, Any] | None = None
        self.written: set[str | tuple[str, str]] = set()
        self.reset_everything = False
        # Scopes written past MAX_OUTAGE_KEYS: each is invalidated whole on return.
        self.scopes_reset: set[str] = set()
        self.probe: asyncio.Task[None] | None = None


class CacheManager(CacheInterface):
    """The secure Redis cache, with an InMemoryCache fallback while Redis is unreachable.

    ``redis_url`` and any other keyword (``security_config``, ``default_ttl``, ...) build the
    Redis cache as ``GenericRedisCache.create_secure`` takes them, or ``cache=`` passes one
    already built; ``fallback_max_size`` and ``fallback_default_ttl`` size the memory fallback.

    Calls go to Redis (a GenericRedisCache, or an AIResponseCache with ``ai=True``). If Redis
    is unreachable at start or later, they are served from memory while a background probe
    waits for Redis and switches back by itself, within about a second of Redis answering
    again; keys written meanwhile are deleted in Redis on return, so an older value cannot
    resurface. It never falls back on a security or configuration error (wrong password,
    untrusted certificate, bad key): those raise (``health_check()`` reports them instead),
    and stop within about a second of the server accepting the configuration again. Redis is
    contacted at most once a second meanwhile: the probe looks at the connection every
    ``probe_interval`` seconds without network traffic, and the connection itself reconnects
    at most once a second. ``max_probe_interval`` is accepted for older callers and ignored
    (the probe no longer backs off). ``cache_type``, ``get_cache_info()`` and
    ``health_check()`` report which backend serves and what is in effect.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        cache: GenericRedisCache | None = None,
        ai: bool = False,
        fallback_max_size: int = 1000,
        fallback_default_ttl: int = 3600,
        probe_interval: float = PROBE_INTERVAL,
        max_probe_interval: float | None = None,
        **cache_kwargs: Any,
    ) -> None:
        if max_probe_interval is not None:
            # Its back-off, up to 10 s by default, is what kept the manager off a Redis that was
            # back (issue 13); contacting Redis at most once a second is the connection's job now.
            warnings.warn(
                "CacheManager(max_probe_interval=...) has no effect: the probe no longer backs off, "
                "and the connection reconnects at most once a second",
                DeprecationWarning,
                stacklevel=2,
            )
        if cache is None:
            factory = AIResponseCache if ai else GenericRedisCache
            cache = factory.create_secure(redis_url, **cache_kwargs)  # configuration errors raise here
        self.cache = cache
        self.fallback = InMemoryCache(default_ttl=fallback_default_ttl, max_size=fallback_max_size)
        self.redis_url = cache.redis_url
        self.probe_interval = probe_interval
        self._shared = _Shared()
        self._root = self
        self._scope_name: str | None = None

    def __repr__(self) -> str:
        scope = ", scope=<hidden>" if self._scope_name is not None else ""
        return f"CacheManager(type={self.cache_type}, redis_url={self.redis_url!r}{scope})"

    @property
    def cache_type(self) -> str:
        """``"redis_secure"`` or ``"memory_fallback"``: which backend serves now."""
        return self._shared.cache_type

    @property
    def switches(self) -> int:
        return self._shared.switches

    @property
    def last_switch(self) -> dict[str, Any] | None:
        return self._shared.last_switch

    # -- tenant scopes ---------------------------------------------------------------------

    def scope(self, name: str) -> "CacheManager":
        """A view of this manager for tenant ``name``: the Redis cache's scope (its own data
        key, docs/tenancy.md) and the same scope of the memory fallback, switched together with
        this manager (one probe, one state). Keys a view writes during an outage are reset in
        its scope when Redis is back. No I/O; scopes do not nest."""
        view = object.__new__(CacheManager)
        view.cache = self.cache.scope(name)  # checks the name, and refuses on a view: scopes do not nest
        view.fallback = self.fallback.scope(name)
        view.redis_url = self.redis_url
        view.probe_interval = self.probe_interval
        view._shared = self._shared
        view._root = self
        view._scope_name = name
        return view

    @property
    def is_scoped(self) -> bool:
        return self._scope_name is not None

    async def forget_scope(self, name: str, *, wait: bool = False) -> int | None:
        """``GenericRedisCache.forget_scope`` (raises when Redis cannot delete the scope's key
        record), and the scope's entries in the memory fallback."""
        removed = await self.cache.forget_scope(name, wait=wait)  # refuses a view
        in_memory = await self.fallback.forget_scope(name)
        self._shared.written = {k for k in self._shared.written if not _of_scope(k, name)}
        return None if removed is None else max(removed, in_memory or 0)

    def _outage_name(self, key: str) -> str | tuple[str, str]:
        return key if self._scope_name is None else (self._scope_name, key)

    def _written_during_outage(self, key: str) -> bool:
        return self._outage_name(key) in self._shared.written

    def _pending_resets(self) -> int:
        written = self._shared.written
        if self._scope_name is None:
            return len(written)
        return sum(1 for k in written if _of_scope(k, self._scope_name))

    # -- switching ---------------------------------------------------------------------

    def _switch(self, to: str, reason: str) -> None:
        shared = self._shared
        if shared.cache_type == to:
            return
        shared.switches += 1
        shared.last_switch = {"at": time.time(), "from": shared.cache_type, "to": to, "reason": reason}
        shared.cache_type = to
        if to == MEMORY:
            logger.warning("Cache switched to the in-memory fallback: %s", reason)
            self._start_probe()
        else:
            logger.info("Cache switched back to Redis: %s", reason)

    def _start_probe(self) -> None:
        shared = self._shared
        if shared.probe is not None and not shared.probe.done():
            return
        try:
            # The manager's own probe, whichever view noticed: it returns every scope to Redis.
            shared.probe = asyncio.get_running_loop().create_task(self._root._probe_until_back())
        except RuntimeError:  # no running loop: the next call starts it
            shared.probe = None

    def _waiting_for_redis(self) -> bool:
        return self.cache_type == MEMORY or self.cache.is_rejected

    async def _probe_until_back(self) -> None:
        """Runs while the manager serves from memory or Redis refuses it. Each look is local:
        `is_available` reads the connection's state, and `ping()` on a connection that is not
        live answers at once, starting the one background reconnect only when the connection
        allows the next (at most once a second), so Redis is never contacted more often."""
        logged: str | None = None  # log each distinct trouble once, not once per look
        while self._waiting_for_redis():
            try:
                if self.cache.is_available or await self.cache.ping():
                    if self.cache_type == MEMORY:
                        await self._return_to_redis()
                    if not self._waiting_for_redis():
                        return
                elif self.cache.is_rejected and logged != "rejected":
                    logged = "rejected"
                    logger.error("Redis is back but refuses this configuration: %s", self.cache.last_error)
            except Exception as error:  # the probe must outlive any single failure
                message = str(getattr(error, "message", error))
                if logged != message:
                    logged = message
                    logger.warning("Probe for Redis failed: %s", message)
            await asyncio.sleep(self.probe_interval)

    async def _return_to_redis(self) -> None:
        if self._root is not self:
            return await self._root._return_to_redis()
        shared = self._shared
        reset = 0
        if shared.reset_everything:
            # Too many keys were written to reset one by one. Never clear(): with the default
            # namespace it would delete every key of the database, other applications' too.
            # The glob form of the base class, whatever the subclass makes of a pattern.
            await GenericRedisCache.invalidate_pattern(self.cache, "*")
            for name in shared.scopes_reset | {k[0] for k in shared.written if isinstance(k, tuple)}:
                await GenericRedisCache.invalidate_pattern(self.cache.scope(name), "*")
            if not self.cache.is_available:
                return
            shared.reset_everything = False
            shared.scopes_reset.clear()
            shared.written.clear()
        # Writes may keep arriving (into the fallback) while keys are reset: loop until none
        # is left, then switch without awaiting in between, so no write can slip past.
        while shared.written:
            stale = list(shared.written)
            for key in stale:  # Redis may hold values older than what was written meanwhile
                if isinstance(key, tuple):
                    await self.cache.scope(key[0]).delete(key[1])
                else:
                    await self.cache.delete(key)
            if not self.cache.is_available:
                return  # gone again; keep serving from memory
            shared.written.difference_update(stale)
            reset += len(stale)
        self.fallback.clear()  # every scope's entries too
        self._switch(REDIS, f"Redis answers again ({reset} key(s) written meanwhile were reset)")

    def _refuse_if_rejected(self) -> None:
        if self.cache.is_rejected:
            # Raising touches no connection, so without the probe nothing would ever try Redis
            # again and the manager would refuse until restarted (or, if it had switched to
            # memory first, until its backed-off probe came round: 15.5 s measured).
            self._start_probe()
            raise ConfigurationError(
                f"Redis refused this configuration; not falling back to memory: {self.cache.last_error}",
                {"error_type": ErrorCode.REDIS_REJECTED_CONFIGURATION.value, "redis_url": self.redis_url},
            )

    def _backend(self) -> CacheInterface:
        self._refuse_if_rejected()
        if self.cache_type == REDIS and not self.cache.is_available and self.cache.last_error:
            self._switch(MEMORY, self.cache.last_error)
        if self.cache_type == MEMORY:
            self._start_probe()
            return self.fallback
        return self.cache

    # -- CacheInterface --------------------------------------------------------------------

    async def connect(self) -> bool:
        """Connects to Redis; raises on security or configuration errors, never falls back on them."""
        if self._root is not self:
            return await self._root.connect()
        connected = await self.cache.connect()  # a refusal raises ConfigurationError here
        if connected:
            if self.cache_type == MEMORY:
                await self._return_to_redis()
        else:
            self._switch(MEMORY, self.cache.last_error or "Redis is unreachable")
        return connected

    async def disconnect(self) -> None:
        """Stops the probe and lets go of Redis. On a scope's view, nothing: the view holds
        nothing of its own, and the manager stays connected."""
        if self._root is not self:
            return
        if self._shared.probe is not None:
            self._shared.probe.cancel()
        await self.cache.disconnect()

    async def _get_stored(self, key: str) -> Any:
        backend = self._backend()
        value = await backend._get_stored(key)
        if value is MISS and backend is self.fallback and not self._written_during_outage(key):
            value = await self.cache._get_stored(key)  # the Redis cache's own L1 may still hold it (no I/O wait)
        return value

    async def get(self, key: str, model: Any = None) -> Any | None:
        # Through the backends' own get (a performance monitor times it there).
        backend = self._backend()
        if model is None:
            value = await backend.get(key)
        elif backend is self.fallback:
            value = await self.fallback.get(key, model)
        else:
            value = await self.cache.get(key, model)
        if value is None and backend is self.fallback and not self._written_during_outage(key):
            # the Redis cache's own L1 may still hold it (no I/O wait)
            value = await (self.cache.get(key) if model is None else self.cache.get(key, model))
        return value

    def _remember_outage_write(self, key: str) -> None:
        shared = self._shared
        if len(shared.written) < MAX_OUTAGE_KEYS:
            shared.written.add(self._outage_name(key))
        else:
            shared.reset_everything = True
            if self._scope_name is not None and len(shared.scopes_reset) < MAX_OUTAGE_KEYS:
                shared.scopes_reset.add(self._scope_name)

    async def set(
        self,
        key: str,
        value: Any,
        ttl: int | None = None,
        *,
        tags: Iterable[str] = (),
        ttl_jitter: float | None = None,
    ) -> None:
        backend = self._backend()
        if backend is self.fallback:
            # validates first: only valid keys are remembered
            await self.fallback.set(key, value, ttl, tags=tags, ttl_jitter=ttl_jitter)
            self._remember_outage_write(key)
        else:
            await self.cache.set(key, value, ttl, tags=tags, ttl_jitter=ttl_jitter)

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """The Redis cache's ``invalidate_tags`` and the same in the memory fallback. During an
        outage the fallback's tagged entries go and Redis's cannot be reached: that raises
        ``InfrastructureError`` (so a caller knows Redis still holds them), after the fallback."""
        tags = list(tags) if not isinstance(tags, str) else tags
        in_memory = await self.fallback.invalidate_tags(tags)
        try:
            return max(in_memory, await self.cache.invalidate_tags(tags))
        except InfrastructureError:
            self._start_probe()
            raise

    @property
    def default_ttl(self) -> int:  # type: ignore[override]
        return self.cache.default_ttl

    @property
    def ttl_jitter(self) -> float | None:  # type: ignore[override]
        return self.cache.ttl_jitter

    def _ttl_for(self, key: str) -> int:
        return self.cache._ttl_for(key)

    async def _store_envelope(self, key: str, envelope: dict[str, Any], ttl: int, tags: list[str]) -> None:
        if self._backend() is self.fallback:
            await self.fallback._store_envelope(key, envelope, ttl, tags)
            self._remember_outage_write(key)
        else:
            await self.cache._store_envelope(key, envelope, ttl, tags)

    async def _lock(self, key: str, seconds: float) -> str | None | bool:
        if self._backend() is self.fallback:
            return True  # Redis is away: single-flight in this process is what holds
        return await self.cache._lock(key, seconds)

    async def _unlock(self, key: str, token: str) -> None:
        await self.cache._unlock(key, token)

    def _digest(self, text: str) -> str:
        return self.cache._digest(text)

    def _flight_scope(self) -> Any:
        return ("manager", self.cache._flight_scope())

    async def delete(self, key: str) -> bool:
        backend = self._backend()
        if backend is self.fallback:
            existed = await self.fallback.delete(key)  # validates first: only valid keys are remembered
            self._remember_outage_write(key)
            return existed
        return await self.cache.delete(key)

    async def exists(self, key: str) -> bool:
        return await self._backend().exists(key)

    async def clear(self) -> int:
        """The Redis cache's ``clear()`` (read its warning: with the default namespace it
        empties the whole database) and the memory fallback. During an outage the Redis cache
        remembers it and replays it when Redis is back, deleting then only entries it provably
        wrote."""
        in_memory = self._backend() is self.fallback
        removed = await self.cache.clear()
        if in_memory:
            removed = max(removed, self.fallback.size())
            self.fallback.clear()  # a view's: its scope's entries only
            self._shared.written = {k for k in self._shared.written if not _of_scope(k, self._scope_name)}
        return removed

    # -- the wrapped cache's own API ------------------------------------------------------------
    # Apps use the manager where they used the cache (the starter's dependency returns it to
    # handlers that call build_key and to endpoints that read stats and invalidate), so what the
    # Redis cache offers beyond CacheInterface is offered here too, covering the fallback where it
    # holds entries.

    def build_key(self, text: str, operation: str, options: dict[str, Any] | None = None) -> str:
        """The wrapped cache's ``build_key`` (an ``AIResponseCache``: ``CacheManager(ai=True)``)."""
        build = getattr(self.cache, "build_key", None)
        if build is None:
            raise AttributeError("build_key needs an AIResponseCache: CacheManager(ai=True) or cache=AIResponseCache()")
        key: str = build(text, operation, options if options is not None else {})
        return key

    async def invalidate_pattern(self, pattern: str, operation_context: str = "") -> int:
        """The wrapped cache's ``invalidate_pattern`` (replayed on Redis after an outage), and the
        same in the memory fallback while it serves. Returns the larger of the two counts."""
        if isinstance(self.cache, AIResponseCache):
            removed = await self.cache.invalidate_pattern(pattern, operation_context)
            memory_pattern = "ai_cache:*" + (pattern + "*" if pattern else "")
        else:
            removed = await self.cache.invalidate_pattern(pattern)
            memory_pattern = pattern
        if self._backend() is self.fallback:
            removed = max(removed, await self.fallback.invalidate_pattern(memory_pattern))
        return removed

    async def invalidate_by_operation(self, operation: str, operation_context: str = "") -> int:
        """``AIResponseCache.invalidate_by_operation``, and the same entries in the fallback."""
        if not isinstance(self.cache, AIResponseCache):
            raise AttributeError("invalidate_by_operation needs an AIResponseCache")
        removed = await self.cache.invalidate_by_operation(operation, operation_context)
        if self._backend() is self.fallback:
            removed = max(removed, await self.fallback.invalidate_pattern(f"ai_cache:op:{operation}|*"))
        return removed

    async def ping(self) -> bool:
        """Whether Redis answers (the fallback does not count)."""
        return await self.cache.ping()

    async def get_cache_stats(self) -> dict[str, Any]:
        """The wrapped cache's statistics, plus ``manager``: which backend serves and the
        fallback's own figures."""
        stats = await self.cache.get_cache_stats()
        stats["manager"] = {**self.get_cache_info(), "fallback": self.fallback.get_stats()}
        return stats

    @property
    def performance_monitor(self) -> Any:
        """The wrapped cache's monitor (assigning sets it there)."""
        return self.cache.performance_monitor

    @performance_monitor.setter
    def performance_monitor(self, monitor: Any) -> None:
        self.cache.performance_monitor = monitor

    def __getattr__(self, name: str) -> Any:
        # Anything else the wrapped cache offers (get_security_status, get_ai_performance_summary,
        # ...); only called for names the manager does not define. Private names are not passed on.
        if name.startswith("_") or name == "cache":
            raise AttributeError(name)
        return getattr(self.cache, name)

    # -- monitoring ------------------------------------------------------------------------

    def get_cache_info(self) -> dict[str, Any]:
        """What is really in effect now: TLS as negotiated on the live connection (not the URL
        scheme) and encryption only while values go to Redis sealed; the memory fallback holds
        plain values in this process."""
        on_redis = self.cache_type == REDIS
        status = self.cache.get_security_status()
        connection = status["connection"]
        live = on_redis and bool(connection["connected"])
        tls_version = connection.get("tls_version") if live else None
        return {
            "cache_type": self.cache_type,
            "initialized": True,
            "redis_url": self.redis_url,
            "security_enabled": True,
            "connected": live,
            "connection_secure": bool(tls_version),
            "tls_version": tls_version,
            "cipher_suite": connection.get("cipher_suite") if tls_version else None,
            "encryption_active": live and status["configuration"]["encryption_keys"] > 0,
            "encryption_keys": status["configuration"]["encryption_keys"],
            "last_switch": self.last_switch,
            "switches": self.switches,
            "keys_pending_reset": self._pending_resets(),
        }

    async def health_check(self) -> dict[str, Any]:
        """Never raises: a refused configuration is reported as unhealthy, with its reason."""
        errors: list[str] = []
        probe_key = f"secure_redis:health:{time.time_ns()}"
        # Three round trips, each of which could wait out the socket timeout against a frozen
        # server: the whole probe gets one socket timeout (plus slack), like any single call.
        limit = self.cache.security_config.socket_timeout + 0.5

        async def probe(backend: CacheInterface) -> None:
            await backend.set(probe_key, {"test": True}, 10)
            if await backend.get(probe_key) != {"test": True}:
                errors.append("read back a different value than written")
            await backend.delete(probe_key)

        try:
            await asyncio.wait_for(probe(self._backend()), timeout=limit)  # _backend raises on refusal
        except asyncio.TimeoutError:
            errors.append(f"Redis did not answer the health probe within {limit:.1f} s")
        except Exception as error:  # reported, never raised, by a health check
            errors.append(f"{type(error).__name__}: {getattr(error, 'message', error)}")
        if self.cache_type == MEMORY:
            errors.append(f"serving from the in-memory fallback: {self.last_switch and self.last_switch['reason']}")
        return {
            "timestamp": time.time(),
            "cache_type": self.cache_type,
            "healthy": not errors or self.cache_type == MEMORY and len(errors) == 1,
            "degraded": self.cache_type == MEMORY,
            "errors": errors,
        }
