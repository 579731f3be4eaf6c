"""What ``secure_redis.metrics.instrument`` costs: get/set through GenericRedisCache with
metrics off, with Prometheus export, and with OpenTelemetry (spans and metrics).

    python benches/metrics_overhead.py [--rounds 10]

Four variants of this checkout (the same package and ``_native.abi3.so``; only what is
attached to the cache differs):

  off         no instrument(): the class's own methods, today's code
  prometheus  instrument(cache, prometheus=<a registry of its own>): a latency histogram per
              operation and hit/miss counters, recorded in timed wrappers
  otel-noop   instrument(cache, prometheus=False, otel=True) with only opentelemetry-api
              installed (no SDK configured): the API's non-recording spans
  otel-metrics  the SDK's MeterProvider (an InMemoryMetricReader, never read) and
              otel_spans=False: the db.client.operation.duration histogram without spans
  otel-sdk    the SDK's TracerProvider too (no span processor: spans are built and ended,
              then dropped), spans on

One TLS redis-server serves every run. Each round runs every variant once, in a freshly exec'd
process, in an order that reverses every round; the table shows medians and each variant's
ratio to off. Workloads: sequential get of an L1 hit (no I/O, so the Python overhead shows
most), sequential get and set through Redis (L1 off), and 64-task concurrent gets through
Redis with client CPU per operation. Values are 200 B of JSON. Nothing is scraped during the
timed loops: a scrape reads counters, it does not slow the operations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _tls_redis import config_from_spec, tls_redis
from _workload import (GETS_PER_TASK, L1_GETS, SEQUENTIAL, TASKS, interleaved_rounds, l1_get_p50_us, print_medians,
                       redis_workload)

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("off", "prometheus", "otel-noop", "otel-metrics", "otel-sdk")


def _instrument(cache, variant: str, name: str):  # noqa: ANN001, ANN202
    from secure_redis.metrics import instrument

    if variant == "off":
        return None
    if variant == "prometheus":
        from prometheus_client import CollectorRegistry

        return instrument(cache, cache_name=name, prometheus=CollectorRegistry())
    if variant == "otel-noop":
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.trace import NoOpTracerProvider

        return instrument(cache, cache_name=name, prometheus=False, otel=True,
                          meter_provider=NoOpMeterProvider(), tracer_provider=NoOpTracerProvider())
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    return instrument(cache, cache_name=name, prometheus=False, otel=True, otel_spans=variant == "otel-sdk",
                      meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
                      tracer_provider=TracerProvider())


async def worker(spec: dict) -> dict:
    import secure_redis as sr

    config = config_from_spec(spec)
    variant = spec["variant"]

    l1 = sr.GenericRedisCache(spec["url"], security_config=config)
    l1_metrics = _instrument(l1, variant, "l1")
    assert await l1.connect()
    out: dict = {"l1_get_p50_us": await l1_get_p50_us(l1, "metrics-bench:l1")}
    await l1.disconnect()

    cache = sr.GenericRedisCache(spec["url"], security_config=config, enable_l1_cache=False)
    metrics = _instrument(cache, variant, "redis")
    assert await cache.connect()
    out.update(await redis_workload(cache, "metrics-bench"))
    await cache.disconnect()
    if variant == "prometheus":  # every call recorded
        assert l1_metrics.hits == L1_GETS and metrics.hits == SEQUENTIAL + TASKS * GETS_PER_TASK, (
            l1_metrics.hits, metrics.hits)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # the settings come from the environment, never the command line
        print(json.dumps(asyncio.run(worker(json.loads(os.environ["METRICS_BENCH_SPEC"])))))
        return

    sys.path.insert(0, str(ROOT / "python"))
    workdir = Path(tempfile.mkdtemp(prefix="secure-redis-metrics-bench-"))
    names = list(VARIANTS)
    try:
        with tls_redis(workdir) as redis:
            spec = redis.spec()
            results = interleaved_rounds(__file__, names, args.rounds, lambda name: {
                "PYTHONPATH": str(ROOT / "python"), "METRICS_BENCH_SPEC": json.dumps({**spec, "variant": name})})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"medians of {args.rounds} rounds, 200 B values (ratio to off = no instrument())")
    print_medians(results, 34, "8.1f")


if __name__ == "__main__":
    main()
