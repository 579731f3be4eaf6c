"""Runs the example backend (examples/app.py) under uvicorn against the Redis that
scripts/setup-secure-redis.sh started, sends it requests, and shows what was cached and how
much faster the hits are. The env file is .env.secure (or the path given as argument);
`--no-env-file` uses the environment as it is, as in the backend container, where compose
sets the variables (scripts/setup-secure-redis.sh --demo runs it there under Docker).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
try:  # the installed package: a wheel, or `maturin develop`
    import secure_redis  # noqa: F401
except ImportError:  # a checkout whose python/ holds a built extension
    sys.path.insert(0, str(ROOT / "python"))
from secure_redis.envfile import parse_env_file  # noqa: E402

TEXTS = [
    ("Quarterly revenue rose 12% while operating costs fell, driven by the new subscription tier.", "summarize"),
    ("The support team resolved every ticket within a day and customers noticed.", "sentiment"),
    ("Migrate the cache layer, rotate the keys, then remove the plaintext override.", "key_points"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    if sys.argv[1:] == ["--no-env-file"]:
        from_file = {}
    else:
        default = Path(os.environ.get("SECURE_REDIS_HOME", ROOT)) / ".env.secure"
        from_file = parse_env_file(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
    env = {**os.environ, **from_file, "PYTHONPATH": str(ROOT)}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(100):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    print("the example backend exited during startup (see the error above)")
                    return 1
                time.sleep(0.1)
            health = client.get("/health").json()
            print(f"backend up: cache {health['cache_type']}, redis {health['redis']['url']} over "
                  f"{health['redis']['tls_version']}, security level {health['security']['level']}\n")
            speedups = []
            left_over = 0
            for text, operation in TEXTS:
                request = {"text": text, "operation": operation}
                # Redis keeps its data across restarts: without this, a second demo run would
                # find every response cached and show no model call and nothing stored.
                left_over += client.post("/process/forget", json=request).json()["deleted"]
                first = client.post("/process", json=request).json()
                second = client.post("/process", json=request).json()
                speedups.append(first["elapsed_ms"] / max(second["elapsed_ms"], 0.01))
                print(f"{operation:>10}: first from {first['source']} in {first['elapsed_ms']:7.1f} ms, "
                      f"then from {second['source']} in {second['elapsed_ms']:5.2f} ms -> {first['result'][:60]}")
            if left_over:
                print(f"(removed {left_over} response(s) an earlier run had cached, so each text starts cold)")
            stats = client.get("/cache/stats").json()
            print(f"\ncached {stats['performance']['sets']} responses; hit ratio {stats['hit_ratio_percent']}%; "
                  f"median speed-up x{sorted(speedups)[len(speedups) // 2]:.0f}")
            print(f"stored {stats['encryption']['stored_bytes']} bytes of Fernet tokens for "
                  f"{stats['encryption']['plaintext_bytes']} bytes of JSON; every value encrypted, every hop TLS")
        return 0
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
