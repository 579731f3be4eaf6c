"""Cache-aside (issue 17) in one process against a real TLS Redis: get_or_set with
single-flight, loader errors, cancellation, early refresh, stale-if-error, TTL jitter, tags,
@cached and what lands in Redis. Several OS processes: tests/test_cache_aside_processes.py."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest

import secure_redis as sr
from secure_redis.manager import MEMORY

from conftest import make_config


class Loader:
    """An async loader that counts its calls, optionally slow, failing or blocking."""

    def __init__(self, value="loaded", delay: float = 0.0, error: BaseException | None = None) -> None:
        self.value = value
        self.delay = delay
        self.error = error
        self.calls = 0
        self.started = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def __call__(self):
        self.calls += 1
        self.started.set()
        if self.release is not None:
            await asyncio.wait_for(self.release.wait(), 10)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.value if not callable(self.value) else self.value(self.calls)


@pytest.fixture
async def memory():
    return sr.InMemoryCache()


@pytest.fixture
async def manager(redis_server, config, raw_redis):
    cache = sr.CacheManager(redis_server.url, security_config=config)
    await cache.connect()
    raw_redis.flushdb()
    yield cache
    raw_redis.flushdb()
    await cache.disconnect()


@pytest.fixture(params=["generic", "ai", "memory", "manager"])
def any_cache(request):
    return request.getfixturevalue({"generic": "cache"}.get(request.param, request.param))


# -- get_or_set: single-flight, errors, cancellation ---------------------------------------------


async def test_get_or_set_loads_once_then_hits(any_cache) -> None:
    loader = Loader({"answer": 42})
    assert await any_cache.get_or_set("aside:one", loader, ttl=60) == {"answer": 42}
    assert await any_cache.get_or_set("aside:one", loader, ttl=60) == {"answer": 42}
    assert loader.calls == 1
    assert await any_cache.get("aside:one") == {"answer": 42}


async def test_64_concurrent_misses_call_the_loader_once(any_cache) -> None:
    loader = Loader("v", delay=0.05)
    results = await asyncio.gather(*(any_cache.get_or_set("aside:herd", loader, ttl=60) for _ in range(64)))
    assert results == ["v"] * 64
    assert loader.calls == 1


async def test_caches_built_per_request_share_one_load(redis_server, config) -> None:
    """Apps build a cache per request (shared connection): the load is still shared."""
    loader = Loader("v", delay=0.05)
    caches = [sr.GenericRedisCache(redis_server.url, security_config=config) for _ in range(8)]
    try:
        for cache in caches:
            await cache.connect()
        await caches[0].delete("aside:per-request")
        results = await asyncio.gather(*(c.get_or_set("aside:per-request", loader, ttl=60) for c in caches))
        assert results == ["v"] * 8 and loader.calls == 1
    finally:
        await caches[0].delete("aside:per-request")
        for cache in caches:
            await cache.disconnect()


async def test_loader_error_reaches_every_waiter_and_nothing_is_cached(any_cache) -> None:
    loader = Loader(delay=0.05, error=RuntimeError("model down"))
    results = await asyncio.gather(
        *(any_cache.get_or_set("aside:fails", loader, ttl=60) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) and str(r) == "model down" for r in results)
    assert loader.calls == 1
    assert await any_cache.get("aside:fails") is None
    assert await any_cache.get_or_set("aside:fails", Loader("second"), ttl=60) == "second"


async def test_cancelling_a_waiter_does_not_cancel_the_load(any_cache) -> None:
    loader = Loader("v")
    loader.release = asyncio.Event()
    first = asyncio.create_task(any_cache.get_or_set("aside:cancel", loader, ttl=60))
    await asyncio.wait_for(loader.started.wait(), 5)
    second = asyncio.create_task(any_cache.get_or_set("aside:cancel", loader, ttl=60))
    await asyncio.sleep(0.01)
    first.cancel()  # the caller that started the load goes away
    with pytest.raises(asyncio.CancelledError):
        await first
    loader.release.set()
    assert await asyncio.wait_for(second, 5) == "v"
    assert loader.calls == 1
    assert await any_cache.get("aside:cancel") == "v"


async def test_a_cancelled_load_is_retried_by_its_waiters(cache) -> None:
    """The loading task itself cancelled (a shutdown, a timeout inside the loader): the waiters
    start another load instead of failing with someone else's cancellation."""
    outcomes = iter([asyncio.CancelledError(), None])

    async def loader():
        await asyncio.sleep(0.02)
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        return "second try"

    results = await asyncio.gather(*(cache.get_or_set("aside:load-cancelled", loader, ttl=60) for _ in range(5)))
    assert results == ["second try"] * 5


async def test_bad_arguments_are_refused(cache) -> None:
    with pytest.raises(sr.ValidationError):
        await cache.get_or_set("k", "not callable")  # type: ignore[arg-type]
    for bad in (dict(lock=-1), dict(early_refresh=0), dict(stale_if_error=float("inf")), dict(ttl_jitter=1.5), dict(tags="one")):
        with pytest.raises(sr.ValidationError):
            await cache.get_or_set("k", Loader(), 60, **bad)


# -- early refresh, stale-if-error, jitter --------------------------------------------------------


async def test_early_refresh_refreshes_in_the_background_and_never_goes_cold(cache, raw_redis) -> None:
    present_at_load: list[bool] = []

    async def loader():
        present_at_load.append(bool(raw_redis.exists("aside:hot")))
        await asyncio.sleep(0.2)
        return time.time()

    deadline = time.monotonic() + 4.0
    values = []
    while time.monotonic() < deadline and len(values) < 5000:
        values.append(await cache.get_or_set("aside:hot", loader, ttl=1, early_refresh=0.6))
        await asyncio.sleep(0.005)
    # Only the first load found the key absent: every later one was a refresh ahead of expiry.
    assert present_at_load[0] is False
    assert len(present_at_load) >= 3 and all(present_at_load[1:])
    assert len(set(values)) == len(present_at_load)  # each refresh's value was served


async def test_early_refresh_with_the_lock_still_refreshes_before_expiry(cache, raw_redis) -> None:
    """The refresh takes the loader lock and must not take the entry it replaces for a load
    another process already finished (it did: with lock=True every load was cold)."""
    present_at_load: list[bool] = []

    async def loader():
        present_at_load.append(bool(raw_redis.exists("aside:hot-locked")))
        await asyncio.sleep(0.2)
        return time.time()

    deadline = time.monotonic() + 3.5
    calls = 0
    while time.monotonic() < deadline and calls < 5000:
        await cache.get_or_set("aside:hot-locked", loader, ttl=1, early_refresh=0.6, lock=True)
        calls += 1
        await asyncio.sleep(0.005)
    assert present_at_load[0] is False
    assert len(present_at_load) >= 3 and all(present_at_load[1:])


async def test_xfetch_refreshes_before_expiry(cache, raw_redis) -> None:
    present_at_load: list[bool] = []

    async def loader():
        present_at_load.append(bool(raw_redis.exists("aside:xfetch")))
        await asyncio.sleep(0.3)
        return "v"

    deadline = time.monotonic() + 3.5
    calls = 0
    while time.monotonic() < deadline and calls < 5000:
        await cache.get_or_set("aside:xfetch", loader, ttl=1, early_refresh=sr.XFETCH)
        calls += 1
        await asyncio.sleep(0.005)
    assert len(present_at_load) >= 2 and all(present_at_load[1:])


async def test_stale_if_error_serves_the_expired_value_only_when_the_loader_fails(any_cache) -> None:
    assert await any_cache.get_or_set("aside:stale", Loader("old"), ttl=1, stale_if_error=30) == "old"
    await asyncio.sleep(1.2)
    assert await any_cache.get("aside:stale") is None  # expired for every reader
    failing = Loader(error=RuntimeError("model down"))
    assert await any_cache.get_or_set("aside:stale", failing, ttl=1, stale_if_error=30) == "old"
    assert await any_cache.get_or_set("aside:stale", Loader("new"), ttl=1, stale_if_error=30) == "new"
    # Without stale_if_error an expired value is never served.
    await any_cache.get_or_set("aside:nostale", Loader("old"), ttl=1)
    await asyncio.sleep(1.2)
    with pytest.raises(RuntimeError):
        await any_cache.get_or_set("aside:nostale", failing, ttl=1)


async def test_stale_value_is_not_served_after_delete(cache) -> None:
    await cache.get_or_set("aside:deleted", Loader("old"), ttl=1, stale_if_error=30)
    await cache.delete("aside:deleted")
    with pytest.raises(RuntimeError):
        await cache.get_or_set("aside:deleted", Loader(error=RuntimeError("down")), ttl=1, stale_if_error=30)


async def test_ttl_jitter_spreads_expiries(redis_server, config) -> None:
    jittery = sr.GenericRedisCache(redis_server.url, security_config=config, ttl_jitter=0.2)
    await jittery.connect()
    try:
        for n in range(100):
            await jittery.set(f"aside:jit:{n}", n, ttl=100)
        ttls = [await jittery.get_ttl(f"aside:jit:{n}") for n in range(100)]
        assert all(80 <= t <= 100 for t in ttls)
        assert len(set(ttls)) >= 8
        for n in range(20):  # per call, on a cache without jitter of its own
            await jittery.set(f"aside:jit:{n}", n, ttl=100, ttl_jitter=0.0)
        assert {await jittery.get_ttl(f"aside:jit:{n}") for n in range(20)} <= {99, 100}
    finally:
        await jittery.invalidate_pattern("aside:jit:*")
        await jittery.disconnect()
    with pytest.raises(sr.ValidationError):
        sr.InMemoryCache(ttl_jitter=1.0)


# -- tags -------------------------------------------------------------------------------------------


async def test_tags_invalidate_exactly_their_entries(any_cache) -> None:
    await any_cache.set("aside:t:1", 1, tags=["user:7"])
    await any_cache.set("aside:t:2", 2, tags=["user:7", "plan:pro"])
    await any_cache.set("aside:t:3", 3, tags=["plan:pro"])
    await any_cache.set("aside:t:4", 4)
    assert await any_cache.get_or_set("aside:t:5", Loader(5), tags=["user:7"]) == 5
    assert await any_cache.invalidate_tags(["user:7"]) == 3
    assert [await any_cache.get(f"aside:t:{n}") for n in range(1, 6)] == [None, None, 3, 4, None]
    assert await any_cache.invalidate_tags(["plan:pro", "unknown"]) == 1
    assert await any_cache.get("aside:t:3") is None and await any_cache.get("aside:t:4") == 4
    assert await any_cache.invalidate_tags(["user:7"]) == 0


async def test_tag_and_lock_names_carry_no_user_text_and_values_are_sealed(cache, raw_redis) -> None:
    await cache.set("aside:secret-key", "v", tags=["tenant-acme-secret"])
    token = await cache._lock("aside:secret-key", 5)
    assert isinstance(token, str)
    try:
        names = [name.decode() for name in raw_redis.keys("*")]
        assert "aside:secret-key" in names  # the entry itself keeps the caller's key
        others = [n for n in names if n != "aside:secret-key"]
        assert len(others) == 2 and all(n.startswith("secure_redis:") for n in others)
        assert not any("acme" in n or "secret-key" in n for n in others)
        tag_name = next(n for n in others if n.startswith("secure_redis:tag:"))
        lock_name = next(n for n in others if n.startswith("secure_redis:lock:"))
        for member in raw_redis.smembers(tag_name):
            assert member.startswith(b"gAAAAA") and b"secret-key" not in member  # a Fernet token
        assert raw_redis.get(lock_name).startswith(b"gAAAAA")
        assert 0 < raw_redis.pttl(lock_name) <= 5000
        assert raw_redis.ttl(tag_name) > 0  # tag sets expire with their entries
    finally:
        await cache._unlock("aside:secret-key", token)
    assert not raw_redis.keys("secure_redis:lock:*")


async def test_lock_release_is_compare_and_delete(cache, raw_redis) -> None:
    first = await cache._lock("aside:cad", 0.2)
    assert isinstance(first, str)
    assert await cache._lock("aside:cad", 5) is None  # held
    await asyncio.sleep(0.3)  # first's lease ran out
    second = await cache._lock("aside:cad", 5)
    assert isinstance(second, str)
    await cache._unlock("aside:cad", first)  # a late release of the old holder frees nothing
    assert await cache._lock("aside:cad", 5) is None
    await cache._unlock("aside:cad", second)
    assert isinstance(await cache._lock("aside:cad", 5), str)


async def test_tags_reach_other_processes_l1(redis_server, config) -> None:
    """Two caches with their own connections (as two processes have): invalidating a tag in one
    removes the entry from the other's L1 too."""
    one = sr.GenericRedisCache(redis_server.url, security_config=config, share_connection=False)
    two = sr.GenericRedisCache(redis_server.url, security_config=config, share_connection=False)
    await one.connect()
    await two.connect()
    try:
        await one.set("aside:l1", "v", tags=["t"])
        assert await two.get("aside:l1") == "v"
        assert await two.get("aside:l1") == "v"  # an L1 hit now
        assert await one.invalidate_tags(["t"]) == 1

        async def gone() -> bool:
            return await two.get("aside:l1") is None

        deadline = time.monotonic() + 2
        while not await gone() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await gone()
    finally:
        await one.disconnect()
        await two.disconnect()


async def test_tags_stay_inside_their_namespace(redis_server, config) -> None:
    a = sr.GenericRedisCache(redis_server.url, security_config=config, namespace="app-a:")
    b = sr.GenericRedisCache(redis_server.url, security_config=config, namespace="app-b:")
    await a.connect()
    await b.connect()
    try:
        await a.set("k", "a", tags=["shared"])
        await b.set("k", "b", tags=["shared"])
        assert await a.invalidate_tags(["shared"]) == 1
        assert await a.get("k") is None and await b.get("k") == "b"
    finally:
        await a.clear()
        await b.clear()
        await a.disconnect()
        await b.disconnect()


async def test_invalidate_tags_during_an_outage_raises_and_empties_l1(make_server, config) -> None:
    server = make_server("tags-outage")
    cache = sr.GenericRedisCache(server.url, security_config=config, share_connection=False)
    await cache.connect()
    try:
        await cache.set("k", "v", tags=["t"])
        assert await cache.get("k") == "v"
        server.stop()
        with pytest.raises(sr.InfrastructureError):
            await cache.invalidate_tags(["t"])
        assert await cache.get("k") is None
    finally:
        await cache.disconnect()


async def test_manager_single_flight_and_tags_during_an_outage(make_server, config) -> None:
    server = make_server("manager-outage")
    manager = sr.CacheManager(server.url, security_config=config)
    await manager.connect()
    try:
        server.stop()
        deadline = time.monotonic() + 10
        while manager.cache_type != MEMORY and time.monotonic() < deadline:
            await manager.get("probe")
            await asyncio.sleep(0.05)
        assert manager.cache_type == MEMORY
        loader = Loader("v", delay=0.05)
        results = await asyncio.gather(*(manager.get_or_set("k", loader, 60, lock=True) for _ in range(32)))
        assert results == ["v"] * 32 and loader.calls == 1
        await manager.set("tagged", 1, tags=["t"])
        with pytest.raises(sr.InfrastructureError):
            await manager.invalidate_tags(["t"])
        assert await manager.get("tagged") is None  # the fallback's copy went
    finally:
        await manager.disconnect()


# -- @cached ------------------------------------------------------------------------------------------


async def test_cached_decorator(cache, raw_redis) -> None:
    calls = []

    @sr.cached(cache, ttl=60)
    async def summarize(text: str, words: int = 10) -> dict:
        calls.append((text, words))
        return {"summary": text[:words]}

    assert await summarize("The private prompt text", 5) == {"summary": "The p"}
    assert await summarize("The private prompt text", words=5) == {"summary": "The p"}
    assert await summarize(text="The private prompt text", words=5) == {"summary": "The p"}
    assert len(calls) == 1
    names = [n.decode() for n in raw_redis.keys("*")]
    assert len(names) == 1 and names[0].startswith("cached:")
    assert "private" not in names[0] and "summarize" not in names[0]
    assert await summarize.invalidate("The private prompt text", 5) is True
    await summarize("The private prompt text", 5)
    assert len(calls) == 2
    assert summarize.__name__ == "summarize" and summarize.__wrapped__ is not None


async def test_cached_key_callable_and_refusals(cache) -> None:
    @sr.cached(cache, key=lambda user_id: f"user:{user_id}")
    async def load_user(user_id: int) -> dict:
        return {"id": user_id}

    await load_user(7)
    assert await cache.get("user:7") == {"id": 7}
    assert await load_user.invalidate(7) is True
    with pytest.raises(sr.ValidationError):

        @sr.cached(cache)
        def not_async() -> int:  # type: ignore[misc]
            return 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    when: dt.datetime


async def test_cached_restores_the_annotated_type(any_cache) -> None:
    @sr.cached(any_cache, ttl=60)
    async def where(n: int) -> Point:
        return Point(n, dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.timezone.utc))

    first = await where(3)
    second = await where(3)  # from the cache
    assert second == first and type(second) is Point


async def test_typed_values_round_trip_through_redis(cache, raw_redis) -> None:
    values = [
        dt.datetime(2026, 12, 7, 15, 4, 5, 123456, tzinfo=dt.timezone.utc),
        dt.date(2026, 12, 7),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("10.005"),
        b"\x00\xffbytes",
        (1, "two", (3.0,)),
    ]
    for n, value in enumerate(values):
        await cache.set(f"typed:{n}", value)
        got = await cache.get(f"typed:{n}")
        assert got == value and type(got) is type(value)
    await cache.set("typed:point", Point(1, values[0]))
    assert await cache.get("typed:point", model=Point) == Point(1, values[0])
    assert isinstance(await cache.get("typed:point"), dict)  # no class without model=
    stored = raw_redis.get("typed:point")
    assert stored.startswith(b"gAAAAA") and b"Point" not in stored  # sealed like every value
    with pytest.raises(sr.ValidationError) as refused:
        await cache.set("typed:bad", {"items": [1, {2, 3}]})
    assert "set" in str(refused.value) and "items" in str(refused.value)
    many = await cache.get_many([f"typed:{n}" for n in range(len(values))])
    assert [many[f"typed:{n}"] for n in range(len(values))] == values


async def test_pydantic_model_through_get_or_set(any_cache) -> None:
    pydantic = pytest.importorskip("pydantic")

    class User(pydantic.BaseModel):
        id: uuid.UUID
        name: str
        joined: dt.datetime

    user = User(id=uuid.uuid4(), name="Ada", joined=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc))
    assert await any_cache.get_or_set("typed:user", Loader(user), 60, model=User) == user
    again = await any_cache.get_or_set("typed:user", Loader(None), 60, model=User)
    assert again == user and type(again) is User
    assert await any_cache.get("typed:user", model=User) == user


async def test_acl_of_the_setup_script_allows_locks_and_tags(make_server, pki, encryption_key) -> None:
    """The least-privilege ACL user that scripts/setup-secure-redis.sh creates can do it all."""
    from pathlib import Path

    from conftest import remember_secret

    script = (Path(__file__).parent.parent / "scripts" / "setup-secure-redis.sh").read_text()
    line = next(line for line in script.splitlines() if line.startswith("user $APP_USER on"))
    rules = line.split(" ", 4)[4]
    app_password = remember_secret("aside-acl-app-password-0123456789")
    admin_password = remember_secret("aside-acl-admin-password-0123456789")
    server = make_server(
        "aside-acl",
        password=admin_password,
        acl_lines=[f"user default on >{admin_password} ~* &* +@all", f"user cache-app on >{app_password} {rules}"],
    )
    config = make_config(pki, app_password, encryption_key, acl_username="cache-app")
    cache = sr.GenericRedisCache(server.url, security_config=config)
    await cache.connect()
    try:
        assert await cache.get_or_set("k", Loader("v"), 60, lock=True, tags=["t"], early_refresh=5) == "v"
        assert await cache.get("k") == "v"
        assert await cache.invalidate_tags(["t"]) == 1
    finally:
        await cache.disconnect()


async def test_values_using_our_reserved_keys_read_back_unchanged(any_cache) -> None:
    """A caller's dict whose keys look like our envelopes is stored escaped, never misread."""
    from secure_redis import typed
    from secure_redis.aside import ENTRY

    for n, value in enumerate([{ENTRY: 1, "v": "x", "f": 0}, {typed.MARKER: 1, "v": "y"}]):
        await any_cache.set(f"reserved:{n}", value, 60)
        assert await any_cache.get(f"reserved:{n}") == value
    # inside a freshness envelope too (get_or_set with early refresh)
    value = {typed.MARKER: 1, "v": "z"}
    assert await any_cache.get_or_set("reserved:env", Loader(value), 60, early_refresh=5) == value
    assert await any_cache.get("reserved:env") == value
    assert await any_cache.get_or_set("reserved:env", Loader(None), 60, early_refresh=5) == value
    if hasattr(any_cache, "get_many"):
        await any_cache.set_many({"reserved:m": {ENTRY: 2}}, 60)
        assert (await any_cache.get_many(["reserved:m"]))["reserved:m"] == {ENTRY: 2}


async def test_bad_tags_are_refused_before_anything_is_stored(any_cache) -> None:
    for tags in ("one-str", [""], [7], ["t"] * 65, ["x" * 1025]):
        with pytest.raises(sr.ValidationError):
            await any_cache.set("aside:badtags", 1, tags=tags)
        assert await any_cache.get("aside:badtags") is None
    with pytest.raises(sr.ValidationError):
        await any_cache.invalidate_tags("one-str")
