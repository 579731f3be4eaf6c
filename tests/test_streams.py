"""Cached LLM streams (issue 18, part 3) against a real TLS Redis: AIResponseCache.stream on a
miss, a hit, a failure, an abandoned stream, live followers, another process's lock; the
Cache-Control request directives of the FastAPI dependency; examples/app.py's SSE endpoint."""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import secure_redis as sr
from secure_redis.cache_control import directives
from secure_redis.streams import RECORD


class Producer:
    """A streaming "model": counts calls, yields its chunks with a pause, optionally fails."""

    def __init__(self, chunks=("Hel", "lo, ", "wor", "ld"), pause: float = 0.02, fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.pause = pause
        self.fail_after = fail_after
        self.calls = 0
        self.produced: list[str] = []
        self.finished = False
        self.cancelled = False

    def __call__(self):
        self.calls += 1
        return self._run()

    async def _run(self):
        try:
            for index, chunk in enumerate(self.chunks):
                if self.fail_after is not None and index == self.fail_after:
                    raise RuntimeError("model stream broke")
                await asyncio.sleep(self.pause)
                self.produced.append(chunk)
                yield chunk
            self.finished = True
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def collect(iterator) -> list:
    return [chunk async for chunk in iterator]


async def test_miss_streams_as_it_arrives_then_a_hit_replays(ai, raw_redis) -> None:
    producer = Producer()
    key = ai.build_key("a prompt", "qa", {})
    seen_while_producing = []
    async for chunk in ai.stream(key, producer):
        seen_while_producing.append((chunk, producer.finished))
    assert [c for c, _ in seen_while_producing] == producer.chunks
    assert seen_while_producing[0][1] is False  # the first chunk reached us before the model finished
    stored = await ai.get(key)
    assert stored[RECORD] == 1 and stored["chunks"] == producer.chunks and len(stored["offsets"]) == 4
    assert raw_redis.get(key).startswith(b"gAAAAA")  # sealed like every value
    again = Producer(chunks=("never",))
    assert await collect(ai.stream(key, again)) == producer.chunks
    assert again.calls == 0


async def test_a_failed_stream_reaches_the_reader_and_stores_nothing(ai) -> None:
    key = ai.build_key("breaks", "qa", {})
    got = []
    with pytest.raises(RuntimeError, match="model stream broke"):
        async for chunk in ai.stream(key, Producer(fail_after=2)):
            got.append(chunk)
    assert got == ["Hel", "lo, "]
    assert await ai.get(key) is None
    assert await collect(ai.stream(key, Producer())) == ["Hel", "lo, ", "wor", "ld"]


async def test_an_abandoned_stream_cancels_the_producer_and_stores_nothing(ai) -> None:
    key = ai.build_key("abandoned", "qa", {})
    producer = Producer(pause=0.05)
    async for _chunk in ai.stream(key, producer):
        break  # the client went away after the first chunk
    deadline = time.monotonic() + 5
    while not producer.cancelled and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert producer.cancelled and not producer.finished
    assert await ai.get(key) is None


async def test_concurrent_requests_follow_the_live_stream(ai) -> None:
    key = ai.build_key("popular", "qa", {})
    producer = Producer(pause=0.05)
    first = asyncio.create_task(collect(ai.stream(key, producer)))
    while not producer.produced:  # bounded by the producer's own length
        await asyncio.sleep(0.005)
    late = [asyncio.create_task(collect(ai.stream(key, producer))) for _ in range(5)]
    results = await asyncio.wait_for(asyncio.gather(first, *late), 10)
    assert all(result == producer.chunks for result in results)  # late joiners get the start too
    assert producer.calls == 1


async def test_a_follower_leaving_does_not_stop_the_others(ai) -> None:
    key = ai.build_key("one leaves", "qa", {})
    producer = Producer(pause=0.03)
    stays = asyncio.create_task(collect(ai.stream(key, producer)))
    async for _chunk in ai.stream(key, producer):
        break
    assert await asyncio.wait_for(stays, 10) == producer.chunks
    assert (await ai.get(key))["chunks"] == producer.chunks


async def test_chunks_the_cache_cannot_store_are_refused_at_that_chunk(ai) -> None:
    key = ai.build_key("bad chunk", "qa", {})
    got = []
    with pytest.raises(sr.ValidationError):
        async for chunk in ai.stream(key, Producer(chunks=("ok", {1, 2}))):
            got.append(chunk)
    assert got == ["ok"] and await ai.get(key) is None


async def test_paced_replay_keeps_the_gaps(ai) -> None:
    key = ai.build_key("paced", "qa", {})
    await collect(ai.stream(key, Producer(pause=0.1)))
    started = time.monotonic()
    await collect(ai.stream(key, Producer(), pace=True))
    assert time.monotonic() - started >= 0.25  # three gaps of about 0.1 s (a lower bound only)
    with pytest.raises(sr.ValidationError):
        await collect(ai.stream(key, Producer(), pace=-1))


async def test_another_process_waits_for_the_stored_stream_with_lock(redis_server, config, raw_redis) -> None:
    """Two caches with their own connections stand for two worker processes: with lock=True the
    second does not call the model; it replays what the first stored."""
    raw_redis.flushdb()
    one = sr.AIResponseCache(redis_url=redis_server.url, security_config=config, share_connection=False)
    two = sr.AIResponseCache(redis_url=redis_server.url, security_config=config, share_connection=False)
    await one.connect()
    await two.connect()
    try:
        key = one.build_key("shared prompt", "qa", {})
        first, second = Producer(pause=0.05), Producer(chunks=("other",))
        streaming = asyncio.create_task(collect(one.stream(key, first, lock=True)))
        while not first.produced:
            await asyncio.sleep(0.005)
        assert await asyncio.wait_for(collect(two.stream(key, second, lock=True)), 10) == first.chunks
        assert await streaming == first.chunks
        assert second.calls == 0
        assert not raw_redis.keys("secure_redis:lock:*")  # released
    finally:
        raw_redis.flushdb()
        await one.disconnect()
        await two.disconnect()


def test_cache_control_directives() -> None:
    assert directives(None) == (False, False)
    assert directives("no-cache") == (True, False)
    assert directives("max-age=0, No-Store") == (False, True)
    assert directives('no-cache="set-cookie", no-store') == (True, True)
    assert directives("no-cachex") == (False, False)


# -- the example app over HTTP ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def example(monkeypatch, redis_server, pki, encryption_key, password):
    for name in ("ENFORCE_AUTH", "REDIS_INSECURE_ALLOW_PLAINTEXT", "REDIS_TLS_MIN_VERSION", "REDIS_ACL_USERNAME",
                 "REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "ENVIRONMENT": "development",
        "REDIS_URL": redis_server.url,
        "REDIS_PASSWORD": password,
        "REDIS_ENCRYPTION_KEY": encryption_key,
        "REDIS_TLS_CA_PATH": str(pki.ca_cert),
    }.items():
        monkeypatch.setenv(name, value)
    sys.path.insert(0, str(ROOT))
    try:
        module = importlib.import_module("examples.app")
    finally:
        sys.path.remove(str(ROOT))
    return module


def sse(client, body, headers=None) -> list[str]:
    with client.stream("POST", "/answer/stream", json=body, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def test_streaming_endpoint_and_cache_control_over_http(example, raw_redis) -> None:
    raw_redis.flushdb()
    calls = example.MODEL_CALLS
    body = {"text": "stream me a short answer please", "operation": "qa"}
    with TestClient(example.app) as client:
        before = calls["count"]
        first = sse(client, body)
        assert first[-1] == "[DONE]" and len(first) > 3 and calls["count"] == before + 1
        assert sse(client, body) == first and calls["count"] == before + 1  # replayed from the cache
        stored = raw_redis.keys("ai_cache:*")
        assert len(stored) == 1
        # no-store: the model answers, nothing is read or written
        raw_redis.delete(*stored)
        assert sse(client, body, {"Cache-Control": "no-store"}) == first and calls["count"] == before + 2
        assert raw_redis.keys("ai_cache:*") == []
        # no-cache: the model answers and the fresh answer is stored
        sse(client, body)  # stored again
        assert sse(client, body, {"Cache-Control": "no-cache"}) == first and calls["count"] == before + 4
        assert len(raw_redis.keys("ai_cache:*")) == 1
        assert sse(client, body) == first and calls["count"] == before + 4
        # the same directives on the JSON endpoint
        answer = {"text": "plain answer", "operation": "qa"}
        client.post("/answer", json=answer)
        assert client.post("/answer", json=answer).json()["source"] == "cache"
        assert client.post("/answer", json=answer, headers={"Cache-Control": "no-cache"}).json()["source"] == "model"
    raw_redis.flushdb()


def test_cache_control_is_ignored_unless_the_app_enables_it(redis_server, config, monkeypatch, raw_redis, pki,
                                                             encryption_key, password) -> None:
    from fastapi import Depends, FastAPI

    from secure_redis.fastapi import get_cache, secure_redis_lifespan

    for name, value in {"ENVIRONMENT": "development", "REDIS_URL": redis_server.url, "REDIS_PASSWORD": password,
                        "REDIS_ENCRYPTION_KEY": encryption_key, "REDIS_TLS_CA_PATH": str(pki.ca_cert)}.items():
        monkeypatch.setenv(name, value)
    app = FastAPI(lifespan=secure_redis_lifespan())

    @app.get("/value")
    async def value(cache=Depends(get_cache)) -> dict:
        return {"value": await cache.get("cc:key"), "view": type(cache).__name__}

    raw_redis.flushdb()
    @app.put("/value")
    async def put(cache=Depends(get_cache)) -> dict:
        await cache.set("cc:key", "stored")
        return {}

    with TestClient(app) as client:
        client.put("/value")
        answer = client.get("/value", headers={"Cache-Control": "no-cache, no-store"}).json()
        assert answer == {"value": "stored", "view": "GenericRedisCache"}
    raw_redis.flushdb()


async def test_streams_in_tenant_scopes_stay_apart(ai, raw_redis) -> None:
    """A stream cached in one tenant's scope replays there only; the other tenant's request for
    the same prompt calls its model (docs/tenancy.md)."""
    acme, globex = ai.scope("acme"), ai.scope("globex")
    first = Producer()
    assert await collect(acme.stream(acme.build_key("a prompt", "qa", {}), first)) == first.chunks
    theirs = Producer(chunks=("their", " own"))
    assert await collect(globex.stream(globex.build_key("a prompt", "qa", {}), theirs)) == ["their", " own"]
    assert theirs.calls == 1
    again = Producer(chunks=("never",))
    assert await collect(acme.stream(acme.build_key("a prompt", "qa", {}), again)) == first.chunks
    assert again.calls == 0
    assert all(name.startswith(b"secure_redis:scope") for name in raw_redis.scan_iter())
