"""The ASGI app tests/test_coherence.py runs under ``uvicorn --workers 2``: a key-value face
over GenericRedisCache, so a client can write through one worker and read through the other.

Configured like examples/app.py: from the environment only (REDIS_URL, REDIS_PASSWORD,
REDIS_ENCRYPTION_KEY, REDIS_TLS_CA_PATH), never from argv. Every answer carries the worker's
pid, so the test can show that both workers served.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Depends, FastAPI

from secure_redis import GenericRedisCache
from secure_redis.fastapi import get_cache, secure_redis_lifespan

# Each worker process imports this module and gets a cache (and an L1) of its own: the
# setting in which issue 13 measured stale reads.
app = FastAPI(lifespan=secure_redis_lifespan(cache_factory=lambda: GenericRedisCache.create_secure(),
                                             require_redis=True))


@app.put("/kv/{key}")
async def put(key: str, value: dict[str, Any], cache: GenericRedisCache = Depends(get_cache)) -> dict[str, Any]:
    await cache.set(key, value)
    return {"pid": os.getpid()}


@app.delete("/kv/{key}")
async def delete(key: str, cache: GenericRedisCache = Depends(get_cache)) -> dict[str, Any]:
    return {"pid": os.getpid(), "deleted": await cache.delete(key)}


@app.get("/kv/{key}")
async def get(key: str, cache: GenericRedisCache = Depends(get_cache)) -> dict[str, Any]:
    return {"pid": os.getpid(), "value": await cache.get(key)}


@app.get("/l1")
async def l1(cache: GenericRedisCache = Depends(get_cache)) -> dict[str, Any]:
    """How many reads this worker answered from its L1."""
    return {"pid": os.getpid(), "l1_hits": (await cache.get_cache_stats())["performance"]["l1_hits"]}
