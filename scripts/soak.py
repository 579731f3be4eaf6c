"""A bounded soak: a mixed workload through CacheManager while Redis is killed, frozen and
restarted and the encryption key is rotated. Minutes by default (--minutes for longer).

Prints operations done, errors by type (exceptions that reached the caller), reads that
missed because of a fault, reads that returned a value older than the last write (must be
zero), the slowest call and RSS at start and end; --json writes the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

import secure_redis as sr  # noqa: E402
from secure_redis.testing import RedisServer, make_test_pki, random_password  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def soak(minutes: float, tasks: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="secure-redis-soak-"))
    pki = make_test_pki(work / "pki")
    password = random_password(32)
    first_key = sr.generate_encryption_key()
    server = RedisServer(work / "redis", password=password, cert=pki.server_cert, key=pki.server_key,
                         ca=pki.ca_cert, extra_config=["appendonly yes", "appendfsync everysec"]).start()

    def manager_for(keys: str) -> sr.CacheManager:
        config = sr.SecurityConfig(redis_auth=password, encryption_key=keys, tls_ca_path=pki.ca_cert,
                                   connection_timeout=2.0, socket_timeout=1.0, max_retries=1, retry_delay=0.05)
        return sr.CacheManager(cache=sr.GenericRedisCache(server.url, security_config=config),
                               probe_interval=0.1)

    manager = manager_for(first_key)
    await manager.connect()
    errors: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    last_written: dict[str, object] = {}
    fault_active = False
    slowest = 0.0
    rss_start = rss_mb()
    deadline = time.monotonic() + minutes * 60
    rng = random.Random(5)
    faults: list[str] = []

    async def worker(task: int) -> None:
        nonlocal slowest
        n = 0
        while time.monotonic() < deadline:
            n += 1
            key = f"soak:{task}:{rng.randrange(50)}"
            started = time.monotonic()
            try:
                roll = rng.random()
                if roll < 0.2:
                    value = {"task": task, "n": n, "text": "x" * rng.choice((50, 2000, 20000))}
                    await manager.set(key, value, ttl=600)
                    last_written[key] = value
                    counts["set"] += 1
                elif roll < 0.25:
                    await manager.delete(key)
                    last_written[key] = None
                    counts["delete"] += 1
                else:
                    value = await manager.get(key)
                    counts["get"] += 1
                    expected = last_written.get(key)
                    if value is None and expected is not None:
                        counts["miss_during_fault" if fault_active or manager.cache_type != "redis_secure"
                               else "miss"] += 1
                    elif value is not None and value != expected:
                        counts["stale_read"] += 1
            except Exception as error:  # counted: the contract is that none reach callers
                errors[type(error).__name__] += 1
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.002)

    async def chaos() -> None:
        nonlocal fault_active, manager
        cycle = 0
        rotated = False
        while time.monotonic() < deadline - 5:
            await asyncio.sleep(8)
            cycle += 1
            fault_active = True
            if cycle % 2:
                faults.append("SIGKILL, restart after 2 s")
                server.kill()
                await asyncio.sleep(2)
                server.restart()
            else:
                faults.append("SIGSTOP for 1.5 s")
                server.pause()
                await asyncio.sleep(1.5)
                server.resume()
            await asyncio.sleep(3)
            fault_active = False
            if not rotated and time.monotonic() > deadline - minutes * 30:
                rotated = True
                faults.append("encryption key rotated (new key first, old key kept)")
                old = manager
                manager = manager_for(f"{sr.generate_encryption_key()},{first_key}")
                await manager.connect()
                await old.disconnect()

    await asyncio.gather(chaos(), *(worker(t) for t in range(tasks)))
    await manager.disconnect()
    server.stop()
    return {
        "minutes": minutes, "tasks": tasks, "operations": sum(counts[k] for k in ("get", "set", "delete")),
        "counts": dict(counts), "errors_by_type": dict(errors), "faults": faults,
        "slowest_call_s": round(slowest, 3), "rss_mb_start": round(rss_start, 1), "rss_mb_end": round(rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.tasks))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = not result["errors_by_type"] and not result["counts"].get("stale_read")
    print("SOAK PASSED" if ok else "SOAK FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
