"""Reads a value planted in Redis past the size cap, next to a genuine one, and prints (as
JSON) what came back, the tamper warnings, and how far the read raised this process's peak RSS.

Run in a fresh process (by tests/test_stored_entries.py and benches/oversized_read.py) so the
peak is the read's own: the planted value is written by the parent, never held here. The
settings come from the environment (SR_TEST_URL, SR_TEST_PASSWORD, SR_TEST_KEY, SR_TEST_CA),
never the command line; argv holds the two key names.
"""

import asyncio
import gc
import json
import logging
import os
import sys
import time

import secure_redis as sr


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.tamper = 0
        self.other: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "secure_redis.tamper":
            self.tamper += 1
        else:
            self.other.append(f"{record.name}: {record.getMessage()}")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux 4.0+), so the peak measured is the reads' own."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


async def main(huge: str, bystander: str) -> dict:
    config = sr.SecurityConfig(
        redis_auth=os.environ["SR_TEST_PASSWORD"],
        encryption_key=os.environ["SR_TEST_KEY"],
        tls_ca_path=os.environ["SR_TEST_CA"],
        socket_timeout=1.0,  # the setting with which a large read broke the shared connection
    )
    warnings = _Warnings()
    logging.getLogger("secure_redis").addHandler(warnings)
    caches = {
        l1: sr.GenericRedisCache(os.environ["SR_TEST_URL"], security_config=config, enable_l1_cache=l1)
        for l1 in (False, True)
    }
    for cache in caches.values():  # connections, runtime and buffers made before measuring
        assert await cache.connect()
        await cache.get_many(["warm-up-absent", "warm-up-absent-too"])
    gc.collect()
    peak_reset = _reset_peak()
    # Without a reset, growth is counted from the peak so far (an underestimate, never more).
    before_kib = _status_kib("VmRSS" if peak_reset else "VmHWM")
    out: dict = {"peak_reset": peak_reset, "caches": {}}
    started = time.monotonic()
    for l1, cache in caches.items():
        seen = warnings.tamper
        # The bystander is read while the large value is in flight, on the same connection.
        got, *beside = await asyncio.gather(cache.get(huge), *(cache.get(bystander) for _ in range(20)))
        many = await cache.get_many([huge, bystander])
        again = await cache.get(bystander)
        stats = (await cache.get_cache_stats())["performance"]
        out["caches"]["l1" if l1 else "no_l1"] = {
            "get": got,
            "bystander_beside": sum(value is not None for value in beside),
            "get_many": many,
            "bystander_after": again,
            "warnings": warnings.tamper - seen,
            "redis_failures": stats["redis_failures"],
            "rejected_by_kind": stats.get("rejected_by_kind"),
        }
    out["seconds"] = time.monotonic() - started
    peak_kib = _status_kib("VmHWM")
    out["rss_before_mb"] = before_kib / 1024
    out["peak_mb"] = peak_kib / 1024
    out["peak_growth_mb"] = (peak_kib - before_kib) / 1024
    out["other_warnings"] = warnings.other
    for cache in caches.values():
        await cache.disconnect()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
