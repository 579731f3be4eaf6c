"""Metrics and traces (issue 18 part 2): secure_redis.metrics through a real TLS Redis.

Prometheus through a registry of each test's own, OpenTelemetry through the SDK's in-memory
exporter and reader; the AI cache's tokens and cost saved; the FastAPI /metrics endpoint; and
that no key, value, tag or namespace ever reaches what is exported.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import secure_redis as sr
from secure_redis.metrics import FAMILIES, instrument, prometheus_exposition

SECRET_KEY = "user:sk_live_4f9Q2secretKEY"
SECRET_VALUE = {"ssn": "078-05-1120", "note": "hunter2-very-secret-value"}
SECRET_TAG = "tag-patient-jane-roe"
SECRET_NAMESPACE = "billing-namespace-xyz:"
SECRET_PROMPT = "Patient Jane Roe reports chest pain"
SECRETS = ("sk_live_4f9Q2secretKEY", "078-05-1120", "hunter2", "jane-roe", "Jane Roe", "billing-namespace-xyz")


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret.lower() not in text.lower(), f"{secret!r} was exported"


async def scrape(registry: CollectorRegistry) -> str:
    body, content_type = await prometheus_exposition(registry)
    assert content_type.startswith("text/plain")
    return body.decode()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def exercise(cache: sr.GenericRedisCache) -> None:
    """One of each: set, a hit, a miss, exists, delete, and a get of an invalid key (an error)."""
    await cache.set(SECRET_KEY, SECRET_VALUE, 60, tags=[SECRET_TAG])
    assert await cache.get(SECRET_KEY) == SECRET_VALUE
    assert await cache.get(SECRET_KEY + ":absent") is None
    assert await cache.exists(SECRET_KEY) is True
    assert await cache.delete(SECRET_KEY) is True
    with pytest.raises(sr.ValidationError):
        await cache.get("")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def plain_cache(redis_server, config):
    cache = sr.GenericRedisCache(redis_server.url, security_config=config, share_connection=False,
                                 namespace=SECRET_NAMESPACE)
    assert await cache.connect() is True
    yield cache
    await cache.invalidate_pattern("*")
    await cache.disconnect()


# -- Prometheus -----------------------------------------------------------------------------------


async def test_uninstrumented_cache_runs_class_methods(plain_cache):
    for name in ("get", "set", "delete", "exists"):
        assert name not in plain_cache.__dict__
    registry = CollectorRegistry()
    instrumentation = instrument(plain_cache, cache_name="api", prometheus=registry)
    assert all(name in plain_cache.__dict__ for name in ("get", "set", "delete", "exists"))
    instrumentation.close()
    for name in ("get", "set", "delete", "exists"):
        assert name not in plain_cache.__dict__
    assert value(registry, "secure_redis_hits_total", cache="api", operation="get") is None


async def test_prometheus_counts_latencies_and_core_counters(plain_cache):
    registry = CollectorRegistry()
    instrument(plain_cache, cache_name="api", prometheus=registry)
    await exercise(plain_cache)

    text = await scrape(registry)
    assert_no_secret(text)
    assert value(registry, "secure_redis_hits_total", cache="api", operation="get") == 1
    assert value(registry, "secure_redis_misses_total", cache="api", operation="get") == 1
    assert value(registry, "secure_redis_operation_errors_total", cache="api", operation="get") == 1
    for operation, calls in (("get", 3), ("set", 1), ("exists", 1), ("delete", 1)):
        assert value(registry, "secure_redis_operation_duration_seconds_count", cache="api",
                     operation=operation) == calls
    assert value(registry, "secure_redis_connection_state", cache="api", state="connected") == 1
    assert value(registry, "secure_redis_connection_state", cache="api", state="rejected") == 0
    # the Rust core's own counters, read by the refresh before the scrape
    core_hits = sum(value(registry, "secure_redis_core_hits_total", cache="api", tier=tier) or 0
                    for tier in ("l1", "redis"))
    assert core_hits >= 1
    assert (value(registry, "secure_redis_core_sets_total", cache="api") or 0) >= 1
    assert (value(registry, "secure_redis_stored_bytes_total", cache="api") or 0) > 0
    assert value(registry, "secure_redis_rejected_entries_total", cache="api", kind="not_ours") == 0
    # every family is declared, even those without samples
    for family in FAMILIES:
        assert f"# HELP {family.name}" in text


async def test_tampered_entry_is_counted_by_kind(plain_cache, raw_redis):
    registry = CollectorRegistry()
    instrument(plain_cache, cache_name="api", prometheus=registry)
    raw_redis.set(SECRET_NAMESPACE + SECRET_KEY, b"gAAAAA-not-a-token-" + b"x" * 40, ex=60)
    try:
        assert await plain_cache.get(SECRET_KEY) is None
        text = await scrape(registry)
        assert_no_secret(text)
        assert (value(registry, "secure_redis_rejected_entries_total", cache="api", kind="not_ours") or 0) >= 1
    finally:
        raw_redis.delete(SECRET_NAMESPACE + SECRET_KEY)


async def test_one_name_per_registry_and_instrumented_once(plain_cache, redis_server, config):
    registry = CollectorRegistry()
    instrumentation = instrument(plain_cache, cache_name="api", prometheus=registry)
    with pytest.raises(sr.ValidationError):
        instrument(plain_cache, cache_name="other", prometheus=registry)
    other = sr.GenericRedisCache(redis_server.url, security_config=config)
    with pytest.raises(sr.ValidationError):
        instrument(other, cache_name="api", prometheus=registry)
    instrument(other, cache_name="second", prometheus=registry)
    await other.get("k")
    await scrape(registry)
    assert value(registry, "secure_redis_misses_total", cache="second", operation="get") == 1
    assert value(registry, "secure_redis_misses_total", cache="api", operation="get") == 0
    instrumentation.close()
    await other.disconnect()


async def test_dropped_cache_is_not_kept_alive_by_the_registry(redis_server, config):
    import gc
    import weakref

    registry = CollectorRegistry()
    cache = sr.GenericRedisCache(redis_server.url, security_config=config)
    instrument(cache, cache_name="short-lived", prometheus=registry)
    await cache.get("k")
    await cache.disconnect()
    gone = weakref.ref(cache)
    del cache
    gc.collect()
    assert gone() is None
    again = sr.InMemoryCache()  # the name is free again; an InMemoryCache is instrumented too
    instrument(again, cache_name="short-lived", prometheus=registry)
    await again.set(SECRET_KEY, SECRET_VALUE)
    assert await again.get(SECRET_KEY) == SECRET_VALUE
    text = await scrape(registry)
    assert_no_secret(text)
    assert value(registry, "secure_redis_hits_total", cache="short-lived", operation="get") == 1
    assert "secure_redis_connection_state{" not in text  # no connection to report


async def test_performance_monitor_and_metrics_both_record(plain_cache):
    calls: list[str] = []

    class Monitor:
        def record_cache_operation_time(self, operation: str, duration: float, cache_hit: bool,
                                        text_length: int = 0, additional_data: Any = None) -> None:
            calls.append(operation)

    registry = CollectorRegistry()
    instrumentation = instrument(plain_cache, cache_name="api", prometheus=registry)
    plain_cache.performance_monitor = Monitor()  # assigned after instrument(): both still record
    await plain_cache.get("k")
    assert calls == ["get"]
    assert value(registry, "secure_redis_misses_total", cache="api", operation="get") == 1
    instrumentation.close()  # the monitor's wrappers stay
    await plain_cache.get("k")
    assert calls == ["get", "get"]
    plain_cache.performance_monitor = None
    assert "get" not in plain_cache.__dict__

    # the other order: a monitor first, then instrument() wraps the monitor's wrappers
    plain_cache.performance_monitor = Monitor()
    instrumentation = instrument(plain_cache, cache_name="api", prometheus=registry)
    await plain_cache.get("k")
    assert calls == ["get", "get", "get"]
    assert value(registry, "secure_redis_misses_total", cache="api", operation="get") == 1  # a fresh count
    instrumentation.close()
    await plain_cache.get("k")
    assert calls == ["get", "get", "get", "get"]


async def test_manager_fallback_and_connection_state(pki, password, encryption_key):
    from conftest import make_config

    config = make_config(pki, password, encryption_key, connection_timeout=0.5, max_retries=0)
    manager = sr.CacheManager(f"rediss://127.0.0.1:{free_port()}", security_config=config)
    registry = CollectorRegistry()
    instrument(manager, cache_name="managed", prometheus=registry)
    try:
        assert await manager.connect() is False
        await manager.set(SECRET_KEY, SECRET_VALUE, 60)
        assert await manager.get(SECRET_KEY) == SECRET_VALUE
        text = await scrape(registry)
        assert_no_secret(text)
        assert value(registry, "secure_redis_fallback_switches_total", cache="managed") == 1
        assert value(registry, "secure_redis_backend", cache="managed", backend="memory_fallback") == 1
        assert value(registry, "secure_redis_backend", cache="managed", backend="redis_secure") == 0
        assert value(registry, "secure_redis_connection_state", cache="managed", state="unavailable") == 1
        assert value(registry, "secure_redis_hits_total", cache="managed", operation="get") == 1
    finally:
        await manager.disconnect()


# -- AI tokens and cost ---------------------------------------------------------------------------


@pytest.fixture
async def ai_caches(redis_server, config):
    made: list[sr.AIResponseCache] = []

    def make(**kwargs: Any) -> sr.AIResponseCache:
        cache = sr.AIResponseCache(redis_server.url, security_config=config, **kwargs)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.clear()
        await cache.disconnect()


async def test_tokens_and_cost_saved_by_operation(ai_caches):
    writer = ai_caches(cost_per_1k_tokens={"summarize": 0.5})
    key = writer.build_key(SECRET_PROMPT, "summarize")
    await writer.set(key, {"summary": "stable"}, tokens=1200)
    assert await writer.get(key) == {"summary": "stable"}
    assert await writer.get(key) == {"summary": "stable"}
    summary = writer.get_ai_performance_summary()
    assert summary["tokens_saved"] == {"summarize": 2400}
    assert summary["cost_saved"] == {"summarize": pytest.approx(1.2)}
    assert summary["total_tokens_saved"] == 2400

    # Another process (a cache of its own, without a counter or prices) knows the count too.
    reader = ai_caches(enable_l1_cache=False, share_connection=False)
    assert await reader.get(key) == {"summary": "stable"}
    assert reader.get_ai_performance_summary()["tokens_saved"] == {"summarize": 1200}
    assert reader.get_ai_performance_summary()["cost_saved"] == {}

    # A plain set stores no count, and a miss saves nothing.
    plain = writer.build_key("another prompt", "summarize")
    await writer.set(plain, "x")
    assert await writer.get(plain) == "x"
    assert await writer.get(writer.build_key("never stored", "qa")) is None
    assert writer.get_ai_performance_summary()["tokens_saved"] == {"summarize": 2400}


async def test_token_counter_and_its_failures(ai_caches):
    counted = ai_caches(token_counter=lambda response: response["usage"]["total_tokens"], cost_per_1k_tokens=2.0)
    key = counted.build_key(SECRET_PROMPT, "chat")
    await counted.set(key, {"answer": "a", "usage": {"total_tokens": 500}})
    await counted.get(key)
    assert counted.get_ai_performance_summary()["tokens_saved"] == {"chat": 500}
    assert counted.get_ai_performance_summary()["cost_saved"] == {"chat": pytest.approx(1.0)}

    # A counter that raises never breaks set: the entry is stored without a count.
    broken = ai_caches(token_counter=lambda response: response["missing"], share_connection=False)
    other = broken.build_key("other prompt", "chat")
    await broken.set(other, {"answer": "b"})
    assert await broken.get(other) == {"answer": "b"}
    assert broken.get_ai_performance_summary()["tokens_saved"] == {}

    # A key not built by build_key counts under "other", never under its own name.
    await counted.set(SECRET_KEY, "v", tokens=7)
    assert await counted.get(SECRET_KEY) == "v"
    assert counted.get_ai_performance_summary()["tokens_saved"] == {"chat": 500, "other": 7}

    with pytest.raises(sr.ValidationError):
        await counted.set(key, "v", tokens=-1)
    with pytest.raises(sr.ValidationError):
        ai_caches(cost_per_1k_tokens="cheap")


async def test_ai_metrics_exported_without_user_text(ai_caches):
    cache = ai_caches(cost_per_1k_tokens={"summarize": 0.5})
    registry = CollectorRegistry()
    instrument(cache, cache_name="llm", prometheus=registry)
    key = cache.build_key(SECRET_PROMPT, "summarize")
    assert await cache.get(key) is None
    await cache.set(key, SECRET_VALUE, tokens=1000, tags=[SECRET_TAG])
    assert await cache.get(key) == SECRET_VALUE
    await cache.set(SECRET_KEY, SECRET_VALUE, tokens=5)  # a key of the caller's own: no label names it
    assert await cache.get(SECRET_KEY) == SECRET_VALUE
    text = await scrape(registry)
    assert_no_secret(text)
    assert key not in text
    assert value(registry, "secure_redis_ai_tokens_saved_total", cache="llm", operation="summarize") == 1000
    assert value(registry, "secure_redis_ai_cost_saved_total", cache="llm", operation="summarize") == 0.5
    assert value(registry, "secure_redis_ai_hits_total", cache="llm", operation="summarize") == 1
    assert value(registry, "secure_redis_ai_misses_total", cache="llm", operation="summarize") == 1


# -- OpenTelemetry ------------------------------------------------------------------------------------


@pytest.fixture
def otel():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield exporter, tracer_provider, reader, meter_provider
    meter_provider.shutdown()
    tracer_provider.shutdown()


def otel_points(reader: Any) -> dict[str, list[Any]]:
    points: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


async def test_otel_spans_follow_database_conventions_without_keys(plain_cache, redis_server, otel):
    exporter, tracer_provider, reader, meter_provider = otel
    instrumentation = instrument(plain_cache, cache_name="api", prometheus=False, otel=True,
                                 tracer_provider=tracer_provider, meter_provider=meter_provider)
    await exercise(plain_cache)

    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["SET", "GET", "GET", "EXISTS", "DEL", "GET"]
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes["db.system.name"] == "redis"
        assert attributes["db.operation.name"] == span.name
        assert attributes["server.address"] == redis_server.host
        assert attributes["server.port"] == redis_server.port
        assert attributes["db.namespace"] == "0"
        assert "db.query.text" not in attributes
        assert not span.events  # no exception text (it may quote a key)
        assert_no_secret(repr(attributes) + span.name)
    assert spans[1].attributes["secure_redis.cache.hit"] is True
    assert spans[2].attributes["secure_redis.cache.hit"] is False
    assert spans[-1].attributes["error.type"] == "ValidationError"
    assert spans[-1].status.status_code.name == "ERROR"
    assert not spans[-1].status.description

    points = otel_points(reader)
    durations = points["db.client.operation.duration"]
    by_operation = {point.attributes["db.operation.name"]: point.count for point in durations
                    if "error.type" not in point.attributes}
    assert by_operation == {"SET": 1, "GET": 2, "EXISTS": 1, "DEL": 1}
    hits = points["secure_redis.hits"]
    assert [(p.attributes["secure_redis.cache.name"], p.value) for p in hits] == [("api", 1)]
    assert "secure_redis.connection_state" in points
    assert_no_secret(repr({name: [p.attributes for p in found] for name, found in points.items()}))
    instrumentation.close()


async def test_otel_and_prometheus_together_with_ai_tokens(ai_caches, otel):
    exporter, tracer_provider, reader, meter_provider = otel
    cache = ai_caches(cost_per_1k_tokens={"qa": 1.0})
    registry = CollectorRegistry()
    instrument(cache, cache_name="llm", prometheus=registry, otel=True,
               tracer_provider=tracer_provider, meter_provider=meter_provider)
    key = cache.build_key(SECRET_PROMPT, "qa")
    await cache.set(key, "answer", tokens=250)
    await cache.get(key)
    points = otel_points(reader)
    assert [(p.attributes["operation"], p.value) for p in points["secure_redis.ai_tokens_saved"]] == [("qa", 250)]
    assert [p.value for p in points["secure_redis.ai_cost_saved"]] == [pytest.approx(0.25)]
    await scrape(registry)
    assert value(registry, "secure_redis_ai_tokens_saved_total", cache="llm", operation="qa") == 250
    assert_no_secret(repr([span.attributes for span in exporter.get_finished_spans()]))


# -- FastAPI ------------------------------------------------------------------------------------------


def test_fastapi_metrics_endpoint(production_env, redis_server, config):
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from secure_redis.fastapi import get_cache, mount_metrics, secure_redis_lifespan

    registry = CollectorRegistry()

    def factory() -> sr.GenericRedisCache:
        cache = sr.GenericRedisCache(redis_server.url, security_config=config, namespace=SECRET_NAMESPACE)
        instrument(cache, cache_name="web", prometheus=registry)
        return cache

    app = FastAPI(lifespan=secure_redis_lifespan(cache_factory=factory))
    mount_metrics(app, registry=registry)

    @app.get("/items/{key}")
    async def item(key: str, cache: sr.GenericRedisCache = Depends(get_cache)) -> dict[str, Any]:
        await cache.set(key, SECRET_VALUE, 60)
        return {"found": await cache.get(key) is not None}

    with TestClient(app) as client:
        assert client.get(f"/items/{SECRET_KEY}").json() == {"found": True}
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        text = response.text
        assert 'secure_redis_hits_total{cache="web",operation="get"} 1.0' in text
        assert 'secure_redis_connection_state{cache="web",state="connected"} 1.0' in text
        assert "secure_redis_core_sets_total" in text
        assert_no_secret(text)
        assert "/metrics" not in client.get("/openapi.json").text
        app.state.secure_redis_cache.__dict__["_instrumentation"].close()
