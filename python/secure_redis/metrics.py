"""Prometheus and OpenTelemetry export of a cache's counters, latencies and traces.

Owns ``instrument(cache, ...)`` and the ``Instrumentation`` it returns: timed
``get``/``set``/``delete``/``exists`` wrappers on one cache object (a ``GenericRedisCache``,
``AIResponseCache``, ``CacheManager`` or ``InMemoryCache``), one Prometheus collector per
registry and one set of OpenTelemetry instruments per meter provider, both reading the same
samples, and a span per operation. docs/observability.md lists every name.

Invariants a reader must not break:

- Nothing exported names data. Labels and attributes are the ``cache`` name the application
  gives, the operation (``get``/``set``/``delete``/``exists``, or an AI operation read from a
  ``build_key`` name by ``ai_savings.operation_of``, never the key), and fixed enumerations
  (tier, rejection kind, connection state, backend). Never a key, value, tag, pattern or
  namespace. Spans carry no ``db.query.text`` and record no exception text (it may quote a
  key): only ``error.type``, the exception's class name.
- Without ``instrument`` nothing here runs: like ``_monitor.attach``, the wrappers go on the
  instance only when asked for, so an uninstrumented cache answers with its class's methods.
  ``Instrumentation.close()`` puts back what was there (a performance monitor's wrappers).
- A scrape never awaits. It reads the wrapper's counters, the connection flags, the manager's
  switch state, the AI policy snapshot and the token savings as they are, and the Rust core's
  own counters (tier hits, rejected entries by kind, L1 invalidations, bytes) as of the last
  ``refresh()``: the core gives those only through the async ``stats()``, which asks Redis for
  INFO. ``prometheus_exposition()`` (and ``secure_redis.fastapi.mount_metrics``) refresh
  before each scrape; with another exporter, call ``refresh()`` on a schedule.
- ``prometheus_client`` and ``opentelemetry-api`` are optional extras, imported only here and
  only when asked for.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator
from urllib.parse import urlsplit

from .ai_savings import TokenSavings
from .exceptions import ValidationError

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram as OtelHistogram
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

logger = logging.getLogger("secure_redis.metrics")

OPERATIONS = ("get", "set", "delete", "exists")
# The Redis command each operation is, for span names and db.operation.name.
_COMMANDS = {"get": "GET", "set": "SET", "delete": "DEL", "exists": "EXISTS"}
# Cache operations take from tens of microseconds (an L1 hit) to the socket timeout.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_REJECTION_KINDS = ("not_ours", "foreign_key", "malformed", "too_large", "expired", "oversized", "malformed_json")
DURATION_METRIC = "secure_redis_operation_duration_seconds"
OTEL_DURATION_METRIC = "db.client.operation.duration"  # the database-client semantic conventions' name


@dataclass(frozen=True)
class Family:
    """One exported metric: its Prometheus name, kind, help and labels besides ``cache``."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    labels: tuple[str, ...] = ()

    @property
    def otel_name(self) -> str:
        """``secure_redis_core_hits_total`` is ``secure_redis.core_hits`` through OpenTelemetry."""
        name = self.name[: -len("_total")] if self.name.endswith("_total") else self.name
        return "secure_redis." + name[len("secure_redis_"):]


FAMILIES: tuple[Family, ...] = (
    # recorded by the wrappers, live
    Family("secure_redis_hits_total", "counter", "get calls that found a value", ("operation",)),
    Family("secure_redis_misses_total", "counter", "get calls that found nothing", ("operation",)),
    Family("secure_redis_operation_errors_total", "counter", "calls that raised", ("operation",)),
    # read at scrape time, live
    Family("secure_redis_connection_state", "gauge",
           "1 for the connection's current state: connected, unavailable or rejected", ("state",)),
    Family("secure_redis_fallback_switches_total", "counter", "CacheManager switches between Redis and memory"),
    Family("secure_redis_backend", "gauge", "1 for the backend a CacheManager serves from", ("backend",)),
    Family("secure_redis_ai_hits_total", "counter", "AIResponseCache hits by AI operation", ("operation",)),
    Family("secure_redis_ai_misses_total", "counter", "AIResponseCache misses by AI operation", ("operation",)),
    Family("secure_redis_ai_sets_total", "counter", "AIResponseCache writes by AI operation", ("operation",)),
    Family("secure_redis_ai_tokens_saved_total", "counter", "model tokens hits spared, by AI operation",
           ("operation",)),
    Family("secure_redis_ai_cost_saved_total", "counter",
           "cost hits spared (tokens / 1000 x cost_per_1k_tokens), by AI operation", ("operation",)),
    # the Rust core's counters, as of the last refresh()
    Family("secure_redis_core_hits_total", "counter", "reads the core answered, by tier (l1, redis)", ("tier",)),
    Family("secure_redis_core_misses_total", "counter", "reads the core found nothing for"),
    Family("secure_redis_core_sets_total", "counter", "writes"),
    Family("secure_redis_core_deletes_total", "counter", "deletes"),
    Family("secure_redis_redis_failures_total", "counter", "Redis commands that failed (served from L1 or missed)"),
    Family("secure_redis_l1_only_writes_total", "counter", "writes that reached only L1 (Redis away)"),
    Family("secure_redis_rejected_entries_total", "counter",
           "entries read and refused, by kind (not_ours = tampered or foreign data; malformed, "
           "malformed_json = decode failures)", ("kind",)),
    Family("secure_redis_l1_invalidations_total", "counter", "L1 entries dropped on another process's write"),
    Family("secure_redis_l1_coherence_flushes_total", "counter", "L1 emptied because invalidations may be lost"),
    Family("secure_redis_l1_entries", "gauge", "entries in L1"),
    Family("secure_redis_compressed_writes_total", "counter", "writes stored compressed"),
    Family("secure_redis_plaintext_bytes_total", "counter", "bytes of JSON written, before compression and encryption"),
    Family("secure_redis_stored_bytes_total", "counter", "bytes written to Redis, sealed"),
    Family("secure_redis_reconnects_total", "counter", "reconnections of the Redis connection"),
    Family("secure_redis_core_stats_timestamp_seconds", "gauge", "when the core counters above were read (unix time)"),
)
_FAMILY = {family.name: family for family in FAMILIES}

Sample = tuple[str, tuple[str, ...], float]  # family name, label values after `cache`, value


class Instrumentation:
    """What ``instrument`` attached to one cache: its counters, and the way to take it off.

    ``refresh()`` reads the Rust core's counters (one ``stats()`` call, bounded by the socket
    timeout); ``close()`` removes the wrappers and the cache's samples. Nothing else is public.
    """

    def __init__(self, cache: Any, cache_name: str) -> None:
        self.cache = cache
        self.cache_name = cache_name
        self.hits = 0
        self.misses = 0
        self.errors: dict[str, int] = dict.fromkeys(OPERATIONS, 0)  # every key up front: a scrape thread may copy it
        self.core_stats: dict[str, Any] | None = None
        self.core_stats_at = 0.0
        self._replaced: dict[str, Any] = {}
        self._histograms: dict[str, _Buckets] = {}  # operation -> its latency histogram (Prometheus)
        self._prometheus: _PrometheusExport | None = None
        self._otel: _OtelExport | None = None
        self._tracer: Tracer | None = None
        self._span_attributes: dict[str, dict[str, Any]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"Instrumentation(cache_name={self.cache_name!r}, cache={type(self.cache).__name__})"

    # -- recording (the hot path of an instrumented cache) --------------------------------

    def _record(self, operation: str, seconds: float, result: Any, error: BaseException | None) -> None:
        histogram = self._histograms.get(operation)
        if histogram is not None:
            histogram.observe(seconds)
        if self._otel is not None:
            self._otel.observe(self, operation, seconds, error)
        if error is not None:
            self.errors[operation] += 1
        elif operation == "get":
            if result is None:
                self.misses += 1
            else:
                self.hits += 1

    # -- reading --------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Reads the Rust core's counters now (never raises; on failure the last ones stay)."""
        redis_cache = _redis_cache(self.cache)
        if redis_cache is None:
            return
        limit = float(redis_cache.security_config.socket_timeout) + 0.5
        try:
            stats = await asyncio.wait_for(redis_cache._core.stats(), timeout=limit)
        except Exception as error:  # a scrape must not fail because Redis is away
            logger.debug("Reading the core counters failed: %s", type(error).__name__)
            return
        self.core_stats, self.core_stats_at = dict(stats), time.time()

    def samples(self) -> list[Sample]:
        """Every current sample of this cache (no I/O)."""
        out: list[Sample] = [
            ("secure_redis_hits_total", ("get",), self.hits),
            ("secure_redis_misses_total", ("get",), self.misses),
        ]
        out += [("secure_redis_operation_errors_total", (op,), n) for op, n in list(self.errors.items())]
        cache = self.cache
        redis_cache = _redis_cache(cache)
        if redis_cache is not None:
            rejected, available = redis_cache.is_rejected, redis_cache.is_available
            state = "rejected" if rejected else "connected" if available else "unavailable"
            out += [("secure_redis_connection_state", (name,), float(name == state))
                    for name in ("connected", "unavailable", "rejected")]
        switches = getattr(cache, "switches", None)
        if isinstance(switches, int) and hasattr(cache, "fallback"):  # a CacheManager
            out.append(("secure_redis_fallback_switches_total", (), switches))
            serving = getattr(cache, "cache_type", "")
            out += [("secure_redis_backend", (name,), float(name == serving))
                    for name in ("redis_secure", "memory_fallback")]
        ai = getattr(redis_cache, "_ai", None)
        if ai is not None:
            for operation, figures in ai.snapshot()["by_operation"].items():
                label = (str(operation),)
                out += [("secure_redis_ai_hits_total", label, figures["hits"]),
                        ("secure_redis_ai_misses_total", label, figures["misses"]),
                        ("secure_redis_ai_sets_total", label, figures["sets"])]
        savings = getattr(redis_cache, "_savings", None)
        if isinstance(savings, TokenSavings):
            snapshot = savings.snapshot()
            out += [("secure_redis_ai_tokens_saved_total", (op,), n) for op, n in snapshot["tokens_saved"].items()]
            out += [("secure_redis_ai_cost_saved_total", (op,), c) for op, c in snapshot["cost_saved"].items()]
        if self.core_stats is not None:
            out += _core_samples(self.core_stats)
            out.append(("secure_redis_core_stats_timestamp_seconds", (), self.core_stats_at))
        return out

    # -- detaching --------------------------------------------------------------------------

    def close(self) -> None:
        """Takes the wrappers off the cache (putting back whatever was there) and drops its samples."""
        if self._closed:
            return
        self._closed = True
        for name in OPERATIONS:
            previous = self._replaced.get(name)
            if previous is None:
                self.cache.__dict__.pop(name, None)
            else:
                self.cache.__dict__[name] = previous
        self.cache.__dict__.pop("_instrumentation", None)
        if self._prometheus is not None:
            self._prometheus.remove(self)
        if self._otel is not None:
            self._otel.remove(self)

    def _wrap(self) -> None:
        """Puts the timed methods on the instance, around whatever answers now (the class's
        method, or a performance monitor's wrapper)."""
        for name in OPERATIONS:
            self._replaced[name] = self.cache.__dict__.get(name)
            inner = getattr(self.cache, name)
            command = _COMMANDS[name]
            if self._tracer is None:
                wrapper = _timed(self, name, inner)
            else:
                wrapper = _traced(self, name, inner, self._tracer, command, self._span_attributes[name])
            wrapper.__name__ = wrapper.__qualname__ = name
            wrapper.__doc__ = getattr(inner, "__doc__", None)
            setattr(self.cache, name, wrapper)

    def _wrap_view(self, view: Any) -> None:
        """Times a tenant scope's view (``scope()``) into this cache's figures: a scope has no
        label of its own, since scope names never leave the process."""
        for name in OPERATIONS:
            inner = getattr(view, name)
            if self._tracer is None:
                wrapper = _timed(self, name, inner)
            else:
                wrapper = _traced(self, name, inner, self._tracer, _COMMANDS[name], self._span_attributes[name])
            wrapper.__name__ = wrapper.__qualname__ = name
            wrapper.__doc__ = getattr(inner, "__doc__", None)
            setattr(view, name, wrapper)

    def _rewrap(self) -> None:
        """After a performance monitor was assigned (its ``attach`` took our wrappers off):
        wrap whatever answers now, which ``close()`` then puts back."""
        if not self._closed:
            self._wrap()


def _timed(recorder: Instrumentation, name: str, inner: Callable[..., Any]) -> Callable[..., Any]:
    record = recorder._record
    clock = time.perf_counter

    async def timed(key: str, *args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            result = await inner(key, *args, **kwargs)
        except Exception as error:
            record(name, clock() - started, None, error)
            raise
        record(name, clock() - started, result, None)
        return result

    return timed


def _traced(recorder: Instrumentation, name: str, inner: Callable[..., Any], tracer: Tracer, command: str,
            attributes: dict[str, Any]) -> Callable[..., Any]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    record = recorder._record
    clock = time.perf_counter
    start_span = tracer.start_span
    client = SpanKind.CLIENT

    async def traced(key: str, *args: Any, **kwargs: Any) -> Any:
        # A span that is not made current: nothing runs inside it in Python (the Redis call is
        # the Rust core's), and attaching a context costs as much as the span itself. No
        # exception is recorded on it: its message may quote the key.
        span = start_span(command, kind=client, attributes=attributes)
        try:
            started = clock()
            try:
                result = await inner(key, *args, **kwargs)
            except Exception as error:
                record(name, clock() - started, None, error)
                span.set_attribute("error.type", type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR))
                raise
            record(name, clock() - started, result, None)
            if name == "get":
                span.set_attribute("secure_redis.cache.hit", result is not None)
            return result
        finally:
            span.end()

    return traced


def _core_samples(stats: dict[str, Any]) -> list[Sample]:
    performance: dict[str, Any] = stats.get("performance") or {}
    memory: dict[str, Any] = stats.get("memory") or {}
    encryption: dict[str, Any] = stats.get("encryption") or {}
    redis: dict[str, Any] = stats.get("redis") or {}
    rejected: dict[str, Any] = performance.get("rejected_by_kind") or {}
    out: list[Sample] = [
        ("secure_redis_core_hits_total", ("l1",), performance.get("l1_hits", 0)),
        ("secure_redis_core_hits_total", ("redis",), performance.get("redis_hits", 0)),
        ("secure_redis_core_misses_total", (), performance.get("misses", 0)),
        ("secure_redis_core_sets_total", (), performance.get("sets", 0)),
        ("secure_redis_core_deletes_total", (), performance.get("deletes", 0)),
        ("secure_redis_redis_failures_total", (), performance.get("redis_failures", 0)),
        ("secure_redis_l1_only_writes_total", (), performance.get("l1_only_writes", 0)),
        ("secure_redis_l1_invalidations_total", (), memory.get("invalidations", 0)),
        ("secure_redis_l1_coherence_flushes_total", (), memory.get("coherence_flushes", 0)),
        ("secure_redis_l1_entries", (), memory.get("memory_cache_entries", 0)),
        ("secure_redis_compressed_writes_total", (), encryption.get("compressed_writes", 0)),
        ("secure_redis_plaintext_bytes_total", (), encryption.get("plaintext_bytes", 0)),
        ("secure_redis_stored_bytes_total", (), encryption.get("stored_bytes", 0)),
        ("secure_redis_reconnects_total", (), redis.get("reconnects", 0)),
    ]
    out += [("secure_redis_rejected_entries_total", (kind,), rejected.get(kind, 0)) for kind in _REJECTION_KINDS]
    return out


def _redis_cache(cache: Any) -> Any:
    """The GenericRedisCache behind ``cache`` (itself, or a CacheManager's), else None."""
    from .generic import GenericRedisCache

    if isinstance(cache, GenericRedisCache):
        return cache
    inner = cache.__dict__.get("cache")
    return inner if isinstance(inner, GenericRedisCache) else None


def _span_attributes(cache: Any, cache_name: str, operation: str) -> dict[str, Any]:
    """The database-client semantic conventions' attributes: system, operation, server and
    database index; never the key (no ``db.query.text``) nor the namespace."""
    attributes: dict[str, Any] = {"db.operation.name": _COMMANDS[operation], "secure_redis.cache.name": cache_name}
    redis_cache = _redis_cache(cache)
    if redis_cache is None:
        return attributes
    attributes["db.system.name"] = "redis"
    url: str = str(redis_cache.redis_url).split(",")[0]  # a cluster's first seed node
    host: str | None = None
    port: int | None = None
    database = ""
    try:
        parts = urlsplit(url)
        host, port, database = parts.hostname, parts.port, parts.path.strip("/")
    except ValueError:
        pass
    if host:
        attributes["server.address"] = host
    if port:
        attributes["server.port"] = port
    attributes["db.namespace"] = database if database.isdigit() else "0"
    return attributes


# -- Prometheus ----------------------------------------------------------------------------


class _PrometheusExport:
    """One registry's histogram and collector, shared by every cache instrumented into it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # cache name -> instrumentation; weak, so a cache dropped without close() is not kept
        # alive by a global registry (and its name is free again)
        self.live: weakref.WeakValueDictionary[str, Instrumentation] = weakref.WeakValueDictionary()
        registry.register(_Collector(self))

    def add(self, instrumentation: Instrumentation) -> None:
        name = instrumentation.cache_name
        if name in self.live:
            raise ValidationError(
                f"cache_name {name!r} is already instrumented in this registry; give each cache its own name",
                {"parameter": "cache_name"},
            )
        self.live[name] = instrumentation
        for operation in OPERATIONS:
            instrumentation._histograms[operation] = _Buckets()

    def remove(self, instrumentation: Instrumentation) -> None:
        if self.live.get(instrumentation.cache_name) is instrumentation:
            del self.live[instrumentation.cache_name]
        instrumentation._histograms.clear()


class _Buckets:
    """One latency histogram, kept as plain counters: an observation is a bisect and two
    additions, about a tenth of prometheus_client's Histogram.observe (a lock per bucket it
    walks). The collector turns it into a histogram family at scrape time. A scrape from
    another thread may see a sum one observation ahead of the counts; Prometheus tolerates it."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.counts):
            running += count
            buckets.append((bound, running))
        return buckets


class _Collector:
    """prometheus_client's custom collector: the samples of every live cache, at scrape time."""

    def __init__(self, export: _PrometheusExport) -> None:
        self.export = export

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for family in FAMILIES:
            labels = ["cache", *family.labels]
            if family.kind == "counter":
                families[family.name] = CounterMetricFamily(family.name, family.help, labels=labels)
            else:
                families[family.name] = GaugeMetricFamily(family.name, family.help, labels=labels)
        durations = HistogramMetricFamily(
            DURATION_METRIC, "seconds per cache call, from call to answer", labels=["cache", "operation"]
        )
        for instrumentation in list(self.export.live.values()):
            for name, values, value in instrumentation.samples():
                families[name].add_metric([instrumentation.cache_name, *values], value)
            for operation, buckets in list(instrumentation._histograms.items()):
                durations.add_metric([instrumentation.cache_name, operation], buckets.cumulative(), buckets.total)
        yield from families.values()
        yield durations


_prometheus_exports: weakref.WeakKeyDictionary[Any, _PrometheusExport] = weakref.WeakKeyDictionary()


def _prometheus_export(registry: Any) -> _PrometheusExport:
    try:
        import prometheus_client
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError("Prometheus export needs prometheus_client: pip install 'secure_redis[prometheus]'") from error
    if registry is True:
        registry = prometheus_client.REGISTRY
    if not isinstance(registry, prometheus_client.CollectorRegistry):
        raise ValidationError("prometheus must be True, False or a prometheus_client.CollectorRegistry",
                              {"parameter": "prometheus", "type": type(registry).__name__})
    export = _prometheus_exports.get(registry)
    if export is None:
        export = _prometheus_exports[registry] = _PrometheusExport(registry)
    return export


async def prometheus_exposition(registry: CollectorRegistry | None = None, *, refresh: bool = True) -> tuple[bytes, str]:
    """The text exposition of ``registry`` (default: prometheus_client's) and its content type,
    after refreshing the core counters of every cache instrumented into it (concurrently)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    registry = REGISTRY if registry is None else registry
    export = _prometheus_exports.get(registry)
    if refresh and export is not None:
        await asyncio.gather(*(instrumentation.refresh() for instrumentation in list(export.live.values())))
    return generate_latest(registry), CONTENT_TYPE_LATEST


# -- OpenTelemetry -----------------------------------------------------------------------------


class _OtelExport:
    """One meter provider's instruments, shared by every cache instrumented into it."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        meter = meter_provider.get_meter("secure_redis")
        self.live: weakref.WeakValueDictionary[str, Instrumentation] = weakref.WeakValueDictionary()
        self.duration: OtelHistogram = meter.create_histogram(
            OTEL_DURATION_METRIC, unit="s", description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )

        def observe_family(family: Family) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                observations: list[Observation] = []
                for instrumentation in list(self.live.values()):
                    for name, labels, value in instrumentation.samples():
                        if name == family.name:
                            attributes = {"secure_redis.cache.name": instrumentation.cache_name,
                                          **dict(zip(family.labels, labels))}
                            observations.append(Observation(value, attributes))
                return observations

            return callback

        for family in FAMILIES:
            callbacks = [observe_family(family)]
            if family.kind == "counter":
                meter.create_observable_counter(family.otel_name, callbacks=callbacks, description=family.help)
            else:
                meter.create_observable_gauge(family.otel_name, callbacks=callbacks, description=family.help)

    def add(self, instrumentation: Instrumentation) -> None:
        name = instrumentation.cache_name
        if name in self.live:
            raise ValidationError(
                f"cache_name {name!r} is already instrumented with this meter provider; give each cache its own name",
                {"parameter": "cache_name"},
            )
        self.live[name] = instrumentation

    def remove(self, instrumentation: Instrumentation) -> None:
        if self.live.get(instrumentation.cache_name) is instrumentation:
            del self.live[instrumentation.cache_name]

    def observe(self, instrumentation: Instrumentation, operation: str, seconds: float,
                error: BaseException | None) -> None:
        attributes = instrumentation._span_attributes[operation]
        if error is not None:
            attributes = {**attributes, "error.type": type(error).__qualname__}
        self.duration.record(seconds, attributes)


_otel_exports: weakref.WeakKeyDictionary[Any, _OtelExport] = weakref.WeakKeyDictionary()


def _otel_export(meter_provider: Any) -> _OtelExport:
    export = _otel_exports.get(meter_provider)
    if export is None:
        export = _otel_exports[meter_provider] = _OtelExport(meter_provider)
    return export


# -- the entry point -----------------------------------------------------------------------------


def instrument(
    cache: Any,
    *,
    cache_name: str = "default",
    prometheus: bool | CollectorRegistry = True,
    otel: bool = False,
    otel_spans: bool = True,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Instrumentation:
    """Exports ``cache``'s metrics (and, with ``otel=True``, a span per operation).

    ``cache_name`` is the ``cache`` label (Prometheus) or ``secure_redis.cache.name``
    attribute (OpenTelemetry): a name the application chooses, unique per registry.
    ``prometheus``: True for prometheus_client's default registry, a ``CollectorRegistry``,
    or False. ``otel=True``: spans from ``tracer_provider`` and metrics through
    ``meter_provider`` (each defaulting to OpenTelemetry's global one); ``otel_spans=False``
    keeps the metrics and leaves the spans out (the SDK's span is most of its cost). Returns the
    ``Instrumentation``; ``close()`` on it takes everything off again.
    """
    if not isinstance(cache_name, str) or not cache_name or len(cache_name) > 128 or not cache_name.isprintable():
        raise ValidationError("cache_name must be a printable str of 1 to 128 characters", {"parameter": "cache_name"})
    if not all(callable(getattr(cache, name, None)) for name in OPERATIONS):
        raise ValidationError("instrument() takes a secure_redis cache", {"type": type(cache).__name__})
    if isinstance(cache.__dict__.get("_instrumentation"), Instrumentation):
        raise ValidationError("this cache is already instrumented; close() that Instrumentation first",
                              {"cache_name": cache_name})
    if prometheus is False and not otel:
        raise ValidationError("instrument() with prometheus=False needs otel=True", {"parameter": "prometheus"})
    instrumentation = Instrumentation(cache, cache_name)
    instrumentation._span_attributes = {op: _span_attributes(cache, cache_name, op) for op in OPERATIONS}
    prometheus_export = _prometheus_export(prometheus) if prometheus is not False else None
    otel_export = None
    if otel:
        try:
            from opentelemetry import metrics as otel_metrics
            from opentelemetry import trace
        except ImportError as error:  # pragma: no cover - exercised only without the extra
            raise ImportError("OpenTelemetry export needs opentelemetry-api: pip install 'secure_redis[otel]'") from error
        otel_export = _otel_export(meter_provider or otel_metrics.get_meter_provider())
        if otel_spans:
            instrumentation._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("secure_redis")
    if prometheus_export is not None:
        prometheus_export.add(instrumentation)
        instrumentation._prometheus = prometheus_export
    if otel_export is not None:
        try:
            otel_export.add(instrumentation)
        except ValidationError:
            instrumentation.close()
            raise
        instrumentation._otel = otel_export
    instrumentation._wrap()
    cache.__dict__["_instrumentation"] = instrumentation
    return instrumentation


__all__ = ["FAMILIES", "Family", "Instrumentation", "instrument", "prometheus_exposition"]
