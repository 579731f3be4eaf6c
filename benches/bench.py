"""Side-by-side benchmark: secure_redis against the Python stack it replaces, in one run.

    python benches/bench.py [--rounds 3] [--quick] [--json benches/results/latest.json]

Starts its own TLS redis-server (and a plaintext one for the plaintext baseline) on free
loopback ports, then runs the same workloads through each client in interleaved rounds, each
client in a fresh subprocess (so peak RSS and CPU are its own):

  secure_redis           GenericRedisCache: TLS + AUTH + Fernet (L1 off: every call goes to Redis)
  secure_redis_ai        AIResponseCache, same settings
  redis_py_fernet_tls    redis-py (hiredis) over TLS + cryptography Fernet: the stack we replace
  redis_py_tls           redis-py over TLS, no encryption
  redis_py_plain         redis-py in plaintext, no encryption
  glide_tls              Valkey GLIDE over TLS, no encryption (when installed)

Workloads per value size (200 B, 2 KB, 50 KB of JSON): sequential latency (p50, p99 of a
90/10 get/set mix), 64-task concurrent throughput (90/10 mix), and get_many of 100 keys. It
prints medians over the rounds, each client's ratio to secure_redis, client CPU per operation
and peak RSS, and writes the same as JSON. `--soak N` adds an RSS-flatness run of N operations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ["secure_redis", "secure_redis_ai", "redis_py_fernet_tls", "redis_py_tls", "redis_py_plain", "glide_tls"]
SIZES = {"200B": 200, "2KB": 2048, "50KB": 50 * 1024}
CONCURRENCY = 64
KEYSPACE = 1000
WORDS = ("the model answered that latency depends on serialization encryption network round trips and "
         "the event loop while the cache keeps private responses encrypted at rest and in transit").split()


def make_value(size: int, seed: int = 7) -> dict:
    """A JSON object of about `size` bytes: an LLM-style response, compressible like real text."""
    rng = random.Random(seed)
    text = []
    length = 0
    while length < size - 120:
        word = rng.choice(WORDS)
        text.append(word)
        length += len(word) + 1
    return {"model": "bench-llm", "operation": "summarize", "tokens": rng.randint(10, 999),
            "result": " ".join(text)}


# --------------------------------------------------------------------------- clients (worker side)

class Client:
    async def set(self, key: str, value: dict) -> None: ...
    async def get(self, key: str): ...
    async def get_many(self, keys: list[str]) -> int: ...
    async def close(self) -> None: ...


async def open_client(name: str, spec: dict) -> Client:
    if name.startswith("secure_redis"):
        import secure_redis as sr

        config = sr.SecurityConfig(redis_auth=spec["password"], encryption_key=spec["key"], tls_ca_path=spec["ca"])
        cls = sr.AIResponseCache if name == "secure_redis_ai" else sr.GenericRedisCache
        cache = cls(spec["tls_url"], security_config=config, enable_l1_cache=False, default_ttl=3600)
        assert await cache.connect()

        class Secure(Client):
            async def set(self, key, value):
                await cache.set(key, value)

            async def get(self, key):
                return await cache.get(key)

            async def get_many(self, keys):
                return len(await cache.get_many(keys))

            async def close(self):
                await cache.disconnect()

        return Secure()

    if name.startswith("redis_py"):
        import redis.asyncio as aioredis
        from cryptography.fernet import Fernet

        if name == "redis_py_plain":
            r = aioredis.Redis(host="127.0.0.1", port=spec["plain_port"], password=spec["password"])
        else:
            r = aioredis.Redis(host="127.0.0.1", port=spec["tls_port"], password=spec["password"], ssl=True,
                               ssl_ca_certs=spec["ca"])
        fernet = Fernet(spec["key"]) if name == "redis_py_fernet_tls" else None

        class RedisPy(Client):
            async def set(self, key, value):
                data = json.dumps(value).encode()
                await r.set(key, fernet.encrypt(data) if fernet else data, ex=3600)

            async def get(self, key):
                data = await r.get(key)
                if data is None:
                    return None
                return json.loads(fernet.decrypt(data) if fernet else data)

            async def get_many(self, keys):
                found = [d for d in await r.mget(keys) if d is not None]
                values = [json.loads(fernet.decrypt(d) if fernet else d) for d in found]
                return len(values)

            async def close(self):
                await r.aclose()

        return RedisPy()

    if name == "glide_tls":
        from glide import GlideClient, GlideClientConfiguration, NodeAddress, ServerCredentials
        from glide_shared.config import AdvancedGlideClientConfiguration, TlsAdvancedConfiguration

        config = GlideClientConfiguration(
            [NodeAddress("localhost", spec["tls_port"])], use_tls=True,
            credentials=ServerCredentials(password=spec["password"]), request_timeout=5000,
            advanced_config=AdvancedGlideClientConfiguration(
                tls_config=TlsAdvancedConfiguration(root_pem_cacerts=Path(spec["ca"]).read_bytes())),
        )
        g = await GlideClient.create(config)

        class Glide(Client):
            async def set(self, key, value):
                from glide import ExpirySet, ExpiryType

                await g.set(key, json.dumps(value), expiry=ExpirySet(ExpiryType.SEC, 3600))

            async def get(self, key):
                data = await g.get(key)
                return None if data is None else json.loads(data)

            async def get_many(self, keys):
                return len([json.loads(d) for d in await g.mget(keys) if d is not None])

            async def close(self):
                await g.close()

        return Glide()
    raise SystemExit(f"unknown client {name}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run_workloads(name: str, spec: dict) -> dict:
    client = await open_client(name, spec)
    value = make_value(spec["size"])
    prefix = f"bench:{name}:{spec['size_name']}:"
    keys = [f"{prefix}{i}" for i in range(KEYSPACE)]
    for i in range(0, KEYSPACE, 100):
        await asyncio.gather(*(client.set(k, value) for k in keys[i:i + 100]))
    rng = random.Random(1)

    async def one_op() -> None:
        key = keys[rng.randrange(KEYSPACE)]
        if rng.random() < 0.9:
            assert await client.get(key) is not None
        else:
            await client.set(key, value)

    # Sequential latency.
    latencies = []
    for _ in range(spec["sequential_ops"]):
        started = time.perf_counter()
        await one_op()
        latencies.append(time.perf_counter() - started)

    # Concurrent throughput (64 tasks), with client CPU per operation.
    per_task = spec["concurrent_ops"] // CONCURRENCY

    async def worker() -> None:
        for _ in range(per_task):
            await one_op()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ops = per_task * CONCURRENCY

    # get_many of 100 keys.
    batches = spec["get_many_batches"]
    started = time.perf_counter()
    fetched = 0
    for b in range(batches):
        start = (b * 100) % (KEYSPACE - 100)
        fetched += await client.get_many(keys[start:start + 100])
    get_many_wall = time.perf_counter() - started
    assert fetched == batches * 100, fetched
    await client.close()
    return {
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
        "ops_per_s": ops / wall,
        "cpu_us_per_op": cpu / ops * 1e6,
        "get_many_values_per_s": fetched / get_many_wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def soak(spec: dict) -> dict:
    """RSS at intervals across many operations through secure_redis (L1 on, as deployed)."""
    import secure_redis as sr

    config = sr.SecurityConfig(redis_auth=spec["password"], encryption_key=spec["key"], tls_ca_path=spec["ca"])
    cache = sr.GenericRedisCache(spec["tls_url"], security_config=config)
    await cache.connect()
    value = make_value(2048)
    total, step = spec["soak_ops"], spec["soak_ops"] // 10
    samples = []

    def rss_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    async def worker(n: int, offset: int) -> None:
        for i in range(n):
            key = f"soak:{(offset + i) % 5000}"
            if i % 10 == 0:
                await cache.set(key, value)
            else:
                await cache.get(key)

    done = 0
    started = time.perf_counter()
    while done < total:
        await asyncio.gather(*(worker(step // CONCURRENCY, t * 997 + done) for t in range(CONCURRENCY)))
        done += (step // CONCURRENCY) * CONCURRENCY
        samples.append(round(rss_mb(), 1))
    await cache.disconnect()
    warm = samples[1:] or samples
    return {"operations": done, "seconds": time.perf_counter() - started, "rss_mb": samples,
            "growth_after_warmup": (max(warm) - min(warm)) / min(warm)}


def worker_main(name: str, spec: dict) -> None:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(soak(spec) if name == "soak" else run_workloads(name, spec))
    print(json.dumps(result))


# --------------------------------------------------------------------------- orchestration (parent)

def available(name: str) -> bool:
    module = {"glide_tls": "glide", "redis_py_fernet_tls": "redis"}.get(name, "redis" if "redis_py" in name else None)
    if module is None:
        return True
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def run_worker(name: str, spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", name, json.dumps(spec)],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer operations (a smoke run, not for quoting)")
    parser.add_argument("--json", default=str(ROOT / "benches" / "results" / "latest.json"))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--soak", type=int, default=1_000_000, help="operations for the RSS run (0 skips it)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker[0], json.loads(args.worker[1]))
        return

    sys.path.insert(0, str(ROOT / "python"))
    import secure_redis as sr
    from secure_redis.testing import RedisServer, make_test_pki, random_password

    clients = [c for c in args.clients.split(",") if available(c)]
    skipped = sorted(set(args.clients.split(",")) - set(clients))
    scale = 0.2 if args.quick else 1.0
    workdir = Path(tempfile.mkdtemp(prefix="secure-redis-bench-"))
    pki = make_test_pki(workdir / "pki")
    password = random_password(32)
    base = {"password": password, "key": sr.generate_encryption_key(), "ca": str(pki.ca_cert)}
    conf = ["maxmemory-policy noeviction"]
    with RedisServer(workdir / "tls", password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert,
                     extra_config=conf) as tls, \
            RedisServer(workdir / "plain", password=password, tls=False, extra_config=conf) as plain:
        base.update(tls_url=tls.url_for("localhost"), tls_port=tls.port, plain_port=plain.port)
        results: dict[str, dict[str, list[dict]]] = {}
        for round_ in range(args.rounds):
            order = clients if round_ % 2 == 0 else list(reversed(clients))  # interleaved rounds
            for size_name in args.sizes.split(","):
                size = SIZES[size_name]
                ops = int((20_000 if size < 10_000 else 4_000) * scale) // CONCURRENCY * CONCURRENCY
                spec = dict(base, size=size, size_name=size_name, concurrent_ops=ops,
                            sequential_ops=int(2000 * scale), get_many_batches=int(200 * scale) or 10)
                for name in order:
                    print(f"round {round_ + 1}/{args.rounds} {size_name:>4} {name}", file=sys.stderr, flush=True)
                    results.setdefault(size_name, {}).setdefault(name, []).append(run_worker(name, spec))
        soak_result = run_worker("soak", dict(base, soak_ops=args.soak)) if args.soak else None

    medians = {
        size: {name: {metric: statistics.median(r[metric] for r in runs) for metric in runs[0]}
               for name, runs in by_client.items()}
        for size, by_client in results.items()
    }
    print_table(medians, skipped, soak_result, args.rounds)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "rounds": args.rounds, "quick": args.quick, "concurrency": CONCURRENCY, "skipped": skipped,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "medians": medians, "raw": results, "soak": soak_result,
    }, indent=2))
    print(f"\nJSON: {out}")


def print_table(medians: dict, skipped: list[str], soak_result: dict | None, rounds: int) -> None:
    print(f"\nMedians of {rounds} interleaved rounds; x = secure_redis / client (higher favours secure_redis "
          f"for throughput, lower-is-better metrics inverted). {CONCURRENCY} concurrent tasks.")
    for size, by_client in medians.items():
        ours = by_client.get("secure_redis")
        print(f"\n{size} values")
        print(f"  {'client':<22}{'ops/s (64 tasks)':>18}{'x':>7}{'p50 µs':>9}{'p99 µs':>9}{'CPU µs/op':>11}"
              f"{'get_many val/s':>16}{'x':>7}{'RSS MB':>8}")
        for name, m in by_client.items():
            ratio = ours["ops_per_s"] / m["ops_per_s"] if ours else float("nan")
            gm_ratio = ours["get_many_values_per_s"] / m["get_many_values_per_s"] if ours else float("nan")
            print(f"  {name:<22}{m['ops_per_s']:>18,.0f}{ratio:>7.2f}{m['p50_us']:>9.0f}{m['p99_us']:>9.0f}"
                  f"{m['cpu_us_per_op']:>11.1f}{m['get_many_values_per_s']:>16,.0f}{gm_ratio:>7.2f}"
                  f"{m['peak_rss_mb']:>8.0f}")
    if skipped:
        print(f"\nnot installed, skipped: {', '.join(skipped)}")
    if soak_result:
        print(f"\nRSS across {soak_result['operations']:,} operations (2 KB, L1 on): {soak_result['rss_mb']} MB; "
              f"growth after warm-up {soak_result['growth_after_warmup'] * 100:.1f}%")


if __name__ == "__main__":
    main()
