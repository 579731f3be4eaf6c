"""Exits while requests are still in flight; must always exit with code 0.

Modes: `run` returns from asyncio.run with work pending (asyncio cancels it), `abandon`
leaves the loop open with futures pending and falls off the end of the script, `exit`
calls sys.exit from inside a coroutine.
"""

import asyncio
import os
import sys

import secure_redis as sr


def make_cache() -> sr.GenericRedisCache:
    config = sr.SecurityConfig(
        redis_auth=os.environ["SR_TEST_PASSWORD"],
        encryption_key=os.environ["SR_TEST_KEY"],
        tls_ca_path=os.environ["SR_TEST_CA"],
    )
    return sr.GenericRedisCache(os.environ["SR_TEST_URL"], security_config=config, enable_l1_cache=False)


async def burst(cache: sr.GenericRedisCache) -> list[asyncio.Task]:
    await cache.connect()
    value = {"payload": "x" * 4000}
    tasks = [asyncio.ensure_future(cache.set(f"exit:{i}", value)) for i in range(40)]
    tasks += [asyncio.ensure_future(cache.get(f"exit:{i}")) for i in range(40)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    return tasks


async def main_run() -> None:
    await burst(make_cache())


async def main_exit() -> None:
    await burst(make_cache())
    sys.exit(0)


mode = sys.argv[1]
if mode == "run":
    asyncio.run(main_run())
elif mode == "exit":
    asyncio.run(main_exit())
elif mode == "abandon":
    loop = asyncio.new_event_loop()
    loop.run_until_complete(burst(make_cache()))
else:
    raise SystemExit(f"unknown mode {mode}")
