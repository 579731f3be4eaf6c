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

Peak RSS is each worker's own: VmHWM of its freshly exec'd process (ru_maxrss would carry the
parent's high-water mark across fork + exec). Each round also runs the Rust codec
micro-benchmark (`cargo bench --bench codec`, skipped with --no-codec) and times the Python
object <-> JSON conversion secure_redis uses; the targets of issue 6 are checked per round and
reported with their median, min and max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _run_record import command_line, machine, write_record
from _tls_redis import config_from_spec, tls_redis

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

        config = config_from_spec(spec)
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
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM): the worker was exec'd afresh, so it starts
    from nothing of the parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def soak(spec: dict) -> dict:
    """RSS at intervals across many operations through secure_redis (L1 on, as deployed)."""
    import secure_redis as sr

    cache = sr.GenericRedisCache(spec["tls_url"], security_config=config_from_spec(spec))
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


def time_conversion(spec: dict) -> dict:
    """Python object <-> JSON bytes through secure_redis's own converter (crates/py/src/json.rs),
    the part of the codec the Rust micro-benchmark stands in for with serde_json::Value."""
    import secure_redis as sr

    dumps, loads = sr._native.json_dumps, sr._native.json_loads
    out = {}
    for size_name, size in SIZES.items():
        value = make_value(size)
        data = dumps(value)
        assert loads(data) == value
        loops = max(200, 2_000_000 // size)
        timings = {}
        for label, call in (("dumps_us", lambda: dumps(value)), ("loads_us", lambda: loads(data))):
            best = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(loops):
                    call()
                best.append((time.perf_counter() - started) / loops * 1e6)
            timings[label] = statistics.median(best)
        timings["round_trip_us"] = timings["dumps_us"] + timings["loads_us"]
        out[size_name] = timings
    return out


def worker_main(name: str, spec: dict) -> None:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if name == "conversion":
        result = time_conversion(spec)
    else:
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
    # The spec holds the password and key: in the environment, never on a command line.
    done = subprocess.run([sys.executable, __file__, "--worker", name], env=dict(os.environ, BENCH_WORKER_SPEC=json.dumps(spec)),
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


DIVAN_ROW = re.compile(r"^[\s│├╰─]*(\S+)\s+([\d.]+) (ns|µs|us|ms|s)\s+│\s+([\d.]+) (ns|µs|us|ms|s)\s+│"
                       r"\s+([\d.]+) (ns|µs|us|ms|s)\s+│")
DIVAN_GROUP = re.compile(r"^[\s│├╰─]*([a-z_]+)\s+│")
UNIT_US = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
CODEC_SIZES = {"200": "200B", "2048": "2KB", "51200": "50KB"}


def parse_divan(text: str) -> dict:
    """{bench: {size: {fastest_us, median_us}}} from divan's table."""
    out: dict = {}
    group = None
    for line in text.splitlines():
        row = DIVAN_ROW.match(line)
        if row and group:
            size = CODEC_SIZES.get(row.group(1), row.group(1))
            out.setdefault(group, {})[size] = {
                "fastest_us": float(row.group(2)) * UNIT_US[row.group(3)],
                "median_us": float(row.group(6)) * UNIT_US[row.group(7)],
            }
        elif (match := DIVAN_GROUP.match(line)) and not row:
            group = match.group(1)
    return out


def run_codec_bench() -> dict:
    done = subprocess.run(["cargo", "bench", "--locked", "--quiet", "--bench", "codec"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"cargo bench failed:\n{done.stderr[-2000:]}")
    parsed = parse_divan(done.stdout)
    if "full_round_trip" not in parsed:
        raise RuntimeError(f"could not read divan's output:\n{done.stdout[-2000:]}")
    return parsed


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer operations (a smoke run, not for quoting)")
    parser.add_argument("--json", default=str(ROOT / "benches" / "results" / "latest.json"))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--soak", type=int, default=1_000_000, help="operations for the RSS run (0 skips it)")
    parser.add_argument("--no-codec", action="store_true", help="skip the Rust codec micro-benchmark")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, json.loads(os.environ.pop("BENCH_WORKER_SPEC")))
        return

    sys.path.insert(0, str(ROOT / "python"))
    from secure_redis.testing import RedisServer

    clients = [c for c in args.clients.split(",") if available(c)]
    skipped = sorted(set(args.clients.split(",")) - set(clients))
    scale = 0.2 if args.quick else 1.0
    conf = ["maxmemory-policy noeviction"]
    with tempfile.TemporaryDirectory(prefix="secure-redis-bench-") as workdir, \
            tls_redis(Path(workdir), extra_config=conf) as secured, \
            RedisServer(Path(workdir) / "plain", password=secured.password, tls=False, extra_config=conf) as plain:
        tls = secured.server
        base = {"password": secured.password, "key": secured.encryption_key, "ca": str(secured.ca_cert),
                "tls_url": tls.url_for("localhost"), "tls_port": tls.port, "plain_port": plain.port}
        results: dict[str, dict[str, list[dict]]] = {}
        codec_rounds: list[dict] = []
        conversion_rounds: list[dict] = []
        run_codec = not args.no_codec and shutil.which("cargo") is not None
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
            print(f"round {round_ + 1}/{args.rounds} Python <-> JSON conversion", file=sys.stderr, flush=True)
            conversion_rounds.append(run_worker("conversion", base))
            if run_codec:
                print(f"round {round_ + 1}/{args.rounds} cargo bench --bench codec", file=sys.stderr, flush=True)
                codec_rounds.append(run_codec_bench())
        soak_result = run_worker("soak", dict(base, soak_ops=args.soak)) if args.soak else None

    medians = {
        size: {name: {metric: statistics.median(r[metric] for r in runs) for metric in runs[0]}
               for name, runs in by_client.items()}
        for size, by_client in results.items()
    }
    ratios = ratio_table(medians)
    codec = summarise_codec(codec_rounds, conversion_rounds)
    targets = check_targets(results, codec_rounds, soak_result)
    print_table(medians, ratios, skipped, soak_result, args.rounds)
    print_codec(codec)
    print_targets(targets)
    write_record(args.json, {
        "command": command_line(),
        "rounds": args.rounds, "quick": args.quick, "concurrency": CONCURRENCY, "skipped": skipped,
        "machine": machine(),
        "medians": medians, "ratios_secure_redis_to_client": ratios, "codec": codec, "targets": targets,
        "raw": results, "raw_codec": codec_rounds, "raw_conversion": conversion_rounds, "soak": soak_result,
    })


def ratio_table(medians: dict) -> dict:
    """secure_redis / client, from the medians, for every figure the table prints: above 1
    favours secure_redis (latency, CPU and RSS are inverted so that holds for them too)."""
    out: dict = {}
    for size, by_client in medians.items():
        ours = by_client.get("secure_redis")
        if not ours:
            continue
        for name, m in by_client.items():
            out.setdefault(size, {})[name] = {
                "ops_per_s": ours["ops_per_s"] / m["ops_per_s"],
                "get_many_values_per_s": ours["get_many_values_per_s"] / m["get_many_values_per_s"],
                "p50_us": m["p50_us"] / ours["p50_us"],
                "p99_us": m["p99_us"] / ours["p99_us"],
                "cpu_us_per_op": m["cpu_us_per_op"] / ours["cpu_us_per_op"],
                "peak_rss_mb": m["peak_rss_mb"] / ours["peak_rss_mb"],
            }
    return out


def summarise_codec(codec_rounds: list[dict], conversion_rounds: list[dict]) -> dict:
    """Per size: medians (over rounds) of divan's per-round medians, with min and max."""
    out: dict = {}
    for bench in sorted({b for r in codec_rounds for b in r}):
        for size in SIZES:
            values = [r[bench][size]["median_us"] for r in codec_rounds if size in r.get(bench, {})]
            if values:
                out.setdefault(size, {})[bench + "_us"] = spread(values)
    for label in ("dumps_us", "loads_us", "round_trip_us"):
        for size in SIZES:
            values = [r[size][label] for r in conversion_rounds if size in r]
            if values:
                out.setdefault(size, {})["python_json_" + label] = spread(values)
    return out


def check_targets(results: dict, codec_rounds: list[dict], soak_result: dict | None) -> list[dict]:
    """Issue 6's targets, each evaluated on every round: met only if every round meets it."""
    def per_round(size: str, client: str, metric: str) -> list[float] | None:
        runs = results.get(size, {}).get(client)
        return [r[metric] for r in runs] if runs else None

    def ratios(size: str, client: str, metric: str) -> list[float] | None:
        ours, theirs = per_round(size, "secure_redis", metric), per_round(size, client, metric)
        if not ours or not theirs:
            return None
        return [a / b for a, b in zip(ours, theirs)]

    checks: list[tuple[str, list[float] | None, str, float]] = []
    for size in SIZES:
        checks.append((f"throughput >= 4x redis-py + Fernet, {size}", ratios(size, "redis_py_fernet_tls", "ops_per_s"),
                       ">=", 4.0))
    checks.append(("throughput >= 2x redis-py plaintext, 2KB", ratios("2KB", "redis_py_plain", "ops_per_s"), ">=", 2.0))
    for size in SIZES:
        checks.append((f"ahead of Valkey GLIDE over TLS, {size}", ratios(size, "glide_tls", "ops_per_s"), ">", 1.0))
    ours_p50, tls_p50 = per_round("2KB", "secure_redis", "p50_us"), per_round("2KB", "redis_py_tls", "p50_us")
    checks.append(("p50 at 2KB <= redis-py over TLS (secure - redis-py, us)",
                   [a - b for a, b in zip(ours_p50, tls_p50)] if ours_p50 and tls_p50 else None, "<=", 0.0))
    checks.append(("client CPU per op at 2KB <= 25 us", per_round("2KB", "secure_redis", "cpu_us_per_op"), "<=", 25.0))
    checks.append(("get_many 100 x 2KB >= 100,000 values/s", per_round("2KB", "secure_redis", "get_many_values_per_s"),
                   ">=", 100_000.0))
    full = [r["full_round_trip"]["2KB"]["median_us"] for r in codec_rounds if "full_round_trip" in r]
    bare = [r["encode_then_decode"]["2KB"]["median_us"] for r in codec_rounds if "encode_then_decode" in r]
    checks.append(("codec encode + decode of 2KB incl. serialisation < 5 us", full or None, "<", 5.0))
    checks.append(("codec encode + decode of 2KB, JSON bytes only (no serialisation) < 5 us", bare or None, "<", 5.0))
    if soak_result:
        checks.append(("RSS flat within 10% over 1,000,000 operations (growth after warm-up)",
                       [soak_result["growth_after_warmup"]], "<=", 0.10))
    compare = {">=": lambda v, t: v >= t, ">": lambda v, t: v > t, "<=": lambda v, t: v <= t, "<": lambda v, t: v < t}
    out = []
    for name, values, op, threshold in checks:
        if not values:
            out.append({"target": name, "verdict": "not measured"})
            continue
        meets = [compare[op](v, threshold) for v in values]
        median_meets = compare[op](statistics.median(values), threshold)
        verdict = "met" if all(meets) else ("met at the median only" if median_meets else "missed")
        out.append({"target": name, "threshold": f"{op} {threshold:g}", **spread(values), "rounds": values,
                    "verdict": verdict})
    return out


def print_table(medians: dict, ratios: dict, skipped: list[str], soak_result: dict | None, rounds: int) -> None:
    print(f"\nMedians of {rounds} interleaved rounds; x = secure_redis / client (higher favours secure_redis "
          f"for throughput, lower-is-better metrics inverted). {CONCURRENCY} concurrent tasks.")
    for size, by_client in medians.items():
        print(f"\n{size} values")
        print(f"  {'client':<22}{'ops/s (64 tasks)':>18}{'x':>7}{'p50 µs':>9}{'p99 µs':>9}{'CPU µs/op':>11}"
              f"{'get_many val/s':>16}{'x':>7}{'RSS MB':>8}")
        for name, m in by_client.items():
            r = ratios.get(size, {}).get(name, {})
            print(f"  {name:<22}{m['ops_per_s']:>18,.0f}{r.get('ops_per_s', float('nan')):>7.2f}{m['p50_us']:>9.0f}"
                  f"{m['p99_us']:>9.0f}{m['cpu_us_per_op']:>11.1f}{m['get_many_values_per_s']:>16,.0f}"
                  f"{r.get('get_many_values_per_s', float('nan')):>7.2f}{m['peak_rss_mb']:>8.1f}")
    if skipped:
        print(f"\nnot installed, skipped: {', '.join(skipped)}")
    if soak_result:
        print(f"\nRSS across {soak_result['operations']:,} operations (2 KB, L1 on): {soak_result['rss_mb']} MB; "
              f"growth after warm-up {soak_result['growth_after_warmup'] * 100:.1f}%")


def print_codec(codec: dict) -> None:
    if not codec:
        return
    print("\nCodec, µs per value: median over rounds of divan's medians [min-max]")
    columns = [("encode", "encode_us"), ("decode", "decode_us"), ("enc+dec", "encode_then_decode_us"),
               ("ser+enc", "full_encode_us"), ("dec+parse", "full_decode_us"), ("full r/t", "full_round_trip_us"),
               ("py dumps", "python_json_dumps_us"), ("py loads", "python_json_loads_us")]
    print(f"  {'size':<6}" + "".join(f"{label:>18}" for label, _ in columns))
    for size, figures in codec.items():
        cells = []
        for _, key in columns:
            f = figures.get(key)
            cells.append(f"{f['median']:.2f} [{f['min']:.2f}-{f['max']:.2f}]" if f else "-")
        print(f"  {size:<6}" + "".join(f"{c:>18}" for c in cells))


def print_targets(targets: list[dict]) -> None:
    print("\nTargets (every round must meet a target for 'met'):")
    for t in targets:
        if "median" not in t:
            print(f"  {t['target']}: {t['verdict']}")
            continue
        print(f"  {t['target']} ({t['threshold']}): median {t['median']:,.2f}, min {t['min']:,.2f}, "
              f"max {t['max']:,.2f} -> {t['verdict']}")


if __name__ == "__main__":
    main()
