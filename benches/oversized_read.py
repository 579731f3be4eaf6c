"""What reading a value planted past the size cap costs a client: peak RSS growth and time.

    python benches/oversized_read.py [--mb 300] [--rounds 3]

Starts its own TLS redis-server, writes --mb megabytes of random bytes under one key with
redis-py (as someone with write access to Redis could) next to a genuine entry, then runs
tests/scripts/read_oversized.py --rounds times, each in a fresh process: get and get_many of
the planted key, with and without L1, while the genuine entry is read beside it. Prints each
round's peak RSS growth over the RSS before the reads (VmHWM reset through
/proc/self/clear_refs), what was read, and the warnings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _tls_redis import tls_redis

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "scripts" / "read_oversized.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="size of the planted value, in MB (10^6 bytes)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "python"))
    import redis

    import secure_redis as sr

    workdir = Path(tempfile.mkdtemp(prefix="secure-redis-oversized-"))
    try:
        with tls_redis(workdir) as tls:
            server, config = tls.server, tls.config()
            asyncio.run(sr.GenericRedisCache(server.url, security_config=config).set("bystander", {"innocent": True}))
            raw = redis.Redis(host=server.host, port=server.port, password=tls.password, ssl=True,
                              ssl_ca_certs=str(tls.ca_cert), ssl_cert_reqs=ssl.CERT_REQUIRED)
            raw.set("planted", os.urandom(args.mb * 10**6))
            raw.close()
            env = dict(os.environ, SR_TEST_URL=server.url, SR_TEST_PASSWORD=tls.password,
                       SR_TEST_KEY=tls.encryption_key, SR_TEST_CA=str(tls.ca_cert), PYTHONPATH=str(ROOT / "python"))
            growths = []
            for round_ in range(args.rounds):
                done = subprocess.run([sys.executable, str(WORKER), "planted", "bystander"], env=env,
                                      capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise SystemExit(f"worker failed ({done.returncode}): {done.stderr[-2000:]}")
                result = json.loads(done.stdout)
                growths.append(result["peak_growth_mb"])
                print(f"round {round_ + 1}: RSS before {result['rss_before_mb']:.0f} MB, peak {result['peak_mb']:.0f} MB, "
                      f"growth {result['peak_growth_mb']:.0f} MB, {result['seconds']:.2f} s")
                for name, seen in result["caches"].items():
                    print(f"  {name}: get={seen['get']!r} get_many={seen['get_many']!r} "
                          f"bystander beside={seen['bystander_beside']}/20 after={seen['bystander_after']!r} "
                          f"tamper warnings={seen['warnings']} redis_failures={seen['redis_failures']}")
                for line in result["other_warnings"][:3]:
                    print(f"  other warning: {line[:160]}")
            print(f"planted {args.mb} MB: median peak RSS growth {statistics.median(growths):.0f} MB "
                  f"over {args.rounds} round(s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
