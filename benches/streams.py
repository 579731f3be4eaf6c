"""Time to the first chunk of an LLM stream through ``AIResponseCache.stream``: on a miss (the
model's own first chunk, plus our bookkeeping) against a hit (a replay from Redis), side by side.

    python benches/streams.py [--rounds 15] [--first-chunk-ms 300] [--chunks 40]

The "model" waits ``--first-chunk-ms`` before its first chunk and 10 ms between the others.
Each round streams one new key (a miss), then replays it unpaced and paced (``pace=True``:
the gaps it first came with). The table shows medians over rounds of the time to the first
chunk and to the last, and each row's ratio to the miss. One TLS redis-server from the test
harness; L1 on (the default), so a hit in the producing process is answered from memory; the
``hit (other cache)`` row reads through a second cache with its own connection, as another
worker process would.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator

from _tls_redis import tls_redis


async def run(args: argparse.Namespace) -> None:
    import secure_redis as sr

    with tempfile.TemporaryDirectory(prefix="secure-redis-streams-") as workdir, tls_redis(Path(workdir)) as redis:
        config = redis.config()
        cache = sr.AIResponseCache(redis.server.url, security_config=config)
        other = sr.AIResponseCache(redis.server.url, security_config=config, share_connection=False)
        assert await cache.connect() and await other.connect()

        async def model() -> AsyncIterator[str]:
            await asyncio.sleep(args.first_chunk_ms / 1000)
            for n in range(args.chunks):
                if n:
                    await asyncio.sleep(0.01)
                yield f"token{n} "

        async def timed(stream: AsyncIterator[Any]) -> tuple[float, float]:
            started = time.perf_counter()
            first = None
            async for _chunk in stream:
                if first is None:
                    first = time.perf_counter() - started
            return (first or 0.0) * 1000, (time.perf_counter() - started) * 1000

        rows: dict[str, list[tuple[float, float]]] = {"miss": [], "hit": [], "hit (other cache)": [], "hit, paced": []}
        for round_ in range(args.rounds):
            name = cache.build_key(f"prompt {round_} {time.time()}", "chat", {"stream": True})
            rows["miss"].append(await timed(cache.stream(name, model)))
            rows["hit"].append(await timed(cache.stream(name, model)))
            rows["hit (other cache)"].append(await timed(other.stream(name, model)))
            rows["hit, paced"].append(await timed(cache.stream(name, model, pace=True)))
        await cache.invalidate_by_operation("chat")
        await cache.disconnect()
        await other.disconnect()

    miss_first = statistics.median(first for first, _ in rows["miss"])
    print(f"time to first/last chunk, ms: medians of {args.rounds} rounds; model: first chunk after "
          f"{args.first_chunk_ms} ms, then {args.chunks - 1} more 10 ms apart")
    print(f"  {'':20} {'first':>9} {'last':>9} {'first vs miss':>14}")
    for label, samples in rows.items():
        first = statistics.median(s[0] for s in samples)
        last = statistics.median(s[1] for s in samples)
        print(f"  {label:20} {first:9.3f} {last:9.3f} {first / miss_first:14.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--first-chunk-ms", type=float, default=300.0)
    parser.add_argument("--chunks", type=int, default=40)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
