"""Cache-aside on every cache class: ``get_or_set``, ``@cached``, stampede protection, early
refresh, stale-if-error, TTL jitter and tags.

What lives where: the Redis side (the loader lock's ``SET NX PX`` and compare-and-delete, the
tag index) is the Rust core's (``crates/core/src/cache/generic/aside.rs``); this module holds
the orchestration that has to run on the caller's event loop: one loader call per key per
process (single-flight), waiting for another process's loader, refreshing ahead of expiry in
the background, and the decorator.

Entries written with ``early_refresh`` or ``stale_if_error`` carry their freshness with them:
the stored JSON is an envelope ``{ENTRY: 1, "v": value, "f": fresh until (epoch seconds),
"d": the loader's seconds}``, sealed like every value, and Redis keeps it ``stale_if_error``
seconds past its freshness. ``get`` unwraps it and reads a stale envelope as a miss, so the
TTL a caller asked for is the TTL every reader sees; only ``get_or_set`` uses the stale value,
and only when the loader fails.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import inspect
import logging
import math
import os
import random
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generic, Iterable, TypeVar, cast

from . import typed
from ._native import json_dumps
from .exceptions import InfrastructureError, ValidationError
from .typed import _JSON_DICT, _JSON_LIST  # ``dict``/``list`` typed as JSON's (see typed)

if TYPE_CHECKING:
    from typing_extensions import ParamSpec
else:
    try:
        from typing import ParamSpec
    except ImportError:  # Python 3.10 has it; the fallback keeps older type checkers quiet
        from typing_extensions import ParamSpec

logger = logging.getLogger("secure_redis.cache")

ENTRY = "\u0000secure_redis.entry"
MISS: Any = object()
"""What ``_get_stored`` returns for a miss (None is a storable value)."""

XFETCH = "xfetch"
"""``early_refresh=XFETCH``: refresh probabilistically (XFetch, beta 1) using the measured
loader time, so the expected refresh lands about one loader time before expiry."""

_LOCK_POLL_FIRST = 0.01
_LOCK_POLL_MAX = 0.1
_DEFAULT_LOCK_SECONDS = 30.0
_FLIGHT_RETRIES = 3

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


def unwrap(value: Any, model: Any = None) -> Any:
    """A stored value as callers see it: envelopes opened (MISS when no longer fresh), typed
    values restored. Plain JSON without ``model`` comes back as is, after one type check."""
    if type(value) is _JSON_DICT and (ENTRY in value or typed.MARKER in value):
        if ENTRY in value:
            if time.time() >= value.get("f", 0):
                return MISS
            value = value.get("v")
        return typed.decode(value, model)
    if model is not None:
        return typed.decode(value, model)
    return value


def storable(value: Any) -> Any:
    """``value`` for the native JSON check: as is, or typed-encoded when it holds a type JSON
    lacks (datetime, UUID, pydantic models, ...). Only called after the plain check refused it."""
    return typed.encode(value)


def reserved(value: Any) -> bool:
    """Whether a caller's dict uses one of our reserved top-level keys: stored typed-encoded
    (which escapes it), so it never reads back as an envelope."""
    return type(value) is dict and (ENTRY in value or typed.MARKER in value)


def is_type_refusal(error: ValidationError) -> bool:
    return error.context.get("error_type") == "unsupported_value" and "type" in error.context


def jittered(ttl: int | None, default_ttl: int, fraction: float | None) -> int | None:
    """``ttl`` shortened by a random part of at most ``fraction`` of it (never below 1 s), so
    entries written together do not expire together."""
    if not fraction:
        return ttl
    base = default_ttl if ttl is None else ttl
    if base <= 1:
        return ttl
    return max(1, base - int(random.random() * fraction * base))


def check_jitter(fraction: float | None) -> float | None:
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValidationError(
            "ttl_jitter must be a fraction from 0 up to (not including) 1", {"ttl_jitter": repr(fraction)}
        )
    return float(fraction)


def _check_seconds(name: str, value: Any, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValidationError(f"{name} must be a positive number of seconds", {name: repr(value)})
    return float(value)


def _lock_seconds(lock: bool | float | None) -> float | None:
    if lock is False or lock is None:
        return None
    if lock is True:
        return _DEFAULT_LOCK_SECONDS
    return _check_seconds("lock", lock, allow_none=False)


MAX_TAGS = 64  # as the Rust core (cache/generic/aside.rs), for the memory cache too
MAX_TAG_BYTES = 1024


def check_tags(tags: Iterable[str]) -> list[str]:
    """The tags of one call as a list, each a non-empty str of at most MAX_TAG_BYTES, at most
    MAX_TAGS of them; the one check every cache class applies before it stores anything."""
    if isinstance(tags, str):
        raise ValidationError("tags must be a list of str, not one str", {"tags": "str"})
    tag_list = list(tags)
    if len(tag_list) > MAX_TAGS:
        raise ValidationError(f"At most {MAX_TAGS} tags per call", {"tags": len(tag_list)})
    for tag in tag_list:
        if not isinstance(tag, str) or not tag or len(tag.encode("utf-8", "surrogatepass")) > MAX_TAG_BYTES:
            raise ValidationError(
                f"every tag must be a non-empty str of at most {MAX_TAG_BYTES} bytes", {"type": type(tag).__name__}
            )
    return tag_list


_FLIGHTS: dict[tuple[int, Any, str], asyncio.Task[Any]] = {}
"""The loads in progress in this process: one per (event loop, cache scope, key). Caches of
the same scope (``_flight_scope``) share them, so caches built per request still load once."""


class CacheAside:
    """``get_or_set`` and ``invalidate_tags`` for a cache; the cache classes mix it in.

    Hooks a cache overrides (the defaults serve any ``CacheInterface``): ``_get_stored`` (the
    stored value or ``MISS``), ``_store`` (set with tags), ``_lock``/``_unlock`` (the
    cross-process loader lock; a process-local cache has none), ``_digest`` (key names for
    ``@cached``).
    """

    ttl_jitter: float | None = None
    default_ttl: int = 3600

    # -- hooks ----------------------------------------------------------------------------

    async def _get_stored(self, key: str) -> Any:
        # ``get`` is the cache class's (a mixin): typed here, as the line's ignore leaves it Unknown
        get = cast("Callable[[str], Awaitable[Any]]", self.get)  # type: ignore[attr-defined]
        value = await get(key)
        return MISS if value is None else value

    async def _store(self, key: str, value: Any, ttl: int | None, tags: list[str]) -> None:
        if tags:
            await self.set(key, value, ttl, tags=tags)  # type: ignore[attr-defined]
        else:
            await self.set(key, value, ttl)  # type: ignore[attr-defined]

    async def _store_envelope(self, key: str, envelope: dict[str, Any], ttl: int, tags: list[str]) -> None:
        """Stores an envelope as it is (``set`` would escape its reserved key)."""
        await self._store(key, envelope, ttl, tags)

    async def _lock(self, key: str, seconds: float) -> str | None | bool:
        """The lock's token, None while another process holds it, or True: no cross-process
        lock here (this process's single-flight is all there is)."""
        return True

    async def _unlock(self, key: str, token: str) -> None:
        return None

    def _ttl_for(self, key: str) -> int:
        """The TTL an entry of ``key`` gets when the caller gives none."""
        return self.default_ttl

    def _digest(self, text: str) -> str:
        return hmac.new(_PROCESS_NAMING_KEY, text.encode(), hashlib.sha256).hexdigest()[:32]

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not index tags")

    # -- get_or_set -------------------------------------------------------------------------

    def _flight_scope(self) -> Any:
        """Which caches may share a load: by default only this one."""
        return id(self)

    async def get_or_set(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        ttl: int | None = None,
        *,
        lock: bool | float = False,
        early_refresh: float | str | None = None,
        stale_if_error: float | None = None,
        tags: Iterable[str] = (),
        ttl_jitter: float | None = None,
        model: Any = None,
    ) -> T:
        """The cached value of ``key``, or ``await loader()`` stored under it.

        Callers in this process asking for the same key while it loads share one loader call;
        with ``lock=True`` (or a lock timeout in seconds, default 30) callers in every process
        share one, through a Redis lock. A waiter that outlives the lock loads by itself. A
        loader exception reaches every waiter and nothing is stored.

        ``early_refresh``: seconds before expiry from which one caller refreshes in the
        background while everyone keeps the current value (or ``"xfetch"``: probabilistic,
        from the measured loader time). ``stale_if_error``: seconds past expiry during which
        the old value is returned when the loader raises. ``ttl_jitter``: a fraction by which
        the TTL is randomly shortened (the cache's own by default). ``tags``: labels for
        ``invalidate_tags``. ``model``: the type to restore a typed value as.
        """
        if not callable(loader):
            raise ValidationError("loader must be a callable returning an awaitable", {"type": type(loader).__name__})
        lease = _lock_seconds(lock)
        if early_refresh != XFETCH:
            early_refresh = _check_seconds("early_refresh", early_refresh)
        stale = _check_seconds("stale_if_error", stale_if_error)
        tag_list = check_tags(tags)
        jitter = check_jitter(ttl_jitter)
        stored = await self._get_stored(key)
        stale_value: Any = MISS
        if stored is not MISS:
            if type(stored) is _JSON_DICT and ENTRY in stored:
                fresh_until = stored.get("f", 0)
                now = time.time()
                if now < fresh_until:
                    if early_refresh is not None and _refresh_due(now, fresh_until, stored.get("d", 0.0), early_refresh):
                        # A refresh: only an entry fresher than this one (another process's
                        # refresh) counts as already loaded.
                        self._start_flight(key, loader, ttl, lease, early_refresh, stale, tag_list, jitter, MISS, fresh_until)
                    return typed.decode(stored.get("v"), model)  # type: ignore[no-any-return]
                stale_value = stored.get("v")
            else:
                return unwrap(stored, model)  # type: ignore[no-any-return]
        value = await self._await_flight(key, loader, ttl, lease, early_refresh, stale, tag_list, jitter, stale_value, 0.0)
        return typed.decode(value, model) if model is not None else value  # type: ignore[no-any-return]

    async def _await_flight(self, key: str, *settings: Any) -> Any:
        for _ in range(_FLIGHT_RETRIES):
            flight = self._start_flight(key, *settings)
            try:
                # A waiter's cancellation never cancels the load the others wait for.
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                # Task.cancelling() (3.11+) tells our own cancellation from the load's.
                cancelling = getattr(asyncio.current_task(), "cancelling", None)
                if not flight.cancelled() or (cancelling is not None and cancelling()):
                    raise
                # The load itself was cancelled (not us): start another.
        return await self._load(key, *settings)

    def _start_flight(self, key: str, *settings: Any) -> asyncio.Task[Any]:
        loop = asyncio.get_running_loop()
        flights = _FLIGHTS
        slot = (id(loop), self._flight_scope(), key)
        flight = flights.get(slot)
        if flight is not None and not flight.done():
            return flight
        flight = loop.create_task(self._load(key, *settings))
        flights[slot] = flight
        flight.add_done_callback(functools.partial(_forget_flight, flights, slot))
        return flight

    async def _load(
        self,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: int | None,
        lease: float | None,
        early_refresh: float | str | None,
        stale: float | None,
        tags: list[str],
        jitter: float | None,
        stale_value: Any,
        newer_than: float,
    ) -> Any:
        token: str | bool | None = True
        if lease is not None:
            token, found = await self._take_lock(key, lease, newer_than)
            if found is not MISS:
                return found
        try:
            started = time.perf_counter()
            try:
                value = await loader()
            except Exception:
                if stale_value is not MISS:
                    logger.warning("Loader failed; serving the stale value within stale_if_error", exc_info=True)
                    return stale_value
                raise
            took = time.perf_counter() - started
            await self._store_loaded(key, value, ttl, early_refresh, stale, tags, jitter, took)
            return value
        finally:
            if isinstance(token, str):
                await self._unlock(key, token)

    async def _take_lock(self, key: str, lease: float, newer_than: float) -> tuple[str | bool | None, Any]:
        """The lock (or True to load without it), or the value another process stored while
        we waited (for a refresh, only an entry fresher than ``newer_than``). Waits at most the
        lease: a holder that died frees the lock by then."""
        deadline = time.monotonic() + lease
        pause = _LOCK_POLL_FIRST
        while True:
            try:
                token = await self._lock(key, lease)
            except InfrastructureError:
                return True, MISS  # Redis is away: this process's single-flight still holds
            if token is not None:
                if isinstance(token, str):
                    found = await self._fresh(key, newer_than)  # stored by the holder we just succeeded
                    if found is not MISS:
                        await self._unlock(key, token)
                        return None, found
                return token, MISS
            if time.monotonic() >= deadline:
                return True, MISS
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, _LOCK_POLL_MAX)
            found = await self._fresh(key, newer_than)
            if found is not MISS:
                return None, found

    async def _fresh(self, key: str, newer_than: float) -> Any:
        """The value stored under ``key`` if it is fresh and, when it carries its freshness,
        fresher than ``newer_than`` (the entry a refresh replaces is not a reason to skip it)."""
        stored = await self._get_stored(key)
        if stored is MISS:
            return MISS
        if type(stored) is _JSON_DICT and ENTRY in stored:
            fresh_until = stored.get("f", 0)
            return stored.get("v") if time.time() < fresh_until and fresh_until > newer_than else MISS
        return unwrap(stored)

    async def _store_loaded(
        self,
        key: str,
        value: Any,
        ttl: int | None,
        early_refresh: float | str | None,
        stale: float | None,
        tags: list[str],
        jitter: float | None,
        took: float,
    ) -> None:
        default_ttl = self._ttl_for(key)
        ttl = jittered(ttl, default_ttl, jitter if jitter is not None else self.ttl_jitter)
        if early_refresh is None and stale is None:
            await self._store(key, value, ttl, tags)
            return
        lifetime = default_ttl if ttl is None else ttl
        envelope = {ENTRY: 1, "v": json_ready(value), "f": time.time() + lifetime, "d": round(took, 6)}
        await self._store_envelope(key, envelope, lifetime + math.ceil(stale or 0), tags)


def json_ready(value: Any) -> Any:
    """``value`` as the native JSON check accepts it, for a write that cannot retry: typed-encoded
    when it uses a reserved key or holds a type JSON lacks, else as is. (``set`` tries the
    native write first and encodes only on refusal; batches and envelopes check here.)"""
    if reserved(value):
        return storable(value)
    try:
        json_dumps(value)
        return value
    except ValidationError as error:
        if is_type_refusal(error):
            return storable(value)
        raise


def _refresh_due(now: float, fresh_until: float, took: float, early_refresh: float | str) -> bool:
    if early_refresh == XFETCH:
        # XFetch (Vattani et al.): refresh when now - delta * beta * ln(U) passes expiry.
        return now - max(took, 0.001) * math.log(random.random() or 1e-12) >= fresh_until
    return now >= fresh_until - float(early_refresh)


def _forget_flight(
    flights: dict[tuple[int, Any, str], asyncio.Task[Any]], slot: tuple[int, Any, str], flight: asyncio.Task[Any]
) -> None:
    if flights.get(slot) is flight:
        del flights[slot]
    if not flight.cancelled():
        # Retrieved, so a background refresh nobody awaited never logs "exception never
        # retrieved"; its failure is logged here instead (the current value keeps serving).
        error = flight.exception()
        if error is not None:
            logger.debug("A cache load failed: %s", type(error).__name__)


_PROCESS_NAMING_KEY = os.urandom(32)


# -- @cached ------------------------------------------------------------------------------------


class CachedFunction(Generic[P, R]):
    """An ``async def`` function whose results are cached; call it as the function."""

    def __init__(
        self,
        function: Callable[P, Awaitable[R]],
        cache: CacheAside,
        ttl: int | None,
        key: Callable[..., str] | None,
        lock: bool | float,
        early_refresh: float | str | None,
        stale_if_error: float | None,
        tags: Iterable[str],
        ttl_jitter: float | None,
    ) -> None:
        if not inspect.iscoroutinefunction(function):
            raise ValidationError("@cached decorates async def functions", {"function": getattr(function, "__qualname__", "?")})
        self.__wrapped__ = function
        functools.update_wrapper(self, function)
        self.cache = cache
        self.ttl = ttl
        self._key = key
        self._lock = lock
        self._early_refresh = early_refresh
        self._stale = stale_if_error
        self._tags = check_tags(tags)
        self._jitter = check_jitter(ttl_jitter)
        self._signature = inspect.signature(function)
        self._name = f"{function.__module__}.{function.__qualname__}"
        self._model = typed.model_from_annotation(function)

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key of one call: ``key(*args, **kwargs)`` when given, else a digest of the
        function's qualified name and its arguments, bound to the signature and canonically
        encoded (so ``f(1, b=2)`` and ``f(a=1, b=2)`` share an entry, and no argument's text
        reaches Redis)."""
        if self._key is not None:
            chosen = self._key(*args, **kwargs)
            if not isinstance(chosen, str):
                raise ValidationError("key= must return a str", {"type": type(chosen).__name__})
            return chosen
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = _canonical(dict(bound.arguments))
        return "cached:" + self.cache._digest(self._name + "\u0000" + arguments)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = self.key_for(*args, **kwargs)
        return await self.cache.get_or_set(
            key,
            functools.partial(self.__wrapped__, *args, **kwargs),
            self.ttl,
            lock=self._lock,
            early_refresh=self._early_refresh,
            stale_if_error=self._stale,
            tags=self._tags,
            ttl_jitter=self._jitter,
            model=self._model,
        )

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Deletes the cached result of this call; whether there was one."""
        return bool(await self.cache.delete(self.key_for(*args, **kwargs)))  # type: ignore[attr-defined]


def _canonical(arguments: dict[str, Any]) -> str:
    encoded = json_ready(arguments)
    return json_dumps(_sorted(encoded)).decode()


def _sorted(node: Any) -> Any:
    if type(node) is _JSON_DICT:
        return {k: _sorted(node[k]) for k in sorted(node)}
    if type(node) is _JSON_LIST:
        return [_sorted(item) for item in node]
    return node


def cached(
    cache: CacheAside,
    ttl: int | None = None,
    key: Callable[..., str] | None = None,
    lock: bool | float = False,
    early_refresh: float | str | None = None,
    tags: Iterable[str] = (),
    *,
    stale_if_error: float | None = None,
    ttl_jitter: float | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]:
    """Caches an ``async def`` function's results in ``cache`` through ``get_or_set`` (same
    options). The wrapped function keeps its signature for type checkers, gets
    ``.invalidate(*args, **kwargs)`` and ``.key_for(...)``, and restores typed results
    (pydantic models, dataclasses, ...) from its return annotation."""

    def decorate(function: Callable[P, Awaitable[R]]) -> CachedFunction[P, R]:
        return CachedFunction(function, cache, ttl, key, lock, early_refresh, stale_if_error, tags, ttl_jitter)

    return decorate
