"""FastAPI integration: validate at startup, one cache per app, a dependency, a health view.

    from fastapi import FastAPI, Depends
    from secure_redis.fastapi import secure_redis_lifespan, get_cache, cache_health

    app = FastAPI(lifespan=secure_redis_lifespan())

    @app.get("/health/cache")
    async def health(cache=Depends(get_cache)):
        return await cache_health(cache)

    @app.get("/answer")  # one tenant's entries, under a key of its own
    async def answer(cache=Depends(scoped_cache(tenant_of_request))): ...

If validation fails, the lifespan raises ConfigurationError before the app serves a single
request, and the message lists every problem with its fix.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Callable, cast

from .cache_control import RequestCacheView, directives
from .exceptions import ErrorCode, InfrastructureError
from .generic import GenericRedisCache
from .validation import validate_redis_security

try:  # FastAPI is an optional extra: `pip install secure_redis[fastapi]`
    from fastapi import Depends, FastAPI, Request
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("secure_redis.fastapi needs FastAPI: pip install 'secure_redis[fastapi]'") from error

logger = logging.getLogger("secure_redis.fastapi")

STATE_CACHE = "secure_redis_cache"
STATE_VALIDATION = "secure_redis_validation"
STATE_CACHE_CONTROL = "secure_redis_cache_control"


def secure_redis_lifespan(
    *,
    redis_url: str | None = None,
    cache_factory: Callable[[], GenericRedisCache] | None = None,
    test_connectivity: bool = False,
    require_redis: bool = False,
    honor_cache_control: bool = False,
    **cache_kwargs: Any,
) -> Callable[[FastAPI], Any]:
    """A FastAPI ``lifespan``: validate, create and connect the cache, close it on shutdown.

    ``require_redis=True`` refuses to start while Redis is unreachable; by default the app
    starts degraded: every call answers at once, reads as misses (the L1 tier answers only
    while Redis's invalidations reach it, so it never serves what another worker replaced)
    until Redis answers. For a memory fallback that keeps answering, use ``CacheManager``.
    Security errors (a wrong password, an untrusted certificate) always stop startup.

    ``honor_cache_control=True`` lets requests carry ``Cache-Control: no-cache`` (skip the
    cache read, store the fresh answer) or ``no-store`` (skip read and write): ``get_cache``
    then hands such a request a view of the cache that does so (secure_redis.cache_control;
    enable it only where clients may make the app pay for fresh model calls)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        validation = validate_redis_security(redis_url, test_connectivity=test_connectivity)
        cache = cache_factory() if cache_factory else GenericRedisCache.create_secure(redis_url, **cache_kwargs)
        connected = await cache.connect()
        if not connected:
            if require_redis:
                raise InfrastructureError(
                    f"Redis at {cache.redis_url} is unreachable and require_redis=True",
                    {"redis_url": cache.redis_url, "error_type": ErrorCode.REDIS_UNREACHABLE.value},
                )
            logger.warning("Redis at %s is unreachable; reads miss until it answers", cache.redis_url)
        setattr(app.state, STATE_CACHE, cache)
        setattr(app.state, STATE_VALIDATION, validation)
        setattr(app.state, STATE_CACHE_CONTROL, honor_cache_control)
        try:
            yield
        finally:
            await cache.disconnect()

    return lifespan


def _app_cache(request: Request) -> GenericRedisCache:
    cache: GenericRedisCache | None = getattr(request.app.state, STATE_CACHE, None)
    if cache is None:
        raise InfrastructureError(
            "No secure_redis cache on app.state: create the app with FastAPI(lifespan=secure_redis_lifespan())",
            {"error_type": ErrorCode.CACHE_NOT_INITIALIZED.value},
        )
    return cache


def _honouring_cache_control(request: Request, cache: GenericRedisCache) -> GenericRedisCache:
    if getattr(request.app.state, STATE_CACHE_CONTROL, False):
        no_cache, no_store = directives(request.headers.get("cache-control"))
        if no_cache or no_store:
            # Duck-typed as the cache: every other attribute passes through.
            return cast(GenericRedisCache, RequestCacheView(cache, store=not no_store))
    return cache


def get_cache(request: Request) -> GenericRedisCache:
    """FastAPI dependency: the cache the lifespan created (for a request with
    ``Cache-Control: no-cache``/``no-store``, when the app honours them, a view of it that
    skips the read, and with ``no-store`` the write)."""
    return _honouring_cache_control(request, _app_cache(request))


def scoped_cache(tenant: Callable[..., Any]) -> Callable[..., GenericRedisCache]:
    """A dependency that hands each request the cache scoped to its tenant (``cache.scope``):
    ``tenant`` is a FastAPI dependency of your own (sync or async, with its own parameters:
    a header, the authenticated user) returning the tenant's name::

        async def tenant_of(user: User = Depends(current_user)) -> str:
            return user.organisation_id

        @app.get("/answer")
        async def answer(q: str, cache: GenericRedisCache = Depends(scoped_cache(tenant_of))): ...

    Building the view costs no I/O; ``Cache-Control`` is honoured as by ``get_cache``."""

    def dependency(request: Request, scope: str = Depends(tenant)) -> GenericRedisCache:
        return _honouring_cache_control(request, _app_cache(request).scope(scope))

    return dependency


async def cache_health(cache: GenericRedisCache) -> dict[str, Any]:
    """Cache type, connection and security status, without secrets."""
    reachable = await cache.ping()
    status = cache.get_security_status()
    configuration, connection = status["configuration"], status["connection"]
    return {
        "cache_type": type(cache).__name__,
        "status": "healthy" if reachable else "degraded",
        "redis": {
            "connected": reachable,
            "url": cache.redis_url,
            "tls_version": connection.get("tls_version"),
            "reconnects": connection.get("reconnects"),
        },
        "fallback": None if reachable else "reads miss until Redis answers",
        "security": {
            "level": status["security_level"],
            "tls": configuration["tls_enabled"],
            "mutual_tls": configuration["mutual_tls"],
            "authentication": configuration["has_authentication"],
            "acl_user": configuration["acl_configured"],
            "encryption": configuration["encryption"],
        },
    }


def mount_metrics(app: FastAPI, path: str = "/metrics", *, registry: Any = None, refresh: bool = True) -> None:
    """Serves prometheus_client's text exposition of ``registry`` (default: its global one) at
    ``path`` (GET, left out of the OpenAPI schema). Each scrape first refreshes the Rust core's
    counters of every cache ``secure_redis.metrics.instrument`` put into that registry
    (``refresh=False`` skips that: the scrape then touches no connection). Needs the
    ``prometheus`` extra."""
    from fastapi import Response

    from .metrics import prometheus_exposition

    async def metrics() -> Response:
        body, content_type = await prometheus_exposition(registry, refresh=refresh)
        return Response(content=body, media_type=content_type)

    app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False)


__all__ = ["cache_health", "get_cache", "mount_metrics", "scoped_cache", "secure_redis_lifespan"]
