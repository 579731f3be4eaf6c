"""Real TLS redis-server processes for the suite, and a guard that no secret is ever logged.

The harness makes a throwaway PKI, starts ``redis-server`` TLS-only with a password on a free
loopback port, and stops it at the end. Nothing here mocks Redis.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Iterator

import pytest

import secure_redis as sr
from secure_redis.testing import RedisServer, TestPKI, make_test_pki, random_password

# Every secret the suite creates is registered here; no log record may ever contain one.
SECRETS: set[str] = set()


def remember_secret(value: str) -> str:
    SECRETS.add(value)
    return value


class _AllRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.messages.append(f"{record.name}: {text}")


ALL_RECORDS = _AllRecords()
logging.getLogger().addHandler(ALL_RECORDS)
logging.getLogger("secure_redis").setLevel(logging.DEBUG)


async def wait_until(predicate, timeout: float = 20.0) -> bool:
    """Polls an async predicate every 100 ms until it is true or `timeout` passes."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


def find_secrets(text: str) -> list[str]:
    return [s for s in SECRETS if s and s in text]


# Every secure_redis exception raised anywhere in the suite (Rust-made ones included) is
# recorded as text, so the leak check covers error messages as well as log records.
ERROR_TEXTS: list[str] = []
_original_init_context = sr.exceptions._ContextMixin._init_context


def _recording_init_context(self, message, context):  # type: ignore[no-untyped-def]
    _original_init_context(self, message, context)
    ERROR_TEXTS.append(f"{type(self).__name__}: {self}")


sr.exceptions._ContextMixin._init_context = _recording_init_context  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_secret_in_logs_or_errors() -> Iterator[None]:
    start_logs, start_errors = len(ALL_RECORDS.messages), len(ERROR_TEXTS)
    yield
    for message in ALL_RECORDS.messages[start_logs:]:
        assert not find_secrets(message), f"a secret appeared in a log record: {message[:200]!r}"
    for text in ERROR_TEXTS[start_errors:]:
        assert not find_secrets(text), f"a secret appeared in an error: {text[:200]!r}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = [m for m in ALL_RECORDS.messages + ERROR_TEXTS if find_secrets(m)]
    if leaks:
        session.exitstatus = 1
        print(f"\nSECRET LEAK in {len(leaks)} log record(s) or error(s), first: {leaks[0][:200]!r}")
    elif exitstatus == 0:
        print(
            f"\nsecret check: {len(ALL_RECORDS.messages)} log records and {len(ERROR_TEXTS)} error texts, "
            f"no secret among {len(SECRETS)} registered"
        )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def password() -> str:
    return remember_secret(random_password(40))


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return remember_secret(sr.generate_encryption_key())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI, password: str) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path_factory.mktemp("redis"),
        password=password,
        cert=pki.server_cert,
        key=pki.server_key,
        ca=pki.ca_cert,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path, pki: TestPKI, password: str) -> Iterator[callable]:
    """Starts extra servers for one test (other certificates, plaintext, mTLS...)."""
    started: list[RedisServer] = []

    def start(name: str = "extra", **kwargs) -> RedisServer:
        options = dict(password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert)
        options.update(kwargs)
        server = RedisServer(tmp_path / f"{name}-{len(started)}", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def make_config(pki: TestPKI, password: str, encryption_key: str, **overrides) -> sr.SecurityConfig:
    """Test defaults: short timeouts so failure paths finish quickly."""
    options = dict(
        redis_auth=password,
        encryption_key=encryption_key,
        tls_ca_path=pki.ca_cert,
        connection_timeout=2.0,
        socket_timeout=1.0,
        max_retries=1,
        retry_delay=0.05,
    )
    options.update(overrides)
    return sr.SecurityConfig(**options)


@pytest.fixture
def config(pki: TestPKI, password: str, encryption_key: str) -> sr.SecurityConfig:
    return make_config(pki, password, encryption_key)


@pytest.fixture
async def cache(redis_server: RedisServer, config: sr.SecurityConfig):
    cache = sr.GenericRedisCache(redis_server.url, security_config=config)
    assert await cache.connect() is True
    await cache.clear()
    yield cache
    await cache.clear()
    await cache.disconnect()


@pytest.fixture
def raw_redis(redis_server: RedisServer, pki: TestPKI, password: str):
    """A plain redis-py client over TLS, to look at (and tamper with) what is really stored."""
    import redis

    client = redis.Redis(
        host=redis_server.host,
        port=redis_server.port,
        password=password,
        ssl=True,
        ssl_ca_certs=str(pki.ca_cert),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    yield client
    client.close()
