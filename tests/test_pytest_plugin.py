"""The pytest plugin (``secure_redis.pytest_plugin``) as an application meets it.

An app-shaped test suite is written into ``tmp_path`` and run by a child pytest against the
real TLS ``redis-server`` the plugin starts: every fixture is used, in pytest-asyncio's strict
and auto modes, under anyio and from a synchronous test; the outer test asserts the child's
outcome counts, that its server is gone afterwards and that no secret reached its output.
Loading through the ``pytest11`` entry point is exercised with a ``dist-info`` folder made
from pyproject.toml's own entry-point table, since only a built wheel installs the real one
(scripts/check-wheel.py checks that from a clean virtualenv).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import secure_redis

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "secure_redis.pytest_plugin"
# The folder this suite's secure_redis comes from, for the child's PYTHONPATH: python/ under
# `maturin develop` (the extension sits beside the sources), site-packages when the suite runs
# against an installed wheel (scripts/build-release.sh), where python/ has no extension.
PACKAGE_PARENT = Path(secure_redis.__file__).resolve().parent.parent

STRICT_INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

AUTO_INI = STRICT_INI.replace("strict", "auto")

# The whole app suite, for asyncio_mode = strict (so async tests carry their marker).
APP_SUITE = r'''
import asyncio
import json
import os
import pathlib
import socket
import ssl
import stat

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from cryptography.fernet import Fernet

import secure_redis as sr

STATE = pathlib.Path(os.environ["APP_STATE"])
PRIVATE = "Lovelace-private-diagnosis"


def raw_client(server, pki, password):
    return redis.Redis(host=server.host, port=server.port, password=password, ssl=True,
                       ssl_ca_certs=str(pki.ca_cert), ssl_cert_reqs=ssl.CERT_REQUIRED,
                       retry=Retry(NoBackoff(), 0))


@pytest.fixture
def raw(secure_redis_server, secure_redis_pki, secure_redis_password):
    client = raw_client(secure_redis_server, secure_redis_pki, secure_redis_password)
    yield client
    client.close()


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_pki_keys_are_private(secure_redis_pki):
    for key in (secure_redis_pki.ca_key, secure_redis_pki.server_key, secure_redis_pki.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for cert in (secure_redis_pki.ca_cert, secure_redis_pki.server_cert, secure_redis_pki.client_cert):
        assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_server_is_tls_only_and_wants_the_password(secure_redis_server, secure_redis_pki,
                                                   secure_redis_password, secure_redis_encryption_key, raw):
    pid = secure_redis_server.process.pid
    (STATE / "server.json").write_text(json.dumps({
        "pid": pid, "port": secure_redis_server.port, "cwd": os.readlink(f"/proc/{pid}/cwd"),
        "secrets": [secure_redis_password, secure_redis_encryption_key],
    }))
    assert secure_redis_server.url.startswith("rediss://")
    assert raw.ping()
    # A plaintext PING gets no Redis answer: the port speaks only TLS.
    with socket.create_connection((secure_redis_server.host, secure_redis_server.port), timeout=5) as plain:
        try:
            plain.sendall(b"PING\r\n")
            plain.shutdown(socket.SHUT_WR)  # so a TLS server waiting for the rest of a record gives up
            answer = plain.recv(64)
        except OSError:  # reset: the server dropped a client that does not speak TLS
            answer = b""
    assert not answer.startswith((b"+", b"-")), answer
    wrong = raw_client(secure_redis_server, secure_redis_pki, "not-the-password")
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()


def test_config_is_the_secure_one(secure_redis_config):
    assert secure_redis_config.use_tls and secure_redis_config.has_authentication
    assert secure_redis_config.encryption_key_count == 1 and secure_redis_config.has_client_certificate


@pytest.mark.asyncio
async def test_generic_cache_stores_fernet_tokens(secure_redis_cache, secure_redis_encryption_key, raw):
    await secure_redis_cache.set("user:1", {"note": PRIVATE})
    assert await secure_redis_cache.get("user:1") == {"note": PRIVATE}
    stored = raw.get("user:1")
    assert stored.startswith(b"gAAAAA") and PRIVATE.encode() not in stored
    assert PRIVATE.encode() in Fernet(secure_redis_encryption_key).decrypt(stored)


@pytest.mark.asyncio
async def test_leaves_a_key_behind(secure_redis_cache):
    await secure_redis_cache.set("left:behind", 1)


@pytest.mark.asyncio
async def test_next_test_starts_from_an_empty_database(secure_redis_ai_cache, raw):
    assert raw.dbsize() == 0
    assert await secure_redis_ai_cache.get("left:behind") is None


@pytest.mark.asyncio
async def test_ai_cache_names_hide_the_text(secure_redis_ai_cache, raw):
    key = secure_redis_ai_cache.build_key(f"summarise {PRIVATE}", "summarize", {"max_length": 50})
    await secure_redis_ai_cache.set(key, {"summary": "short"})
    assert await secure_redis_ai_cache.get(key) == {"summary": "short"}
    [name] = raw.keys("*")
    assert name.startswith(b"ai_cache:") and PRIVATE.encode() not in name
    assert raw.get(name).startswith(b"gAAAAA")


@pytest.mark.asyncio
async def test_manager_serves_from_redis(secure_redis_manager, raw):
    await secure_redis_manager.set("m:1", [1, 2, 3])
    assert await secure_redis_manager.get("m:1") == [1, 2, 3]
    assert secure_redis_manager.cache_type == "redis_secure"
    assert (await secure_redis_manager.health_check())["healthy"]
    assert raw.get("m:1").startswith(b"gAAAAA")


@pytest.mark.asyncio
async def test_env_passes_the_apps_startup_validation(secure_redis_env, secure_redis_server, raw):
    assert os.environ["REDIS_URL"] == secure_redis_server.url == secure_redis_env["REDIS_URL"]
    assert "REDIS_ACL_USERNAME" not in os.environ  # set outside; it would name another user
    result = sr.validate_redis_security(test_connectivity=True)
    assert result.is_valid, result.summary()
    cache = sr.GenericRedisCache.create_secure()  # how the app's lifespan builds its cache
    assert await cache.connect()
    await cache.set("from:env", "ok")
    assert raw.get("from:env").startswith(b"gAAAAA")
    await cache.disconnect()


def test_fastapi_lifespan_starts_on_the_env(secure_redis_env):
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient
    from secure_redis.fastapi import cache_health, get_cache, secure_redis_lifespan

    app = FastAPI(lifespan=secure_redis_lifespan(test_connectivity=True, require_redis=True))

    @app.get("/health/cache")
    async def health(cache=Depends(get_cache)):
        return await cache_health(cache)

    with TestClient(app) as client:
        health = client.get("/health/cache").json()
    assert health["status"] == "healthy" and health["security"]["tls"], health


def test_env_is_restored_after_the_test():
    assert os.environ["REDIS_URL"] == "rediss://elsewhere.invalid:6380/0"
    assert os.environ["REDIS_ACL_USERNAME"] == "someone-else"
    assert "REDIS_PASSWORD" not in os.environ


def test_a_synchronous_test_with_its_own_loops(secure_redis_cache):
    asyncio.run(secure_redis_cache.set("sync", 1))
    assert asyncio.run(secure_redis_cache.get("sync")) == 1


@pytest.mark.anyio
async def test_under_anyio(secure_redis_cache):
    await secure_redis_cache.set("anyio", "yes")
    assert await secure_redis_cache.get("anyio") == "yes"
'''
APP_SUITE_TESTS = 13

# For asyncio_mode = auto: unmarked async tests.
AUTO_SUITE = r'''
import secure_redis as sr


async def test_round_trip(secure_redis_cache):
    await secure_redis_cache.set("auto", {"mode": "auto"})
    assert await secure_redis_cache.get("auto") == {"mode": "auto"}


async def test_env(secure_redis_env):
    assert sr.validate_redis_security(test_connectivity=True).is_valid
    cache = sr.GenericRedisCache.create_secure()
    await cache.set("k", 1)
    assert await cache.get("k") == 1
    await cache.disconnect()
'''


def _outcome(output: str) -> dict[str, int]:
    """pytest's closing line, e.g. ``3 passed, 1 skipped in 0.5s``, as {"passed": 3, "skipped": 1}."""
    summary = [line for line in output.strip().splitlines() if re.search(r" in [\d.]+s", line)]
    assert summary, output[-2000:]
    counts = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|warnings?)", summary[-1])
    return {("error" if kind == "errors" else kind): int(n) for n, kind in counts if not kind.startswith("warning")}


def _redis_servers_under(folder: Path) -> list[int]:
    """redis-server processes working in `folder` (each runs in its own folder: `dir` in its
    config), however its argv was rewritten."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "redis-server" and Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return found


def _write_entry_points(site: Path) -> None:
    """What a wheel built from pyproject.toml installs for its entry points, made from its table."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dist_info = site / f"secure_redis-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: secure_redis\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")


class App:
    """An app folder with its tests, and a way to run pytest there in a child process."""

    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path / "app"
        self.folder.mkdir()
        self.state = tmp_path / "state"
        self.state.mkdir()
        self.basetemp = tmp_path / "basetemp"
        self.site = tmp_path / "site"
        self.site.mkdir()

    def write(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text)

    def run(self, *args: str, entry_points: bool = False, path: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("REDIS_", "PYTEST_")) and k not in {"ENFORCE_AUTH", "PYTHONPATH"}}
        # What the app's environment already says; secure_redis_env must override and restore it.
        env.update(REDIS_URL="rediss://elsewhere.invalid:6380/0", REDIS_ACL_USERNAME="someone-else")
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), *([str(self.site)] if entry_points else [])])
        env["APP_STATE"] = str(self.state)
        if path is not None:
            env["PATH"] = path
        if entry_points and not any(self.site.iterdir()):
            _write_entry_points(self.site)
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
             f"--basetemp={self.basetemp}", *args],
            cwd=self.folder, env=env, capture_output=True, text=True, timeout=300,
        )


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App(tmp_path)


def test_entry_point_is_declared_under_the_modules_own_name() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {PLUGIN: PLUGIN}


def test_environment_names_are_the_ones_secure_redis_reads() -> None:
    from secure_redis import _native, pytest_plugin

    for name in (*pytest_plugin.ENV_SET, *pytest_plugin.ENV_REMOVED):
        _native.env_value(name)  # raises ValueError for a name core::env does not define


def test_app_suite_uses_every_fixture_against_a_real_tls_server(app: App) -> None:
    app.write("pytest.ini", STRICT_INI)
    app.write("test_app.py", APP_SUITE)
    done = app.run("-p", PLUGIN)
    output = done.stdout + done.stderr
    assert _outcome(done.stdout) == {"passed": APP_SUITE_TESTS}, output[-3000:]
    assert done.returncode == 0

    server = json.loads((app.state / "server.json").read_text())
    for secret in server["secrets"]:
        assert secret not in output
    # The server ran under the child's basetemp, so looking there now is not vacuous.
    assert Path(server["cwd"]).is_relative_to(app.basetemp)
    assert _redis_servers_under(app.basetemp) == []
    assert not Path(f"/proc/{server['pid']}").exists() or (
        Path(f"/proc/{server['pid']}/comm").read_text().strip() != "redis-server"
    )
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server["port"]), timeout=2).close()


def test_installed_entry_point_loads_the_plugin_and_can_be_turned_off(app: App) -> None:
    app.write("pytest.ini", AUTO_INI)
    app.write("test_auto.py", AUTO_SUITE)
    done = app.run(entry_points=True)  # no -p, no conftest: installing is the configuration
    assert _outcome(done.stdout) == {"passed": 2}, (done.stdout + done.stderr)[-3000:]
    assert _redis_servers_under(app.basetemp) == []

    off = app.run("-p", f"no:{PLUGIN}", entry_points=True)
    assert _outcome(off.stdout) == {"error": 2}, (off.stdout + off.stderr)[-3000:]
    assert "fixture 'secure_redis_cache' not found" in off.stdout


def test_entry_point_and_an_explicit_load_do_not_clash(app: App) -> None:
    """With the wheel installed, `-p` and a conftest's `pytest_plugins` still work."""
    app.write("pytest.ini", AUTO_INI)
    app.write("conftest.py", f"pytest_plugins = [{PLUGIN!r}]\n")
    app.write("test_auto.py", AUTO_SUITE)
    done = app.run("-p", PLUGIN, entry_points=True)
    assert _outcome(done.stdout) == {"passed": 2}, (done.stdout + done.stderr)[-3000:]


def test_without_redis_server_the_tests_skip_saying_how_to_install_it(app: App, tmp_path: Path) -> None:
    app.write("pytest.ini", STRICT_INI)
    app.write("test_one.py", "def test_uses_redis(secure_redis_server):\n    raise AssertionError('ran')\n")
    no_redis = tmp_path / "empty-path"
    no_redis.mkdir()
    skipped = app.run("-p", PLUGIN, path=str(no_redis))
    assert _outcome(skipped.stdout) == {"skipped": 1}, (skipped.stdout + skipped.stderr)[-3000:]
    assert "redis-server is not installed" in skipped.stdout and "apt-get install redis-server" in skipped.stdout

    required = app.run("-p", PLUGIN, "--secure-redis-required", path=str(no_redis))
    assert _outcome(required.stdout) == {"error": 1}, (required.stdout + required.stderr)[-3000:]
    assert "apt-get install redis-server" in required.stdout
    assert required.returncode != 0
