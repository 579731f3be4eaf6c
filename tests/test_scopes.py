"""Tenant scopes (issue 18 part 1) against a real TLS Redis: isolation tested adversarially
(copied tokens and records, colliding names, what Redis shows), scoped bulk operations,
forget_scope seen by another cache and by a fresh process, master-key rotation, single-flight
per scope, metrics without scope names, and the FastAPI per-tenant dependency. Cluster and
Sentinel: tests/test_scopes_topologies.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest

import secure_redis as sr

from conftest import make_config, wait_until

TENANTS = ("tenant-acme", "tenant-globex")


def names(raw_redis) -> list[str]:
    return sorted(name.decode() for name in raw_redis.scan_iter(count=1000))


def entry_names(raw_redis) -> list[str]:
    return [n for n in names(raw_redis) if n.startswith("secure_redis:scope:")]


def record_names(raw_redis) -> list[str]:
    return [n for n in names(raw_redis) if n.startswith("secure_redis:scope-key:")]


@pytest.fixture
def fresh(raw_redis):
    raw_redis.flushdb()
    yield raw_redis
    raw_redis.flushdb()


async def test_scopes_keep_entries_apart_and_redis_shows_no_tenant(cache, fresh) -> None:
    acme, globex = (cache.scope(t) for t in TENANTS)
    assert acme.is_scoped and not cache.is_scoped
    await acme.set("user:1", {"plan": "gold"})
    await globex.set("user:1", {"plan": "free"})
    await cache.set("user:1", {"plan": "none"})
    assert await acme.get("user:1") == {"plan": "gold"}
    assert await globex.get("user:1") == {"plan": "free"}
    assert await cache.get("user:1") == {"plan": "none"}
    assert await acme.exists("user:1") and not await acme.exists("user:2")
    stored = names(fresh)
    assert len(record_names(fresh)) == 2 and len(entry_names(fresh)) == 2
    for name in stored:
        assert "acme" not in name and "globex" not in name and "tenant" not in name
    # Two scopes: two random locations, 32 hex characters each.
    locations = {n.split(":")[2] for n in entry_names(fresh)}
    assert len(locations) == 2 and all(len(loc) == 32 for loc in locations)
    # Records and entries are Fernet tokens; the records carry no expiry.
    for name in record_names(fresh) + entry_names(fresh):
        assert fresh.get(name).startswith(b"gAAAAA")
    assert all(fresh.ttl(name) == -1 for name in record_names(fresh))
    # A view built again (per request) reads the same scope.
    assert await cache.scope(TENANTS[0]).get("user:1") == {"plan": "gold"}


async def test_reads_of_an_unknown_scope_miss_without_creating_it(cache, fresh) -> None:
    ghost = cache.scope("never-written")
    assert await ghost.get("k") is None
    assert await ghost.get_many(["a", "b"]) == {}
    assert not await ghost.exists("k") and await ghost.get_ttl("k") is None
    assert await ghost.delete("k") is False
    assert await ghost.invalidate_pattern("*") == 0 and await ghost.clear() == 0
    assert await ghost.invalidate_tags(["t"]) == 0
    assert names(fresh) == []


async def test_a_token_copied_across_scopes_never_opens(cache, fresh, caplog) -> None:
    acme, globex = (cache.scope(t) for t in TENANTS)
    await acme.set("secret", {"card": "4111"})
    await globex.set("secret", {"card": "none"})
    await acme.set("other", 1)
    acme_name = f"secure_redis:scope:{_location_of(fresh, 'other')}:secret"
    globex_name = next(n for n in entry_names(fresh) if n.endswith(":secret") and n != acme_name)
    # Onto the other tenant's name, and onto another key of the same tenant.
    fresh.set(globex_name, fresh.get(acme_name))
    fresh.set(acme_name.replace(":secret", ":other"), fresh.get(acme_name))
    fresh.set("secret", fresh.get(acme_name))  # and onto the unscoped cache's name
    for view in (globex, cache.scope(TENANTS[1])):
        view._core.clear_l1()
        assert await view.get("secret") is None
    acme._core.clear_l1()
    assert await acme.get("other") is None
    assert await cache.get("secret") is None
    assert await acme.get("secret") == {"card": "4111"}


def _location_of(raw_redis, key: str) -> str:
    """The location of the (only) scope holding ``key``."""
    return next(n.split(":")[2] for n in entry_names(raw_redis) if n.endswith(f":{key}"))


async def test_a_record_copied_onto_another_scope_does_not_open_there(cache, fresh, config, redis_server) -> None:
    acme, globex = (cache.scope(t) for t in TENANTS)
    await acme.set("k", "acme's")
    acme_record = record_names(fresh)[0]
    await globex.set("k", "globex's")
    globex_record = next(n for n in record_names(fresh) if n != acme_record)
    # Someone with write access to Redis points globex's record at acme's key and entries.
    fresh.set(globex_record, fresh.get(acme_record))
    other = sr.GenericRedisCache(redis_server.url, security_config=config, share_connection=False)
    try:
        view = other.scope(TENANTS[1])
        assert await view.get("k") is None  # never acme's value
        with pytest.raises(sr.InfrastructureError) as refused:
            await view.set("k", "x")
        assert refused.value.context["error_type"] == sr.ErrorCode.SCOPE_UNAVAILABLE.value
        assert await other.scope(TENANTS[0]).get("k") == "acme's"
    finally:
        await other.disconnect()


async def test_a_parent_key_colliding_with_a_scope_name_reads_as_a_miss_in_both(cache, fresh) -> None:
    acme = cache.scope(TENANTS[0])
    await acme.set("k", "scoped")
    name = entry_names(fresh)[0]
    # The unscoped cache writes under the very same Redis name.
    await cache.set(name, "unscoped")
    acme._core.clear_l1()
    assert await acme.get("k") is None
    assert await cache.get(name) == "unscoped"
    await acme.set("k", "scoped again")
    cache._core.clear_l1()
    assert await cache.get(name) is None
    assert await acme.get("k") == "scoped again"


async def test_bulk_operations_stay_inside_their_scope(cache, fresh) -> None:
    acme, globex = (cache.scope(t) for t in TENANTS)
    for view in (acme, globex, cache):
        await view.set_many({"a:1": 1, "a:2": 2, "b:1": 3})
        await view.set("tagged", "t", tags=["docs"])
    assert await acme.invalidate_pattern("a:*") == 2
    assert await acme.get_many(["a:1", "a:2", "b:1"]) == {"b:1": 3}
    assert await globex.get_many(["a:1", "a:2", "b:1"]) == {"a:1": 1, "a:2": 2, "b:1": 3}
    assert await acme.invalidate_tags(["docs"]) == 1
    assert await acme.get("tagged") is None
    assert await globex.get("tagged") == "t" and await cache.get("tagged") == "t"
    assert await globex.clear() >= 4
    assert await globex.get_many(["a:1", "b:1", "tagged"]) == {}
    assert await acme.get("b:1") == 3 and await cache.get("a:1") == 1
    # The unscoped cache's invalidation proves ownership: scope entries are not its own.
    assert await cache.invalidate_pattern("*") == 4
    assert await acme.get("b:1") == 3
    assert len(record_names(fresh)) == 2, "records survive a scope's clear"


async def test_scopes_do_not_nest_and_names_are_checked(cache) -> None:
    view = cache.scope("t")
    with pytest.raises(sr.ValidationError) as nested:
        view.scope("u")
    assert nested.value.context["error_type"] == sr.ErrorCode.INVALID_SCOPE.value
    with pytest.raises(sr.ValidationError):
        await view.forget_scope("t")
    for bad in ("", "x" * 1025, None, 7, b"t", "lone \ud800 surrogate"):
        with pytest.raises(sr.ValidationError) as refused:
            cache.scope(bad)  # type: ignore[arg-type]
        assert refused.value.context["error_type"] == sr.ErrorCode.INVALID_SCOPE.value
        with pytest.raises(sr.ValidationError):
            await cache.forget_scope(bad)  # type: ignore[arg-type]
    assert cache.scope("租户 7" + "x" * 1000).is_scoped


async def test_forget_scope_shreds_at_once_here_and_deletes_the_entries(cache, fresh) -> None:
    acme, globex = (cache.scope(t) for t in TENANTS)
    await acme.set_many({f"k{i}": i for i in range(50)})
    await globex.set("k1", "kept")
    assert await acme.get("k1") == 1  # in L1 now
    old_tokens = {n: fresh.get(n) for n in entry_names(fresh) if n.split(":")[2] == _location_of(fresh, "k49")}
    assert await cache.forget_scope(TENANTS[0], wait=True) == 50
    assert await acme.get("k1") is None, "the view made before the forget"
    assert await cache.scope(TENANTS[0]).get("k2") is None
    assert await globex.get("k1") == "kept"
    assert len(record_names(fresh)) == 1 and len(entry_names(fresh)) == 1
    # The scope starts afresh under a new key and location; the old tokens, put back, do not open.
    globex_location = _location_of(fresh, "k1")
    await acme.set("k1", "new")
    [new_location] = {n.split(":")[2] for n in entry_names(fresh)} - {globex_location}
    assert new_location not in {n.split(":")[2] for n in old_tokens}
    for name, token in old_tokens.items():
        fresh.set(name, token)
        fresh.set(f"secure_redis:scope:{new_location}:{name.split(':', 3)[3]}", token)
    acme._core.clear_l1()
    assert await acme.get("k2") is None
    assert await acme.get("k1") is None  # its own token was overwritten by a forgotten one
    # Forgetting is idempotent, and a scope that never existed forgets to nothing.
    assert await cache.forget_scope("never", wait=True) == 0
    assert await cache.forget_scope(TENANTS[0]) is None  # background deletion


async def test_forget_scope_is_seen_by_another_cache_with_l1(cache, fresh, config, redis_server) -> None:
    """Another backend (its own connection, L1 and invalidation channel, as another process
    has) that resolved the scope and holds its entries in L1 stops serving them."""
    other = sr.GenericRedisCache(redis_server.url, security_config=config, share_connection=False)
    try:
        assert await other.connect()
        theirs = other.scope(TENANTS[0])
        await cache.scope(TENANTS[0]).set("k", "v")
        assert await theirs.get("k") == "v"
        assert await theirs.get("k") == "v"  # from its L1
        await cache.forget_scope(TENANTS[0])
        assert await wait_until(lambda: _misses(theirs, "k"), timeout=5)
        assert await theirs.get("k") is None
    finally:
        await other.disconnect()


def _misses(view, key):
    async def check() -> bool:
        return await view.get(key) is None

    return check()


async def test_without_l1_every_operation_sees_a_forget_at_once(redis_server, config, fresh) -> None:
    one = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=False)
    two = sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=False,
                               share_connection=False)
    try:
        await one.scope("t").set("k", "v")
        assert await two.scope("t").get("k") == "v"
        await one.forget_scope("t")
        assert await two.scope("t").get("k") is None
    finally:
        await one.disconnect()
        await two.disconnect()


# What each worker process below starts with: the cache, from the settings in its environment
# (secrets never on a command line).
WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    import secure_redis as sr

    async def open_cache():
        config = sr.SecurityConfig(redis_auth=os.environ["T_PASSWORD"], encryption_key=os.environ["T_KEY"],
                                   tls_ca_path=os.environ["T_CA"])
        cache = sr.GenericRedisCache(os.environ["T_URL"], security_config=config)
        await cache.connect()
        return cache
    """
)

FRESH_PROCESS = WORKER + textwrap.dedent(
    """
    async def main() -> None:
        cache = await open_cache()
        view = cache.scope(os.environ["T_SCOPE"])
        print(json.dumps({k: await view.get(k) for k in ("k1", "k2")}))
        await cache.disconnect()

    asyncio.run(main())
    """
)


def worker_env(redis_server, pki, password, key, **more: str) -> dict[str, str]:
    return dict(os.environ, T_PASSWORD=password, T_KEY=key, T_CA=str(pki.ca_cert), T_URL=redis_server.url,
                PYTHONPATH=os.pathsep.join(sys.path), **more)


def read_in_fresh_process(redis_server, pki, password, key, scope) -> dict:
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS], env=worker_env(redis_server, pki, password, key,
                                                                                   T_SCOPE=scope),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


HOLDING_PROCESS = WORKER + textwrap.dedent(
    """
    async def main() -> None:
        cache = await open_cache()
        view = cache.scope("t")
        first = await view.get("k")
        from_l1 = await view.get("k")
        stats = await view.get_cache_stats()
        print(json.dumps({"first": first, "again": from_l1, "l1_hits": stats["performance"]["l1_hits"]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the forget happened
        started = time.monotonic()
        while await view.get("k") is not None and time.monotonic() - started < 5:
            await asyncio.sleep(0.005)
        print(json.dumps({"gone_after_s": time.monotonic() - started, "now": await view.get("k")}), flush=True)
        await cache.disconnect()

    asyncio.run(main())
    """
)


async def test_another_process_serving_a_scope_from_l1_stops_within_the_lease(cache, fresh, redis_server, pki,
                                                                              password, encryption_key) -> None:
    """A worker process that resolved the scope and serves its entry from L1: after the forget
    here, it misses within the coherence lease (about 100 ms; 1 s allowed for a loaded machine)."""
    await cache.scope("t").set("k", "v")
    env = worker_env(redis_server, pki, password, encryption_key)
    worker = subprocess.Popen([sys.executable, "-c", HOLDING_PROCESS], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdin is not None
        before = json.loads(await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 60))
        assert before["first"] == "v" and before["again"] == "v" and before["l1_hits"] >= 1
        await cache.forget_scope("t")
        worker.stdin.write("go\n")
        worker.stdin.flush()
        after = json.loads(await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 60))
        assert after["now"] is None and after["gone_after_s"] < 1.0, after
        print(f"the other process missed {after['gone_after_s'] * 1000:.1f} ms after the forget returned")
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)


async def test_a_forgotten_scope_reads_as_nothing_in_a_fresh_process(cache, fresh, redis_server, pki, password,
                                                                      encryption_key) -> None:
    await cache.scope("t").set_many({"k1": 1, "k2": 2})
    assert read_in_fresh_process(redis_server, pki, password, encryption_key, "t") == {"k1": 1, "k2": 2}
    # The entries are left in Redis (no wait, and the sweep is raced by the reader): only the
    # key is gone, and that is enough.
    location = _location_of(fresh, "k1")
    tokens = {n: fresh.get(n) for n in entry_names(fresh)}
    await cache.forget_scope("t", wait=True)
    for name, token in tokens.items():
        fresh.set(name, token)
    assert read_in_fresh_process(redis_server, pki, password, encryption_key, "t") == {"k1": None, "k2": None}
    assert all(n.split(":")[2] == location for n in entry_names(fresh))
    assert record_names(fresh) == []


async def test_master_key_rotation_rewraps_scope_keys_without_touching_entries(redis_server, pki, password, fresh) -> None:
    old, new = sr.generate_encryption_key(), sr.generate_encryption_key()

    def cache_with(keys: str) -> sr.GenericRedisCache:
        return sr.GenericRedisCache(redis_server.url, security_config=make_config(pki, password, keys),
                                    share_connection=False)

    before = cache_with(old)
    await before.scope("t").set_many({"a": 1, "b": 2})
    entries = {n: fresh.get(n) for n in entry_names(fresh)}
    [old_record] = record_names(fresh)
    rotating = cache_with(f"{new},{old}")
    assert await rotating.scope("t").get("a") == 1
    records = record_names(fresh)
    assert len(records) == 2 and old_record in records, "re-wrapped under the new key; the old copy stays"
    assert {n: fresh.get(n) for n in entry_names(fresh)} == entries, "no entry re-encrypted or renamed"
    # A process still on the old key reads on; the new key alone does too.
    assert await cache_with(old).scope("t").get("b") == 2
    after = cache_with(new)
    assert await after.scope("t").get_many(["a", "b"]) == {"a": 1, "b": 2}
    # The old key retired, forget_scope still removes every copy (the new record names the old).
    assert await after.forget_scope("t", wait=True) == 2
    assert record_names(fresh) == [] and entry_names(fresh) == []
    for each in (before, rotating, after):
        await each.disconnect()


async def test_single_flight_is_never_shared_across_scopes(cache, fresh) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    def loader_for(tenant: str):
        async def load():
            started.set()
            await asyncio.wait_for(release.wait(), 10)
            return f"{tenant}'s answer"

        return load

    first = asyncio.ensure_future(cache.scope("a").get_or_set("q", loader_for("a"), ttl=60))
    await asyncio.wait_for(started.wait(), 10)
    second = asyncio.ensure_future(cache.scope("b").get_or_set("q", loader_for("b"), ttl=60))
    await asyncio.sleep(0.05)
    release.set()
    assert await first == "a's answer"
    assert await second == "b's answer"
    assert await cache.scope("b").get("q") == "b's answer"


async def test_cached_functions_and_locks_in_scopes(cache, fresh) -> None:
    calls = []

    async def load() -> str:
        calls.append(1)
        return "v"

    for tenant in TENANTS:
        assert await cache.scope(tenant).get_or_set("q", load, ttl=60, lock=True, tags=["t"]) == "v"
    assert len(calls) == 2
    assert cache.scope("a")._digest("f(1)") != cache.scope("b")._digest("f(1)") != cache._digest("f(1)")
    assert not any("lock" in n for n in names(fresh))  # released
    assert await cache.scope(TENANTS[0]).invalidate_tags(["t"]) == 1
    assert await cache.scope(TENANTS[1]).get("q") == "v"


async def test_ai_cache_scopes(redis_server, config, fresh) -> None:
    ai = sr.AIResponseCache(redis_url=redis_server.url, security_config=config)
    await ai.connect()
    try:
        acme, globex = ai.scope(TENANTS[0]), ai.scope(TENANTS[1])
        assert isinstance(acme, sr.AIResponseCache)
        question = ("what is our revenue?", "qa", {})
        key = acme.build_key(*question)
        # Digested under the scope's own naming keys: one request in two scopes (or unscoped)
        # leaves no equal names in Redis; the same scope names it alike in every view.
        assert len({key, globex.build_key(*question), ai.build_key(*question)}) == 3
        assert ai.scope(TENANTS[0]).build_key(*question) == key and key.startswith("ai_cache:op:qa|")
        await acme.set(key, {"answer": "acme's figure"})
        await globex.set(globex.build_key(*question), {"answer": "globex's figure"})
        assert await globex.get(key) is None
        assert await acme.get(key) == {"answer": "acme's figure"}
        assert await ai.get(key) is None
        assert all("revenue" not in n for n in names(fresh))
        suffixes = [n.split(":", 3)[3] for n in entry_names(fresh)]
        assert key in suffixes and len(set(suffixes)) == 2
        assert all(0 < fresh.ttl(n) <= 1800 for n in entry_names(fresh))  # the qa TTL
    finally:
        await ai.disconnect()


async def test_metrics_of_views_carry_no_scope_name(redis_server, config, fresh) -> None:
    prometheus = pytest.importorskip("prometheus_client")
    from secure_redis.metrics import instrument, prometheus_exposition

    registry = prometheus.CollectorRegistry()
    cache = sr.GenericRedisCache(redis_server.url, security_config=config)
    await cache.connect()
    instrumentation = instrument(cache, cache_name="tenants", prometheus=registry)
    try:
        view = cache.scope("tenant-acme-secret-name")
        await view.set("k", 1)
        assert await view.get("k") == 1
        body, _ = await prometheus_exposition(registry)
        text = body.decode() if isinstance(body, bytes) else body
        assert "acme" not in text
        hits = [line for line in text.splitlines() if line.startswith("secure_redis_hits_total")]
        assert hits and any(line.endswith(" 1.0") for line in hits), hits
    finally:
        instrumentation.close()
        await cache.disconnect()


async def test_scoped_reads_miss_and_writes_are_skipped_while_redis_is_down_before_resolution(
    make_server, config, pki, password
) -> None:
    server = make_server("scope-outage")
    cache = sr.GenericRedisCache(server.url, security_config=config, share_connection=False)
    try:
        await cache.connect()
        await cache.scope("known").set("k", "v")
        server.stop()
        assert await cache.scope("never").get("k") is None
        await cache.scope("never").set("k", "dropped")  # no error: skipped with a warning
        assert await cache.scope("known").get("k") in (None, "v")
        with pytest.raises(sr.InfrastructureError):
            await cache.forget_scope("known")
    finally:
        await cache.disconnect()


async def test_the_repair_after_an_outage_stays_inside_each_scope(make_server, config) -> None:
    """Redis comes back holding values replaced or invalidated in one scope while it was down:
    the repair removes them there and leaves the other scope's and the unscoped cache's
    identical keys alone."""
    server = make_server("scope-repair", extra_config=["appendonly yes", "appendfsync always"])
    cache = sr.GenericRedisCache(server.url, security_config=config, share_connection=False)
    assert await cache.connect()
    acme, globex = cache.scope("acme"), cache.scope("globex")
    for view in (acme, globex, cache):
        await view.set_many({"written": "old", "doc:1": "old", "doc:2": "old"})
    reader = sr.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False,
                                  share_connection=False)
    try:
        server.kill()
        await acme.set("written", "during the outage")  # reaches L1 only: the key is dirty in acme
        await acme.invalidate_pattern("doc:*")  # missed: replayed in acme alone
        assert await acme.get("doc:1") is None
        server.restart()  # with every old value
        assert await wait_until(cache.ping)

        async def repaired() -> bool:
            await acme.exists("written")  # starts the scope's repair
            return await reader.scope("acme").get_many(["written", "doc:1", "doc:2"]) == {}

        assert await wait_until(repaired), "acme's stale entries were not repaired"
        assert await reader.scope("globex").get_many(["written", "doc:1", "doc:2"]) == {
            "written": "old", "doc:1": "old", "doc:2": "old"}
        assert await reader.get_many(["written", "doc:1", "doc:2"]) == {"written": "old", "doc:1": "old", "doc:2": "old"}
        await acme.set("written", "after")
        assert await reader.scope("acme").get("written") == "after"
    finally:
        await reader.disconnect()
        await cache.disconnect()


async def test_disconnecting_a_view_leaves_the_cache_connected(cache, fresh) -> None:
    view = cache.scope("tenant-zebra")
    await view.set("k", 1)
    await view.disconnect()
    assert cache.is_available and cache._core.shared_by >= 1
    assert await cache.scope("tenant-zebra").get("k") == 1
    assert "zebra" not in repr(view) and "scope=<hidden>" in repr(view)


async def test_memory_cache_scopes_keep_entries_and_tags_apart() -> None:
    memory = sr.InMemoryCache()
    a, b = memory.scope("a"), memory.scope("b")
    assert a.is_scoped and not memory.is_scoped and "scope=<hidden>" in repr(a)
    await a.set("k", 1, tags=["t"])
    await b.set("k", 2, tags=["t"])
    await memory.set("k", 3, tags=["t"])
    assert (await a.get("k"), await b.get("k"), await memory.get("k")) == (1, 2, 3)
    assert memory.get_keys() == ["k"] and a.get_keys() == ["k"] and a.size() == 1
    # A view made later (per request) shares the scope's tag index.
    assert await memory.scope("a").invalidate_tags(["t"]) == 1
    assert await a.get("k") is None and await b.get("k") == 2 and await memory.get("k") == 3
    await b.set("p:1", 1)
    assert await b.invalidate_pattern("p:*") == 1 and await b.get("k") == 2
    b.clear()
    assert await b.get("k") is None and await memory.get("k") == 3
    await a.set("x", 1)
    await a.set("y", 2, tags=["u"])
    assert await memory.forget_scope("a") == 2
    assert await a.get("x") is None and await memory.scope("a").invalidate_tags(["u"]) == 0
    assert await memory.invalidate_tags(["t"]) == 1  # the whole cache's own tag
    with pytest.raises(sr.ValidationError):
        a.scope("c")
    with pytest.raises(sr.ValidationError):
        await a.forget_scope("a")
    for bad in ("", None, "x" * 1025, "lone \ud800 surrogate"):
        with pytest.raises(sr.ValidationError) as refused:
            memory.scope(bad)  # type: ignore[arg-type]
        assert refused.value.context["error_type"] == sr.ErrorCode.INVALID_SCOPE.value


async def test_manager_scopes_fall_back_together_and_reset_their_outage_writes(make_server, config) -> None:
    from secure_redis.manager import MEMORY, REDIS

    server = make_server("manager-scope", extra_config=["appendonly yes", "appendfsync always"])
    manager = sr.CacheManager(server.url, security_config=config, probe_interval=0.05)
    assert await manager.connect()
    acme = manager.scope("acme")
    assert acme.is_scoped and "scope=<hidden>" in repr(acme)
    await acme.set("k", "old")
    await manager.set("k", "whole")
    try:
        server.kill()

        async def on_memory() -> bool:
            await acme.get("k")
            return manager.cache_type == MEMORY

        assert await wait_until(on_memory, timeout=10)
        assert acme.cache_type == MEMORY
        await acme.set("k", "during the outage")
        assert await acme.get("k") == "during the outage"
        assert await manager.scope("globex").get("k") is None
        assert await manager.get("k") != "during the outage"
        assert acme.get_cache_info()["keys_pending_reset"] == 1
        server.restart()  # with acme's "old"

        async def back() -> bool:
            await manager.exists("probe")
            return manager.cache_type == REDIS

        assert await wait_until(back, timeout=20)
        # Redis held "old" for acme: the outage write reset it there, and only there.
        assert await acme.get("k") is None
        assert await manager.get("k") == "whole"
        assert await manager.forget_scope("acme", wait=True) == 0
        await acme.disconnect()
        assert manager.cache.is_available
    finally:
        await manager.disconnect()
