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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("off", "prometheus", "otel-noop", "otel-metrics", "otel-sdk")


def _p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


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

    config = sr.SecurityConfig(redis_auth=spec["password"], encryption_key=spec["key"], tls_ca_path=spec["ca"])
    variant = spec["variant"]
    value = {"text": "x" * 188}
    out: dict = {}

    l1 = sr.GenericRedisCache(spec["url"], security_config=config)
    l1_metrics = _instrument(l1, variant, "l1")
    assert await l1.connect()
    await l1.set("metrics-bench:l1", value, ttl=3600)
    times = []
    for _ in range(20_000):
        started = time.perf_counter()
        await l1.get("metrics-bench:l1")
        times.append(time.perf_counter() - started)
    out["l1_get_p50_us"] = _p50_us(times)
    await l1.disconnect()

    cache = sr.GenericRedisCache(spec["url"], security_config=config, enable_l1_cache=False)
    metrics = _instrument(cache, variant, "redis")
    assert await cache.connect()
    keys = [f"metrics-bench:{i}" for i in range(500)]
    times = []
    for i in range(2000):
        started = time.perf_counter()
        await cache.set(keys[i % 500], value, ttl=3600)
        times.append(time.perf_counter() - started)
    out["redis_set_p50_us"] = _p50_us(times)
    times = []
    for i in range(2000):
        started = time.perf_counter()
        await cache.get(keys[i % 500])
        times.append(time.perf_counter() - started)
    out["redis_get_p50_us"] = _p50_us(times)

    async def task(n: int) -> None:
        for j in range(200):
            await cache.get(keys[(n * 200 + j) % 500])

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task(n) for n in range(64)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out["redis_get_64_tasks_ops_per_s"] = 64 * 200 / wall
    out["redis_get_64_tasks_cpu_us_per_op"] = cpu / (64 * 200) * 1e6
    await cache.disconnect()
    if variant == "prometheus":  # every call recorded
        assert l1_metrics.hits == 20_000 and metrics.hits == 2000 + 64 * 200, (l1_metrics.hits, metrics.hits)
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
    import secure_redis as sr
    from secure_redis.testing import RedisServer, make_test_pki, random_password

    workdir = Path(tempfile.mkdtemp(prefix="secure-redis-metrics-bench-"))
    names = list(VARIANTS)
    results: dict[str, list[dict]] = {name: [] for name in names}
    try:
        pki = make_test_pki(workdir / "pki")
        password = random_password(32)
        spec = {"password": password, "key": sr.generate_encryption_key(), "ca": str(pki.ca_cert)}
        with RedisServer(workdir / "tls", password=password, cert=pki.server_cert, key=pki.server_key,
                         ca=pki.ca_cert) as server:
            spec["url"] = server.url
            for round_ in range(args.rounds):
                for name in names if round_ % 2 == 0 else names[::-1]:
                    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"),
                               METRICS_BENCH_SPEC=json.dumps({**spec, "variant": name}))
                    done = subprocess.run([sys.executable, __file__, "--worker"],
                                          env=env, capture_output=True, text=True, timeout=600)
                    if done.returncode != 0:
                        raise SystemExit(f"{name} failed: {done.stderr[-1000:]}")
                    results[name].append(json.loads(done.stdout))
                    with open("/proc/loadavg") as loadavg:
                        load = loadavg.read().split()[0]
                    print(f"round {round_ + 1}/{args.rounds} {name} (load {load})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"medians of {args.rounds} rounds, 200 B values (ratio to off = no instrument())")
    for metric in results[names[0]][0]:
        medians = {name: statistics.median(run[metric] for run in results[name]) for name in names}
        print(f"  {metric:34}" + "".join(
            f"  {name} {medians[name]:8.1f} ({medians[name] / medians[names[0]]:4.2f})" for name in names))


if __name__ == "__main__":
    main()
