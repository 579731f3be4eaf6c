"""Installs a built wheel into a throwaway virtualenv and uses it for real.

Checks the tag promises (abi3, CPython 3.10 or newer), that the package imports from the
wheel rather than the source tree, that the type information ships (py.typed, _native.pyi),
that a GenericRedisCache from the wheel stores a Fernet token in a TLS-only redis-server, and
that LICENSE and the classifiers ship, that ``secure-redis --version`` names the wheel's
version, and that the pytest plugin arrives through its ``pytest11`` entry point: an app's test using
``secure_redis_cache`` passes with pytest alone (no ``-p``, no asyncio plugin).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROUND_TRIP = r"""
import asyncio, pathlib, sys, tempfile
import secure_redis as sr
from secure_redis.testing import RedisServer, make_test_pki, random_password

package = pathlib.Path(sr.__file__).parent
assert "site-packages" in str(package), package
assert (package / "py.typed").exists() and (package / "_native.pyi").exists()

async def main():
    with tempfile.TemporaryDirectory() as folder:
        pki = make_test_pki(folder)
        password = random_password()
        with RedisServer(folder, password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert) as server:
            config = sr.SecurityConfig(redis_auth=password, encryption_key=sr.generate_encryption_key(),
                                       tls_ca_path=str(pki.ca_cert))
            cache = sr.GenericRedisCache(server.url_for("localhost"), security_config=config)
            assert await cache.connect()
            await cache.set("wheel:check", {"ok": [1, 2, 3]})
            fresh = sr.GenericRedisCache(server.url_for("localhost"), security_config=config, enable_l1_cache=False)
            assert await fresh.get("wheel:check") == {"ok": [1, 2, 3]}
            stats = await cache.get_cache_stats()
            assert stats["redis"]["status"] == "connected" and stats["redis"]["tls"], stats
            assert stats["encryption"]["enabled"], stats
            await cache.disconnect(); await fresh.disconnect()
    print("wheel round trip through TLS redis-server: ok")

asyncio.run(main())

from importlib.metadata import entry_points
plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
assert plugins.get("secure_redis.pytest_plugin") == "secure_redis.pytest_plugin", plugins
print("pytest11 entry point secure_redis.pytest_plugin: ok")
"""

# An app's test as the wheel's pytest plugin serves it: installed is configured.
PLUGIN_APP_TEST = """
import asyncio

def test_round_trip_through_the_plugins_server(secure_redis_cache):
    asyncio.run(secure_redis_cache.set("wheel:plugin", {"ok": True}))
    assert asyncio.run(secure_redis_cache.get("wheel:plugin")) == {"ok": True}
"""


def pinned(name: str) -> str:
    for line in Path("requirements-dev.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.strip()
    raise SystemExit(f"{name} is not pinned in requirements-dev.txt")


def main(wheel_path: str) -> None:
    wheel = Path(wheel_path)
    tags = wheel.name.removesuffix(".whl").split("-")[-3:]
    if tags[:2] != ["cp310", "abi3"]:
        raise SystemExit(f"{wheel.name}: expected a cp310-abi3 wheel, got tags {tags}")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        raise SystemExit(f"{wheel.name}: the LICENSE file is not in the wheel")
    for line in ("License: MIT", "Classifier: Typing :: Typed", "Classifier: Programming Language :: Python :: 3.10"):
        if line not in metadata.splitlines():
            raise SystemExit(f"{wheel.name}: METADATA lacks {line!r}")
    with tempfile.TemporaryDirectory() as folder:
        env_dir = Path(folder) / "venv"
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # secure_redis.testing needs cryptography; the core wheel itself has no dependencies.
        subprocess.run([*pip, str(wheel), pinned("cryptography"), pinned("cffi"), pinned("pycparser")], check=True)
        subprocess.run([str(python), "-c", ROUND_TRIP], check=True, cwd=folder)
        subprocess.run([str(env_dir / "bin" / "secure-redis"), "--help"], check=True, stdout=subprocess.DEVNULL)
        version = subprocess.run([str(env_dir / "bin" / "secure-redis"), "--version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        if version != f"secure-redis {wheel.name.split('-')[1]}":
            raise SystemExit(f"{wheel.name}: secure-redis --version printed {version!r}")
        subprocess.run([*pip, *(pinned(name) for name in ("pytest", "iniconfig", "pluggy", "packaging", "Pygments"))],
                       check=True)
        app = Path(folder) / "app"
        app.mkdir()
        (app / "test_app.py").write_text(PLUGIN_APP_TEST)
        # --secure-redis-required: a missing redis-server must fail this check, not skip it.
        # The wheel's plugin, not one on a path or in options this shell may carry.
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PYTEST_")}
        subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--secure-redis-required"],
                       check=True, cwd=app, env=clean)
    print(f"{wheel.name}: installs into a clean virtualenv and works")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: check-wheel.py dist/secure_redis-*.whl")
    main(sys.argv[1])
