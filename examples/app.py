"""A small FastAPI backend that caches AI-style responses through secure_redis.

Configuration comes from the environment (.env.secure written by scripts/setup-secure-redis.sh).
Startup validates the Redis security configuration and refuses to start when it is insecure.

    uvicorn examples.app:app            # after: set -a; . ./.env.secure; set +a  (or use examples/demo.py)
"""

from __future__ import annotations

import asyncio
import time

from typing import AsyncIterator

from fastapi import Depends, FastAPI, Header
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from secure_redis import AIResponseCache
from secure_redis.fastapi import cache_health, get_cache, scoped_cache, secure_redis_lifespan

MODEL_LATENCY_SECONDS = 0.4
MODEL_CALLS = {"count": 0}  # how often the "model" ran: /answer's stampede protection shows here


async def fake_model(text: str, operation: str) -> dict:
    """Stands in for an LLM call: slow, and the reason the cache exists."""
    MODEL_CALLS["count"] += 1
    await asyncio.sleep(MODEL_LATENCY_SECONDS)
    words = text.split()
    return {
        "operation": operation,
        "result": f"{operation} of {len(words)} words: " + " ".join(words[:8]) + ("..." if len(words) > 8 else ""),
        "model": "demo-llm-1",
    }


app = FastAPI(
    title="secure_redis example",
    # honor_cache_control: a request may send Cache-Control: no-cache (fresh answer, stored) or
    # no-store (fresh answer, nothing stored). Fine for a demo; behind auth in a real app.
    lifespan=secure_redis_lifespan(
        cache_factory=lambda: AIResponseCache.create_secure(), test_connectivity=True, honor_cache_control=True
    ),
)


class ProcessRequest(BaseModel):
    text: str
    operation: str = "summarize"
    options: dict = {}


@app.post("/process")
async def process(request: ProcessRequest, cache: AIResponseCache = Depends(get_cache)) -> dict:
    started = time.perf_counter()
    key = cache.build_key(request.text, request.operation, request.options)
    cached = await cache.get(key)
    if cached is None:
        cached = await fake_model(request.text, request.operation)
        await cache.set(key, cached)  # the operation's TTL applies
        source = "model"
    else:
        source = "cache"
    return {"source": source, "elapsed_ms": round((time.perf_counter() - started) * 1000, 2), **cached}


@app.post("/answer")
async def answer(request: ProcessRequest, cache: AIResponseCache = Depends(get_cache)) -> dict:
    """/process protected from stampedes: however many requests (in however many worker
    processes) ask for the same uncached prompt at once, the model runs once (lock=True); a hot
    answer is refreshed in the background a minute before it expires, and served for up to five
    minutes past expiry if the model is down. Tagged by operation for /answer/forget."""
    started = time.perf_counter()
    key = cache.build_key(request.text, request.operation, request.options)
    calls_before = MODEL_CALLS["count"]
    result = await cache.get_or_set(
        key,
        lambda: fake_model(request.text, request.operation),
        lock=True,
        early_refresh=60,
        stale_if_error=300,
        tags=[f"operation:{request.operation}"],
    )
    source = "model" if MODEL_CALLS["count"] > calls_before else "cache"
    return {"source": source, "elapsed_ms": round((time.perf_counter() - started) * 1000, 2), **result}


STREAM_CHUNK_SECONDS = 0.05


async def fake_model_stream(text: str, operation: str) -> AsyncIterator[str]:
    """Stands in for a streaming LLM call: a chunk at a time, each after a pause."""
    MODEL_CALLS["count"] += 1
    words = (f"{operation} of {len(text.split())} words: " + " ".join(text.split()[:8])).split()
    for word in words:
        await asyncio.sleep(STREAM_CHUNK_SECONDS)
        yield word + " "


@app.post("/answer/stream")
async def answer_stream(request: ProcessRequest, cache: AIResponseCache = Depends(get_cache)) -> StreamingResponse:
    """The answer as Server-Sent Events, cached: the first request streams from the model and
    stores the whole answer when it completes; requests meanwhile follow the live stream (one
    model call); later ones replay the stored chunks, paced as they first came."""
    key = cache.build_key(request.text, request.operation, {**request.options, "stream": True})

    async def events() -> AsyncIterator[str]:
        async for chunk in cache.stream(key, lambda: fake_model_stream(request.text, request.operation), pace=True):
            yield f"data: {chunk}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@app.post("/answer/forget")
async def forget_operation(operation: str, cache: AIResponseCache = Depends(get_cache)) -> dict:
    """Drops every /answer response of one operation (a tag: no scan of the keyspace)."""
    return {"deleted": await cache.invalidate_tags([f"operation:{operation}"])}


@app.post("/process/forget")
async def forget(request: ProcessRequest, cache: AIResponseCache = Depends(get_cache)) -> dict:
    """Drops the cached response for this request, so the next /process asks the model again."""
    return {"deleted": await cache.delete(cache.build_key(request.text, request.operation, request.options))}


def tenant_of(x_tenant: str = Header(min_length=1, max_length=128)) -> str:
    """The tenant a request acts for. A real app takes it from the authenticated user, never
    from a header the client chooses; a header keeps the demo short."""
    return x_tenant


@app.post("/tenant/answer")
async def tenant_answer(request: ProcessRequest, cache: AIResponseCache = Depends(scoped_cache(tenant_of))) -> dict:
    """/process for one tenant: its answers are sealed under the tenant's own data key, and no
    other tenant's request is ever answered from them (docs/tenancy.md)."""
    key = cache.build_key(request.text, request.operation, request.options)
    calls_before = MODEL_CALLS["count"]
    result = await cache.get_or_set(key, lambda: fake_model(request.text, request.operation), lock=True)
    return {"source": "model" if MODEL_CALLS["count"] > calls_before else "cache", **result}


@app.post("/tenant/forget")
async def tenant_forget(tenant: str = Depends(tenant_of), cache: AIResponseCache = Depends(get_cache)) -> dict:
    """Crypto-shredding: the tenant's data key is destroyed, so every answer cached for it is
    unreadable in every worker at once; the entries are deleted in the background."""
    await cache.forget_scope(tenant)
    return {"forgotten": True}


@app.get("/health")
async def health(cache: AIResponseCache = Depends(get_cache)) -> dict:
    return await cache_health(cache)


@app.get("/cache/stats")
async def stats(cache: AIResponseCache = Depends(get_cache)) -> dict:
    full = await cache.get_cache_stats()
    return {
        "performance": full["performance"],
        "encryption": full["encryption"],
        "by_operation": cache.get_operation_performance()["operations"],
        "hit_ratio_percent": cache.get_cache_hit_ratio(),
    }
