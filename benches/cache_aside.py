"""Cache-aside (issue 17): stampedes, early refresh under load and the client CPU of a hit.

    python benches/cache_aside.py [--rounds 7] [--seconds 10] [--rate 1000] [--calls 20000] \
        [--json benches/results/cache_aside.json]

One TLS redis-server (started here, with a throwaway PKI) serves every part:

(a) 64 concurrent misses on one key in one process: loader calls (expect 1);
(b) 4 OS processes (spawn) x 16 concurrent misses, with ``lock=True`` and without: loader
    calls (expect 1 / at most 4). Settings reach the children over multiprocessing's pipe,
    never argv;
(c) a 200 ms loader behind one hot key asked ``--rate`` times a second for ``--seconds``
    (open loop: requests start on schedule whether or not earlier ones finished), ttl=2, with
    early refresh (``early_refresh=1``, without and with ``lock=True``) and without: requests
    that had to wait for a load ("cold": latency >= 100 ms), loads, p50/p99 latency and the
    rate reached;
(d) client CPU per call (``time.process_time`` over ``--calls`` calls, ``--calls-no-l1`` with
    L1 off): ``get_or_set`` on a hit against ``get`` on a hit, L1 on and off; each round
    measures get, get_or_set, get, get_or_set and keeps the lower figure of each; medians over
    ``--rounds`` rounds and the median difference (the issue's bar: at most 2 us more than
    ``get``).

Figures are medians over rounds; (a) to (c) also print each round's counts. The table is
printed and written as JSON (benches/results/ is not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _run_record import command_line, load_average, machine, write_record
from _tls_redis import config_from_spec, tls_redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))

LOADER_SECONDS = 0.2
COLD_SECONDS = 0.1
CPU_BAR_US = 2.0


def make_cache(spec: dict[str, Any], **kwargs: Any):
    import secure_redis as sr

    return sr.GenericRedisCache(spec["url"], security_config=config_from_spec(spec), **kwargs)


# -- (a) and (b): stampedes ------------------------------------------------------------------------


async def herd(spec: dict[str, Any], key: str, lock: bool, concurrency: int, counter: Any = None) -> int:
    """``concurrency`` concurrent get_or_set on one missing key; this process's loader calls."""
    cache = make_cache(spec)
    assert await cache.connect()
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        if counter is not None:
            with counter.get_lock():
                counter.value += 1
        await asyncio.sleep(0.3)
        return "v"

    try:
        if counter is not None:  # in a child: every process connected before anyone asks
            ready, go = spec["ready"], spec["go"]
            with ready.get_lock():
                ready.value += 1
            if not await asyncio.to_thread(go.wait, 60):
                raise RuntimeError("never told to go")
        results = await asyncio.gather(*(cache.get_or_set(key, loader, 60, lock=lock) for _ in range(concurrency)))
        assert results == ["v"] * concurrency
    finally:
        await cache.disconnect()
    return calls


def herd_child(spec: dict[str, Any], key: str, lock: bool, concurrency: int, counter: Any) -> None:
    asyncio.run(herd(spec, key, lock, concurrency, counter))


def processes_herd(spec: dict[str, Any], key: str, lock: bool, processes: int = 4, concurrency: int = 16) -> int:
    ctx = multiprocessing.get_context("spawn")
    counter, ready, go = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Event()
    child_spec = dict(spec, ready=ready, go=go)
    children = [ctx.Process(target=herd_child, args=(child_spec, key, lock, concurrency, counter), daemon=True)
                for _ in range(processes)]
    try:
        for child in children:
            child.start()
        deadline = time.monotonic() + 60
        while ready.value < processes and time.monotonic() < deadline:
            if any(not c.is_alive() for c in children):
                raise RuntimeError("a child died before it was ready")
            time.sleep(0.02)
        go.set()
        for child in children:
            child.join(timeout=60)
        if any(c.exitcode != 0 for c in children):
            raise RuntimeError(f"children exited with {[c.exitcode for c in children]}")
        return counter.value
    finally:
        go.set()
        for child in children:
            if child.is_alive():
                child.kill()
            child.join(timeout=5)


async def delete(spec: dict[str, Any], *keys: str) -> None:
    cache = make_cache(spec, enable_l1_cache=False)
    assert await cache.connect()
    for key in keys:
        await cache.delete(key)
    await cache.disconnect()


# -- (c): a hot key under load -----------------------------------------------------------------------


async def hot_key(spec: dict[str, Any], key: str, seconds: float, rate: float,
                  options: dict[str, Any]) -> dict[str, Any]:
    cache = make_cache(spec)
    assert await cache.connect()
    await cache.delete(key)
    loads = 0

    async def loader() -> float:
        nonlocal loads
        loads += 1
        await asyncio.sleep(LOADER_SECONDS)
        return time.time()

    latencies: list[float] = []

    async def request() -> None:
        started = time.perf_counter()
        await cache.get_or_set(key, loader, 2, **options)
        latencies.append(time.perf_counter() - started)

    # Warm: the first load is everyone's cold start, not what this part measures.
    await cache.get_or_set(key, loader, 2, **options)
    loads = 0
    pending: set[asyncio.Task] = set()
    total = int(seconds * rate)
    begun = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - begun) * rate) + 1)
        while sent < due:
            task = asyncio.create_task(request())
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - begun
    if pending:
        await asyncio.wait(pending, timeout=30)
    await cache.delete(key)
    await cache.disconnect()
    latencies.sort()
    return {
        "requests": len(latencies),
        "rate_reached": sent / elapsed,
        "cold": sum(1 for t in latencies if t >= COLD_SECONDS),
        "loads": loads,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


# -- (d): client CPU of a hit --------------------------------------------------------------------------


async def cpu_per_call(spec: dict[str, Any], l1: bool, calls: int) -> dict[str, float]:
    """Microseconds of this process's CPU per call: get on a hit, get_or_set on a hit."""
    cache = make_cache(spec, enable_l1_cache=l1)
    assert await cache.connect()
    key = f"aside-bench:cpu:{l1}"
    await cache.set(key, {"answer": 42, "text": "x" * 100}, ttl=3600)

    async def loader() -> Any:
        raise AssertionError("a hit never loads")

    for _ in range(200):  # warm (L1 filled, connections up)
        await cache.get(key)
        await cache.get_or_set(key, loader, 3600)
    out = {}
    for name in ("get", "get_or_set", "get_", "get_or_set_"):  # twice each, alternating
        started = time.process_time()
        if name.startswith("get_or_set"):
            for _ in range(calls):
                await cache.get_or_set(key, loader, 3600)
        else:
            for _ in range(calls):
                await cache.get(key)
        spent = (time.process_time() - started) / calls * 1e6
        out[name.rstrip("_")] = min(out.get(name.rstrip("_"), float("inf")), spent)
    await cache.delete(key)
    await cache.disconnect()
    return out


# -- main -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of (a), (b) and (d)")
    parser.add_argument("--hot-rounds", type=int, default=1, help="rounds of (c)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each (c) run")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second in (c)")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per CPU measurement in (d), L1 on")
    parser.add_argument("--calls-no-l1", type=int, default=2_000,
                        help="calls per CPU measurement in (d), L1 off (each one a round trip)")
    parser.add_argument("--json", default=str(ROOT / "benches" / "results" / "cache_aside.json"))
    args = parser.parse_args()

    raw: dict[str, list[Any]] = {"a": [], "b_lock": [], "b_no_lock": [], "c": [], "d": []}
    hot_variants = {
        "early_refresh off": {},
        "early_refresh=1": {"early_refresh": 1},
        "early_refresh=1, lock": {"early_refresh": 1, "lock": True},
    }
    with tempfile.TemporaryDirectory(prefix="secure-redis-cache-aside-") as workdir, tls_redis(Path(workdir)) as tls:
        spec: dict[str, Any] = tls.spec()
        for round_ in range(args.rounds):
            progress(f"round {round_ + 1}/{args.rounds}: (a) one process, 64 misses")
            asyncio.run(delete(spec, "aside-bench:a"))
            raw["a"].append(asyncio.run(herd(spec, "aside-bench:a", False, 64)))
            for lock in (True, False) if round_ % 2 == 0 else (False, True):
                progress(f"round {round_ + 1}/{args.rounds}: (b) 4 processes x 16 misses, lock={lock}")
                key = f"aside-bench:b:{lock}"
                asyncio.run(delete(spec, key))
                raw["b_lock" if lock else "b_no_lock"].append(processes_herd(spec, key, lock))
                asyncio.run(delete(spec, key))
            progress(f"round {round_ + 1}/{args.rounds}: (d) CPU per hit")
            order = (True, False) if round_ % 2 == 0 else (False, True)
            raw["d"].append({f"L1 {'on' if l1 else 'off'}":
                             asyncio.run(cpu_per_call(spec, l1, args.calls if l1 else args.calls_no_l1))
                             for l1 in order})
        for round_ in range(args.hot_rounds):
            names = list(hot_variants) if round_ % 2 == 0 else list(hot_variants)[::-1]
            outcome = {}
            for name in names:
                progress(f"hot round {round_ + 1}/{args.hot_rounds}: (c) {name}, {args.seconds:g} s at {args.rate:g}/s")
                outcome[name] = asyncio.run(hot_key(spec, "aside-bench:hot", args.seconds, args.rate,
                                                    hot_variants[name]))
            raw["c"].append(outcome)

    report = summarise(raw, args)
    print_report(report, args)
    write_record(args.json, {"command": command_line(), "machine": machine(), "summary": report, "raw": raw})


def progress(text: str) -> None:
    print(f"{text} (load {load_average()[0]})", file=sys.stderr, flush=True)


def summarise(raw: dict[str, list[Any]], args: argparse.Namespace) -> dict[str, Any]:
    hot = {name: {metric: statistics.median(r[name][metric] for r in raw["c"]) for metric in raw["c"][0][name]}
           for name in raw["c"][0]}
    cpu = {}
    for l1 in raw["d"][0]:
        get = statistics.median(r[l1]["get"] for r in raw["d"])
        aside = statistics.median(r[l1]["get_or_set"] for r in raw["d"])
        diffs = statistics.median(r[l1]["get_or_set"] - r[l1]["get"] for r in raw["d"])
        cpu[l1] = {"get_us": get, "get_or_set_us": aside, "ratio": aside / get, "extra_us": diffs,
                   "within_bar": diffs <= CPU_BAR_US}
    return {
        "a_one_process_64_misses_loads": {"median": statistics.median(raw["a"]), "max": max(raw["a"])},
        "b_4x16_lock_loads": {"median": statistics.median(raw["b_lock"]), "max": max(raw["b_lock"])},
        "b_4x16_no_lock_loads": {"median": statistics.median(raw["b_no_lock"]), "max": max(raw["b_no_lock"])},
        "c_hot_key": hot,
        "d_cpu_per_hit": cpu,
    }


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nStampedes, loader calls (medians / max over {args.rounds} rounds; each round listed in the JSON)")
    for label, name, expect in (("(a) 1 process x 64 misses", "a_one_process_64_misses_loads", "1"),
                                ("(b) 4 processes x 16, lock=True", "b_4x16_lock_loads", "1"),
                                ("(b) 4 processes x 16, no lock", "b_4x16_no_lock_loads", "<= 4")):
        figures = report[name]
        print(f"  {label:34} median {figures['median']:4g}  max {figures['max']:4g}  (expect {expect})")
    print(f"\n(c) one hot key, {LOADER_SECONDS * 1e3:.0f} ms loader, ttl=2, {args.rate:g} req/s for {args.seconds:g} s "
          f"(medians of {args.hot_rounds} round(s); cold = latency >= {COLD_SECONDS * 1e3:.0f} ms)")
    print(f"  {'variant':24} {'requests':>9} {'rate/s':>8} {'cold':>6} {'loads':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, m in report["c_hot_key"].items():
        print(f"  {name:24} {m['requests']:9.0f} {m['rate_reached']:8.0f} {m['cold']:6.0f} {m['loads']:6.0f} "
              f"{m['p50_ms']:8.2f} {m['p99_ms']:8.2f}")
    print(f"\n(d) client CPU per hit, us (median of {args.rounds} rounds of {args.calls} calls, "
          f"{args.calls_no_l1} with L1 off; bar: "
          f"get_or_set <= get + {CPU_BAR_US:g} us)")
    print(f"  {'':8} {'get':>8} {'get_or_set':>11} {'ratio':>6} {'extra':>7}  within bar")
    for l1, m in report["d_cpu_per_hit"].items():
        print(f"  {l1:8} {m['get_us']:8.2f} {m['get_or_set_us']:11.2f} {m['ratio']:6.2f} {m['extra_us']:7.2f}  "
              f"{'yes' if m['within_bar'] else 'NO'}")


if __name__ == "__main__":
    main()
