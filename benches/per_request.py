"""A cached answer through a FastAPI app that builds its cache per request (the starter
backend's dependency does) against one that keeps a cache on app.state, side by side.

    python benches/per_request.py [--requests 300] [--rounds 5]

Three endpoints over one TLS redis-server, each returning an AIResponseCache hit:
``shared`` (one cache for the app), ``per_request`` (a new cache and ``connect()`` in the
dependency on every request, connections shared, the default) and ``per_request_unshared``
(the same with ``share_connection=False``: a TLS handshake and AUTH per request, as before
sharing). Requests go through httpx's ASGI transport, so the figures are the app's own time
without a network hop to the app. Rounds interleave the endpoints; the table shows the median
over rounds of each round's p50 and p90, the difference to ``shared``, and how many
connections the server accepted per request (its ``total_connections_received``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _tls_redis import tls_redis


async def run(args: argparse.Namespace) -> None:
    import httpx
    import redis
    from fastapi import Depends, FastAPI

    import secure_redis as sr

    with tempfile.TemporaryDirectory(prefix="secure-redis-per-request-") as workdir, \
            tls_redis(Path(workdir)) as tls:
        server, config = tls.server, tls.config()
        admin = redis.Redis(host=server.host, port=server.port, password=tls.password, ssl=True,
                            ssl_ca_certs=str(tls.ca_cert))
        app = FastAPI()
        app.state.cache = sr.AIResponseCache(server.url, security_config=config)
        assert await app.state.cache.connect()

        def factory(share: bool):
            async def dependency() -> sr.AIResponseCache:
                cache = sr.AIResponseCache(server.url, security_config=config, share_connection=share)
                await cache.connect()
                return cache

            return dependency

        async def answer(cache: sr.AIResponseCache) -> dict:
            value = await cache.get(cache.build_key("a prompt", "summarize", {}))
            assert value is not None
            return value

        @app.get("/shared")
        async def shared() -> dict:
            return await answer(app.state.cache)

        @app.get("/per_request")
        async def per_request(cache: sr.AIResponseCache = Depends(factory(True))) -> dict:
            return await answer(cache)

        @app.get("/per_request_unshared")
        async def per_request_unshared(cache: sr.AIResponseCache = Depends(factory(False))) -> dict:
            return await answer(cache)

        await app.state.cache.set(app.state.cache.build_key("a prompt", "summarize", {}), {"summary": "x" * 200})
        names = ["shared", "per_request", "per_request_unshared"]
        p50: dict[str, list[float]] = {name: [] for name in names}
        p90: dict[str, list[float]] = {name: [] for name in names}
        per_request_connections: dict[str, list[float]] = {name: [] for name in names}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name in names:  # warm-up
                for _ in range(20):
                    assert (await client.get(f"/{name}")).status_code == 200
            for round_ in range(args.rounds):
                order = names if round_ % 2 == 0 else names[::-1]
                for name in order:
                    before = int(admin.info("stats")["total_connections_received"])
                    latencies = []
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        reply = await client.get(f"/{name}")
                        latencies.append(time.perf_counter() - started)
                        assert reply.status_code == 200
                    after = int(admin.info("stats")["total_connections_received"])
                    latencies.sort()
                    p50[name].append(latencies[len(latencies) // 2] * 1000)
                    p90[name].append(latencies[int(len(latencies) * 0.9)] * 1000)
                    per_request_connections[name].append((after - before - 1) / args.requests)
        admin.close()
        await app.state.cache.disconnect()
    base = statistics.median(p50["shared"])
    print(f"{'endpoint':24} {'p50 ms':>8} {'p90 ms':>8} {'p50 - shared':>13} {'connections/request':>20}")
    for name in names:
        median50 = statistics.median(p50[name])
        print(f"{name:24} {median50:8.3f} {statistics.median(p90[name]):8.3f} {median50 - base:+13.3f} "
              f"{statistics.median(per_request_connections[name]):20.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
