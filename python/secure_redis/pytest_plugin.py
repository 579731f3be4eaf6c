"""pytest fixtures that give an application's tests a real TLS ``redis-server``, not a fake.

Registered through the ``pytest11`` entry point under this module's own name, so installing
the wheel is all the configuration an app needs; ``-p secure_redis.pytest_plugin`` or
``pytest_plugins = ["secure_redis.pytest_plugin"]`` load it where the entry point is not
installed (and are harmless where it is), ``-p no:secure_redis.pytest_plugin`` turns it off.

Fixtures, all prefixed ``secure_redis_`` so they cannot shadow an app's own:

- session: ``secure_redis_pki`` (``TestPKI``: CA, server and client certificates, private
  keys 0600), ``secure_redis_password``, ``secure_redis_encryption_key``,
  ``secure_redis_server`` (a TLS-only ``RedisServer`` with that password, stopped at the end
  of the session) and ``secure_redis_config`` (a ``SecurityConfig`` for it);
- function: ``secure_redis_cache``, ``secure_redis_ai_cache``, ``secure_redis_manager``
  (connected, on a database emptied before the test, disconnected after it) and
  ``secure_redis_env`` (``REDIS_URL``, ``REDIS_PASSWORD``, ``REDIS_ENCRYPTION_KEY`` and
  ``REDIS_TLS_*`` set through ``monkeypatch``, the variables that would point elsewhere
  removed, the database emptied).

Invariants: every fixture is synchronous and does its awaiting on a private event loop in a
helper thread, so the plugin needs no asyncio plugin and works whatever the app's asyncio mode
is (a cache is not tied to the loop it connected on). Nothing starts unless a test asks for
it, and no hook changes anything else in a run, so loading the plugin into a suite that does
not use it changes nothing. A missing ``redis-server`` or ``cryptography`` is a skip that says
how to install it (a failure under ``--secure-redis-required``), never a silent pass. The
password and key go into config files and the environment, never onto a command line or into
a message. Secrets are generated through ``secure_redis`` module attributes looked up at call
time, so a suite that wraps the generators (as ours does, to watch for leaks) still sees them.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, TypeVar

import pytest

import secure_redis

if TYPE_CHECKING:
    from secure_redis import AIResponseCache, CacheManager, GenericRedisCache, SecurityConfig
    from secure_redis.testing import RedisServer, TestPKI

__all__ = [
    "secure_redis_ai_cache",
    "secure_redis_cache",
    "secure_redis_config",
    "secure_redis_encryption_key",
    "secure_redis_env",
    "secure_redis_manager",
    "secure_redis_password",
    "secure_redis_pki",
    "secure_redis_server",
]

_REQUIRED_OPTION = "--secure-redis-required"
_INSTALL_REDIS = (
    "redis-server is not installed; install one built with TLS "
    "(Debian/Ubuntu: apt-get install redis-server, macOS: brew install redis)"
)
_INSTALL_CRYPTOGRAPHY = "the cryptography package is not installed: pip install 'secure_redis[testing]'"
# Setting up or emptying the database waits at most this long (a connection attempt is bounded
# by the config's own timeouts; this only keeps a wedged server from hanging the run).
_SETUP_TIMEOUT = 60.0

# What secure_redis_env sets, and what it removes because it would point the app elsewhere
# (another user, plaintext, a cluster or sentinels). Names are core::env's constants;
# tests/test_pytest_plugin.py checks each one against _native.env_value, which refuses others.
ENV_SET = (
    "REDIS_URL",
    "REDIS_PASSWORD",
    "REDIS_ENCRYPTION_KEY",
    "REDIS_TLS_CA_PATH",
    "REDIS_TLS_CERT_PATH",
    "REDIS_TLS_KEY_PATH",
)
ENV_REMOVED = (
    "REDIS_AUTH",
    "REDIS_ACL_USERNAME",
    "REDIS_USE_TLS",
    "REDIS_INSECURE_ALLOW_PLAINTEXT",
    "REDIS_CLUSTER_NODES",
    "REDIS_SENTINEL_NODES",
    "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_PASSWORD",
    "REDIS_SENTINEL_USERNAME",
)

_T = TypeVar("_T")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Adds ``--secure-redis-required``: in CI a skip would hide that the tests never ran."""
    parser.getgroup("secure_redis").addoption(
        _REQUIRED_OPTION,
        action="store_true",
        default=False,
        help="fail instead of skipping when redis-server or cryptography is missing",
    )


def _unavailable(config: pytest.Config, reason: str) -> None:
    message = f"secure_redis fixtures: {reason}"
    if config.getoption(_REQUIRED_OPTION):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _run(make: Callable[[], Awaitable[_T]]) -> _T:
    """Awaits ``make()`` on a fresh event loop in a helper thread: the caller's thread may
    already have a loop (running, or set as current by an asyncio plugin), which is left alone."""
    values: list[_T] = []
    errors: list[BaseException] = []

    def work() -> None:
        async def main() -> _T:
            return await make()

        try:
            values.append(asyncio.run(main()))
        except BaseException as error:  # handed to the caller's thread below
            errors.append(error)

    thread = threading.Thread(target=work, name="secure_redis-fixture", daemon=True)
    thread.start()
    thread.join(_SETUP_TIMEOUT)
    if thread.is_alive():
        pytest.fail(f"secure_redis fixtures: the test redis-server did not answer within {_SETUP_TIMEOUT:.0f} s")
    if errors:
        raise errors[0]
    return values[0]


def _connect(cache: Any) -> None:
    """Connects, or fails the test with the reason (already free of secrets)."""
    if not _run(cache.connect):
        target = getattr(cache, "cache", cache)
        pytest.fail(f"secure_redis fixtures: could not connect to the test redis-server: {target.last_error}")


def _empty_database(server: "RedisServer", config: "SecurityConfig") -> None:
    """Deletes every key of the test database, whoever wrote it, so each test starts empty."""
    cleaner = secure_redis.GenericRedisCache(server.url, security_config=config, enable_l1_cache=False)
    _connect(cleaner)

    async def clear_and_close() -> None:
        await cleaner.clear()
        await cleaner.disconnect()

    _run(clear_and_close)


@pytest.fixture(scope="session")
def secure_redis_pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> "TestPKI":
    """A throwaway PKI (``secure_redis.testing.TestPKI``): CA, server certificate for
    ``localhost``/``127.0.0.1``, client certificate; private keys are 0600."""
    try:
        import cryptography  # noqa: F401  # pyright: ignore[reportUnusedImport]  (make_test_pki imports it only when called)
    except ImportError:
        _unavailable(request.config, _INSTALL_CRYPTOGRAPHY)
    from secure_redis.testing import make_test_pki

    return make_test_pki(tmp_path_factory.mktemp("secure_redis_pki"))


@pytest.fixture(scope="session")
def secure_redis_password() -> str:
    """The test server's generated password (40 random URL-safe characters)."""
    from secure_redis import testing

    return testing.random_password(40)


@pytest.fixture(scope="session")
def secure_redis_encryption_key() -> str:
    """A generated Fernet key, as ``REDIS_ENCRYPTION_KEY`` would hold it."""
    return secure_redis.generate_encryption_key()


@pytest.fixture(scope="session")
def secure_redis_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    secure_redis_pki: "TestPKI",
    secure_redis_password: str,
) -> Iterator["RedisServer"]:
    """A TLS-only ``redis-server`` (no plaintext port) requiring ``secure_redis_password``, on
    a free loopback port (``.url`` is ``rediss://127.0.0.1:PORT/0``), stopped when the session
    ends. Skips, saying how to install it, when ``redis-server`` is missing."""
    if shutil.which("redis-server") is None:
        _unavailable(request.config, _INSTALL_REDIS)
    from secure_redis.testing import RedisServer

    server = RedisServer(
        tmp_path_factory.mktemp("secure_redis_server"),
        password=secure_redis_password,
        cert=secure_redis_pki.server_cert,
        key=secure_redis_pki.server_key,
        ca=secure_redis_pki.ca_cert,
    )
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def secure_redis_config(
    secure_redis_pki: "TestPKI", secure_redis_password: str, secure_redis_encryption_key: str
) -> "SecurityConfig":
    """A ``SecurityConfig`` for ``secure_redis_server``: its password, the generated key, the
    test CA and the client certificate; the package's default timeouts."""
    return secure_redis.SecurityConfig(
        redis_auth=secure_redis_password,
        encryption_key=secure_redis_encryption_key,
        tls_ca_path=secure_redis_pki.ca_cert,
        tls_cert_path=secure_redis_pki.client_cert,
        tls_key_path=secure_redis_pki.client_key,
    )


def _cache_fixture(cache: _T, server: "RedisServer", config: "SecurityConfig") -> Iterator[_T]:
    _empty_database(server, config)
    _connect(cache)
    try:
        yield cache
    finally:
        _run(cache.disconnect)  # type: ignore[attr-defined]


@pytest.fixture
def secure_redis_cache(secure_redis_server: "RedisServer", secure_redis_config: "SecurityConfig") -> Iterator["GenericRedisCache"]:
    """A connected ``GenericRedisCache`` on ``secure_redis_server``, its database empty."""
    cache = secure_redis.GenericRedisCache(secure_redis_server.url, security_config=secure_redis_config)
    yield from _cache_fixture(cache, secure_redis_server, secure_redis_config)


@pytest.fixture
def secure_redis_ai_cache(
    secure_redis_server: "RedisServer", secure_redis_config: "SecurityConfig"
) -> Iterator["AIResponseCache"]:
    """A connected ``AIResponseCache`` on ``secure_redis_server``, its database empty."""
    cache = secure_redis.AIResponseCache(secure_redis_server.url, security_config=secure_redis_config)
    yield from _cache_fixture(cache, secure_redis_server, secure_redis_config)


@pytest.fixture
def secure_redis_manager(
    secure_redis_server: "RedisServer", secure_redis_config: "SecurityConfig"
) -> Iterator["CacheManager"]:
    """A connected ``CacheManager`` over a ``GenericRedisCache`` on ``secure_redis_server``,
    its database empty (so it serves from Redis, not its memory fallback)."""
    manager = secure_redis.CacheManager(
        cache=secure_redis.GenericRedisCache(secure_redis_server.url, security_config=secure_redis_config)
    )
    yield from _cache_fixture(manager, secure_redis_server, secure_redis_config)


@pytest.fixture
def secure_redis_env(
    monkeypatch: pytest.MonkeyPatch,
    secure_redis_server: "RedisServer",
    secure_redis_pki: "TestPKI",
    secure_redis_password: str,
    secure_redis_encryption_key: str,
    secure_redis_config: "SecurityConfig",
) -> dict[str, str]:
    """Points the process environment at ``secure_redis_server`` for one test, so the app's
    own startup (``validate_redis_security()``, ``GenericRedisCache.create_secure()``, a
    FastAPI lifespan) sees a secure configuration; the database is emptied first. Returns the
    variables it set; ``monkeypatch`` restores the previous environment afterwards."""
    values: dict[str, str] = dict(
        zip(
            ENV_SET,
            (
                secure_redis_server.url,
                secure_redis_password,
                secure_redis_encryption_key,
                str(secure_redis_pki.ca_cert),
                str(secure_redis_pki.client_cert),
                str(secure_redis_pki.client_key),
            ),
        )
    )
    for name in ENV_REMOVED:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    _empty_database(secure_redis_server, secure_redis_config)
    return values
