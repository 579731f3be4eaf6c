"""The HTTP ``Cache-Control`` request directives a FastAPI app may let clients use on our cache.

``no-cache``: skip the read, call the model, store the fresh answer (a refresh).
``no-store``: skip the read and the write (nothing about this request reaches Redis).

Off unless the app enables it (``secure_redis_lifespan(honor_cache_control=True)``): any client
that sends ``no-cache`` makes the app pay for a model call, so an app exposed to the internet
should enable it only behind authentication or rate limiting.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Awaitable, Iterable, Mapping

from . import streams


def directives(header: str | None) -> tuple[bool, bool]:
    """(no_cache, no_store) of a Cache-Control header value; directive names are
    case-insensitive and may carry arguments (``no-cache="x"`` still means no-cache)."""
    if not header:
        return False, False
    names = {part.split("=", 1)[0].strip().lower() for part in header.split(",")}
    return "no-cache" in names, "no-store" in names


class RequestCacheView:
    """A cache as one request may use it: reads skipped, and with ``no-store`` writes too.
    Everything else is the cache's own (attributes and methods pass through)."""

    def __init__(self, cache: Any, *, store: bool) -> None:
        self._cache = cache
        self._store_writes = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    def __repr__(self) -> str:
        return f"RequestCacheView({self._cache!r}, read=False, store={self._store_writes})"

    def scope(self, name: str) -> "RequestCacheView":
        """The tenant scope's view, under the same directives as this request."""
        return RequestCacheView(self._cache.scope(name), store=self._store_writes)

    async def get(self, key: str, model: Any = None) -> Any | None:
        return None

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return {}

    async def exists(self, key: str) -> bool:
        return False

    async def set(self, key: str, value: Any, ttl: int | None = None, **options: Any) -> None:
        if self._store_writes:
            await self._cache.set(key, value, ttl, **options)

    async def set_many(self, mapping: Mapping[str, Any], ttl: int | None = None) -> None:
        if self._store_writes:
            await self._cache.set_many(mapping, ttl)

    async def get_or_set(
        self,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: int | None = None,
        *,
        tags: Iterable[str] = (),
        ttl_jitter: float | None = None,
        **ignored: Any,
    ) -> Any:
        """Always ``loader()``; stored (with its tags) unless ``no-store``. Lock and refresh
        options do not apply: the client asked for a fresh answer for itself."""
        value = await loader()
        if self._store_writes:
            await self._cache.set(key, value, ttl, tags=tags, ttl_jitter=ttl_jitter)
        return value

    def stream(
        self,
        key: str,
        producer: Callable[[], AsyncIterator[Any]],
        ttl: int | None = None,
        *,
        pace: bool | float | None = None,
        lock: bool | float = False,
    ) -> AsyncIterator[Any]:
        return streams.stream(self._cache, key, producer, ttl, pace, False, read=False, store=self._store_writes)
