"""Caches "LLM responses" through a real TLS-only, password-protected redis-server.

Run with scripts/demo.sh. It creates a throwaway CA and certificates, a password and a Fernet
key under .secure-redis/demo/, starts redis-server with TLS only on a free loopback port,
caches through secure_redis, shows what Redis really holds, and stops the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
from pathlib import Path

import secure_redis as sr
from secure_redis.testing import RedisServer, make_test_pki

ROOT = Path(__file__).resolve().parent.parent / ".secure-redis" / "demo"


async def fake_llm(prompt: str) -> dict:
    await asyncio.sleep(0.5)  # the slow, expensive call a cache exists to avoid
    return {"summary": f"A summary of {len(prompt)} characters.", "model": "demo-llm", "tokens": 42}


def prompt_key(prompt: str) -> str:
    # Hash user text into the key: key names are not encrypted, values are.
    return "demo:summary:" + hashlib.sha256(prompt.encode()).hexdigest()[:32]


async def summarize(cache: sr.GenericRedisCache, prompt: str) -> tuple[dict, str]:
    key = prompt_key(prompt)
    cached = await cache.get(key)
    if cached is not None:
        return cached, "cache hit"
    result = await fake_llm(prompt)
    await cache.set(key, result, ttl=600)
    return result, "computed"


async def demo(server: RedisServer, config: sr.SecurityConfig) -> None:
    cache = sr.GenericRedisCache(server.url, security_config=config)
    print(f"cache: {cache!r}")
    print(f"config: {config!r}")
    assert await cache.connect(), "could not connect"
    await cache.clear()

    prompt = "Summarize the quarterly report for ACME Corp, including the confidential figures."
    for attempt in range(3):
        started = time.perf_counter()
        result, how = await summarize(cache, prompt)
        print(f"call {attempt + 1}: {how:>9} in {(time.perf_counter() - started) * 1000:7.1f} ms -> {result}")

    key = prompt_key(prompt)
    import redis  # a plain client, to look at what is stored

    raw = redis.Redis(host=server.host, port=server.port, password=server.password, ssl=True,
                      ssl_ca_certs=str(server.ca))
    stored = raw.get(key)
    raw.close()
    print(f"\nwhat Redis holds under {key!r} ({len(stored)} bytes): {stored[:60].decode()}...")
    print("  -> a Fernet token; the summary text is nowhere in it:", b"summary" not in stored)

    stats = await cache.get_cache_stats()
    print("\nstats:", {k: stats["performance"][k] for k in ("gets", "hits", "misses", "hit_ratio")},
          "| redis:", stats["redis"]["status"], "tls:", stats["redis"]["tls"])

    print("\nwhat the cache refuses:")
    try:
        sr.GenericRedisCache(server.url.replace("rediss://", "redis://"), security_config=config)
    except sr.ConfigurationError as error:
        print("  plaintext URL  ->", error.message[:110], "...")
    wrong = sr.SecurityConfig(redis_auth="not-the-password-000", encryption_key=sr.generate_encryption_key(),
                              tls_ca_path=server.ca)
    try:
        await sr.GenericRedisCache(server.url, security_config=wrong).connect()
    except sr.ConfigurationError as error:
        print("  wrong password ->", error.message[:110], "...")
    await cache.clear()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if ROOT.exists():
        shutil.rmtree(ROOT)
    pki = make_test_pki(ROOT / "certs")
    password = sr.generate_secure_password(32)
    config = sr.SecurityConfig(
        redis_auth=password,
        encryption_key=sr.generate_encryption_key(),
        tls_ca_path=pki.ca_cert,
    )
    print(f"certificates in {pki.folder}; starting a TLS-only redis-server ...")
    with RedisServer(ROOT / "redis", password=password, cert=pki.server_cert, key=pki.server_key,
                     ca=pki.ca_cert) as server:
        print(f"redis-server (pid {server.process.pid}) listening TLS-only on {server.url}\n")
        asyncio.run(demo(server, config))
    print("\nredis-server stopped. Demo complete.")


if __name__ == "__main__":
    main()
