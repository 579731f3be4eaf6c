"""Cached LLM streams: ``AIResponseCache.stream(key, producer)``.

What it owns: replaying a stored response chunk by chunk, running one producer per key in a
process while every concurrent request follows the live stream, and storing the whole
response (sealed, like every value) only once the stream completed. A failed or abandoned
stream stores nothing.

The stored value is an ordinary cache value, ``{"secure_redis.stream": 1, "chunks": [...],
"offsets": [...]}`` (offsets: seconds from the first byte, for paced replay), so ``get`` of the
key returns it and ``delete``/``invalidate_*``/tags remove it like any entry.

Across processes: with ``lock=True`` a request in another process finding the stream under way
there (the loader lock of ``get_or_set`` is held) waits for the complete response and replays
it instead of calling the model again; only requests in the producing process follow it live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, cast

from ._native import json_dumps
from .aside import MISS
from .exceptions import InfrastructureError, ValidationError

if TYPE_CHECKING:
    from .ai import AIResponseCache

logger = logging.getLogger("secure_redis.cache")

RECORD = "secure_redis.stream"
_MAX_PACE_GAP = 1.0  # seconds: a paced replay never waits longer between two chunks
_LOCK_POLL = 0.05


class _Live:
    """One stream under way in this process: the chunks so far, and who follows them."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.offsets: list[float] = []
        self.done = False
        self.error: BaseException | None = None
        self.followers = 0
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def add(self, chunk: Any, offset: float) -> None:
        self.chunks.append(chunk)
        self.offsets.append(offset)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.done = True
        self.error = error
        self._wake()

    async def follow(self) -> AsyncIterator[Any]:
        sent = 0
        while True:
            while sent < len(self.chunks):
                yield self.chunks[sent]
                sent += 1
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            await self._changed.wait()


_LIVE: dict[tuple[int, Any, str], _Live] = {}


def is_record(value: Any) -> bool:
    if type(value) is not dict:
        return False
    record = cast("dict[str, Any]", value)
    return record.get(RECORD) == 1 and type(record.get("chunks")) is list


async def replay(record: dict[str, Any], pace: bool | float | None) -> AsyncIterator[Any]:
    chunks: list[Any] = record["chunks"]
    offsets: list[Any] = record.get("offsets") or []
    previous = 0.0
    for index, chunk in enumerate(chunks):
        if pace is True and index < len(offsets) and isinstance(offsets[index], (int, float)):
            gap = min(max(0.0, float(offsets[index]) - previous), _MAX_PACE_GAP)
            previous = float(offsets[index])
            if gap:
                await asyncio.sleep(gap)
        elif pace not in (None, False, True) and index:
            await asyncio.sleep(float(pace))
        yield chunk


def check_pace(pace: bool | float | None) -> None:
    if pace is None or isinstance(pace, bool):
        return
    if not isinstance(pace, (int, float)) or not 0 <= pace <= _MAX_PACE_GAP:
        raise ValidationError(f"pace must be True, False or seconds between chunks (0 to {_MAX_PACE_GAP})", {"pace": repr(pace)})


async def stream(
    cache: AIResponseCache,
    key: str,
    producer: Callable[[], AsyncIterator[Any]],
    ttl: int | None,
    pace: bool | float | None,
    lock: bool | float,
    read: bool,
    store: bool,
) -> AsyncIterator[Any]:
    check_pace(pace)
    if not callable(producer):
        raise ValidationError("producer must be a callable returning an async iterator", {"type": type(producer).__name__})
    if read:
        stored = await cache._get_stored(key)
        if stored is not MISS and is_record(stored):
            async for chunk in replay(stored, pace):
                yield chunk
            return
    slot = (id(asyncio.get_running_loop()), cache._flight_scope(), key)
    live = _LIVE.get(slot) if read else None
    if live is None:
        token: str | bool | None = True
        if lock and read:
            token, record = await _wait_for_other_process(cache, key, 30.0 if lock is True else float(lock))
            if record is not None:
                async for chunk in replay(record, pace):
                    yield chunk
                return
        live = _Live()
        if read:
            _LIVE[slot] = live
        live.task = asyncio.get_running_loop().create_task(_produce(cache, key, producer, ttl, live, slot, token, store))
    live.followers += 1
    try:
        async for chunk in live.follow():
            yield chunk
    finally:
        live.followers -= 1
        if live.followers == 0 and not live.done and live.task is not None:
            live.task.cancel()  # nobody reads it any more: stop paying for tokens, store nothing


async def _produce(
    cache: AIResponseCache,
    key: str,
    producer: Callable[[], AsyncIterator[Any]],
    ttl: int | None,
    live: _Live,
    slot: tuple[int, Any, str],
    token: str | bool | None,
    store: bool,
) -> None:
    started: float | None = None  # offsets count from the first chunk: a replay never waits for the model's think time
    try:
        async for chunk in producer():
            json_dumps(chunk)  # refuses what the cache cannot store, at the chunk that holds it
            now = time.monotonic()
            if started is None:
                started = now
            live.add(chunk, round(now - started, 4))
        if store:
            record = {RECORD: 1, "chunks": live.chunks, "offsets": live.offsets}
            try:
                await cache.set(key, record, ttl)
            except ValidationError as error:  # too large for the cache: served, not stored
                logger.warning("A completed stream was not cached: %s", error.message)
        live.finish()
    except BaseException as error:
        live.finish(error if not isinstance(error, asyncio.CancelledError) else asyncio.CancelledError())
        if isinstance(error, asyncio.CancelledError):
            raise
    finally:
        if _LIVE.get(slot) is live:
            del _LIVE[slot]
        if isinstance(token, str):
            await cache._unlock(key, token)


async def _wait_for_other_process(
    cache: AIResponseCache, key: str, lease: float
) -> tuple[str | bool | None, dict[str, Any] | None]:
    """The loader lock of ``key`` (or True to stream without one), or the record another
    process stored while we waited for it."""
    deadline = time.monotonic() + lease
    while True:
        try:
            token = await cache._lock(key, lease)
        except InfrastructureError:
            return True, None
        if isinstance(token, str):
            stored = await cache._get_stored(key)  # finished just before we took the lock?
            if stored is not MISS and is_record(stored):
                await cache._unlock(key, token)
                return None, stored
        if token is not None:
            return token, None
        if time.monotonic() >= deadline:
            return True, None
        await asyncio.sleep(_LOCK_POLL)
        stored = await cache._get_stored(key)
        if stored is not MISS and is_record(stored):
            return None, stored
