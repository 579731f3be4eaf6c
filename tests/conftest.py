"""Real TLS redis-server processes for the suite, and a guard that no secret is ever logged.

The harness makes a throwaway PKI, starts ``redis-server`` TLS-only with a password on a free
loopback port, and stops it at the end. Nothing here mocks Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import secrets
import ssl
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.fernet import Fernet

import secure_redis as sr
import secure_redis.testing as _testing
from secure_redis.testing import RedisServer, TestPKI, make_test_pki

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


async def assert_serves_through_outage(manager, expected: dict, seconds: float, min_calls: int) -> None:
    """While Redis (or a primary) is down: every read of a key in `expected` answers its value or
    a miss (never anything else, never an error), each read well within its timeout, writes keep
    being accepted, and the cache really noticed the outage. (L1 cannot vouch for its copies
    while Redis's invalidations do not reach it, so a miss is the correct answer there.)"""
    import asyncio
    import time

    calls, slowest = 0, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, value in expected.items():
            started = time.monotonic()
            assert await asyncio.wait_for(manager.get(key), timeout=3) in (value, None)
            slowest = max(slowest, time.monotonic() - started)
            calls += 1
        await manager.set("written-during-outage", calls)  # writes do reach for Redis
        await asyncio.sleep(0.05)
    assert calls > min_calls and slowest < 2.5, (calls, slowest)
    stats = await manager.cache.get_cache_stats()
    assert stats["performance"]["redis_failures"] > 0 or manager.switches > 0


async def back_on_redis(manager, key: str) -> bool:
    """For wait_until: a write, then whether the manager serves from a healthy Redis again."""
    await manager.set(key, 1)
    return manager.cache_type == "redis_secure" and (await manager.health_check())["healthy"]


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


def _record_exception(error: BaseException) -> None:
    # str, repr and args: a secret may hide in any of them (a TypeError's args, an OSError's filename).
    try:
        ERROR_TEXTS.append(f"{type(error).__name__}: {error} {error!r} {error.args!r}")
    except Exception as unprintable:  # an exception whose str() fails is still checked by type
        ERROR_TEXTS.append(f"{type(error).__name__}: <str() failed: {type(unprintable).__name__}>")


# Python 3.11 has no hook that sees every raise, so the exceptions are caught where they can
# leave the package: every function and method of the public Python classes records what passes
# through it (TypeError, ValueError, RuntimeError from the native core as well as our own errors).
def _recording(function):  # type: ignore[no-untyped-def]
    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def async_wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return await function(*args, **kwargs)
            except Exception as error:
                _record_exception(error)
                raise
        wrapper = async_wrapper
    else:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return function(*args, **kwargs)
            except Exception as error:
                _record_exception(error)
                raise
    wrapper.__recording__ = True  # type: ignore[attr-defined]
    return wrapper


def _record_exceptions_of(cls: type) -> None:
    for name, member in list(vars(cls).items()):
        if name in {"__new__", "__init_subclass__", "__class_getitem__"}:
            continue
        if isinstance(member, (classmethod, staticmethod)):
            if inspect.isfunction(member.__func__) and not hasattr(member.__func__, "__recording__"):
                setattr(cls, name, type(member)(_recording(member.__func__)))
        elif inspect.isfunction(member) and not inspect.isasyncgenfunction(member):
            if not hasattr(member, "__recording__"):
                setattr(cls, name, _recording(member))


for _public in (sr.GenericRedisCache, sr.AIResponseCache, sr.CacheManager, sr.InMemoryCache,
                sr.RedisSecurityValidator, sr.SecurityValidationResult):
    _record_exceptions_of(_public)
for _name in ("validate_redis_security", "password_strength", "detect_environment",
              "create_encryption_layer_from_env"):
    setattr(sr, _name, _recording(getattr(sr, _name)))


# Every secret generated through the package (or the usual generators) is registered
# automatically, so a test that forgets remember_secret is still covered.
_AUTO_REGISTER_MIN_LENGTH = 16  # shorter random text could turn up in unrelated output by chance


def _registering(generate):  # type: ignore[no-untyped-def]
    @functools.wraps(generate)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        value = generate(*args, **kwargs)
        text = value.decode() if isinstance(value, bytes) else value
        if isinstance(text, str) and len(text) >= _AUTO_REGISTER_MIN_LENGTH:
            remember_secret(text)
        return value
    return wrapper


for _module, _name in ((sr, "generate_encryption_key"), (sr, "generate_secure_password"),
                       (sr._native, "generate_encryption_key"), (sr._native, "generate_secure_password"),
                       (secrets, "token_hex"), (secrets, "token_urlsafe")):
    setattr(_module, _name, _registering(getattr(_module, _name)))
_testing.random_password = _registering(_testing.random_password)
random_password = _testing.random_password
Fernet.generate_key = staticmethod(_registering(Fernet.generate_key))  # type: ignore[method-assign]


# Exceptions a test expects (pytest.raises) are checked too, whatever their type.
_original_raises = pytest.raises


class _RecordingRaises:
    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        self._context = context

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self._context.__enter__()

    def __exit__(self, kind, error, traceback):  # type: ignore[no-untyped-def]
        if error is not None:
            _record_exception(error)
        return self._context.__exit__(kind, error, traceback)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._context, name)


@functools.wraps(_original_raises)
def _recording_raises(*args, **kwargs):  # type: ignore[no-untyped-def]
    outcome = _original_raises(*args, **kwargs)
    if len(args) > 1 or not hasattr(outcome, "__exit__"):  # the callable form has already run
        if outcome is not None and getattr(outcome, "value", None) is not None:
            _record_exception(outcome.value)
        return outcome
    return _RecordingRaises(outcome)


pytest.raises = _recording_raises  # type: ignore[assignment]


# What child processes print (the CLI, the setup scripts) must not echo a secret the test
# already knew when the process ended; secrets a generator prints on purpose are registered
# only afterwards, from its output, and so are not flagged.
OUTPUT_LEAKS: list[str] = []
_original_run = subprocess.run
_PRINTS_SECRET_ON_STDOUT = [False]


@contextlib.contextmanager
def stdout_prints_secrets() -> Iterator[None]:
    """For a generator that prints a known secret back on purpose (`generate-key --rotate KEY`
    prints the new key and KEY): its stdout is exempt, its stderr is still checked."""
    _PRINTS_SECRET_ON_STDOUT[0] = True
    try:
        yield
    finally:
        _PRINTS_SECRET_ON_STDOUT[0] = False


@functools.wraps(_original_run)
def _checked_run(*args, **kwargs):  # type: ignore[no-untyped-def]
    done = _original_run(*args, **kwargs)
    streams = (done.stderr,) if _PRINTS_SECRET_ON_STDOUT[0] else (done.stdout, done.stderr)
    for stream in streams:
        if stream:
            text = stream.decode(errors="replace") if isinstance(stream, bytes) else stream
            if find_secrets(text):
                OUTPUT_LEAKS.append(f"child process {args[0] if args else kwargs.get('args')!r}: "
                                    f"{_redacted(text)[:200]!r}")
    return done


subprocess.run = _checked_run  # type: ignore[assignment]


def _redacted(text: str) -> str:
    for secret in sorted(SECRETS, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


@pytest.fixture(autouse=True)
def _no_secret_in_logs_or_errors() -> Iterator[None]:
    start_logs, start_errors, start_outputs = len(ALL_RECORDS.messages), len(ERROR_TEXTS), len(OUTPUT_LEAKS)
    yield
    for message in ALL_RECORDS.messages[start_logs:]:
        assert not find_secrets(message), f"a secret appeared in a log record: {_redacted(message)[:200]!r}"
    for text in ERROR_TEXTS[start_errors:]:
        assert not find_secrets(text), f"a secret appeared in an error: {_redacted(text)[:200]!r}"
    assert not OUTPUT_LEAKS[start_outputs:], OUTPUT_LEAKS[start_outputs]


FAILURE_LEAKS: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    """A failing test's exception and traceback are checked, and redacted before pytest prints them."""
    report = yield
    if call.excinfo is not None:
        _record_exception(call.excinfo.value)
    if report.failed and report.longrepr is not None:
        text = str(report.longrepr)
        if find_secrets(text):
            FAILURE_LEAKS.append(f"{item.nodeid} ({call.when})")
            report.longrepr = "a secret appeared in this failure's text; redacted:\n" + _redacted(text)
    # Captured output and logs are printed with a failure too.
    report.sections = [(title, _redacted(content)) for title, content in report.sections]
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = [_redacted(m) for m in ALL_RECORDS.messages + ERROR_TEXTS if find_secrets(m)]
    leaks += OUTPUT_LEAKS + [f"failure text of {where}" for where in FAILURE_LEAKS]
    if leaks:
        session.exitstatus = 1
        print(f"\nSECRET LEAK in {len(leaks)} log record(s), error(s), outputs or failures, first: {leaks[0][:200]!r}")
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
def production_env(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, pki: TestPKI,
                   encryption_key: str) -> pytest.MonkeyPatch:
    """The environment of a production deployment of the session's TLS server, for code that
    reads its settings there (the FastAPI lifespan); returned so a test can change a variable."""
    # Variables that would loosen or reshape the checks are cleared, so what the caller's
    # shell happens to export cannot change the outcome.
    for name in ("ENVIRONMENT", "ENFORCE_AUTH", "REDIS_INSECURE_ALLOW_PLAINTEXT", "REDIS_TLS_MIN_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    return monkeypatch


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
async def ai(redis_server: RedisServer, config: sr.SecurityConfig, raw_redis):
    """A connected AIResponseCache on the session's server, with the database empty before and after."""
    cache = sr.AIResponseCache(redis_url=redis_server.url, security_config=config)
    assert await cache.connect()
    raw_redis.flushdb()  # AIResponseCache.clear() empties only its own ai_cache: keys
    yield cache
    raw_redis.flushdb()
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
