"""An application's own exception hierarchy sees every error secure_redis raises.

The hierarchy below is written here in the shape backends such as the FastAPI-LLM starter use:
a base ``ApplicationError(message, context=None)`` with ``ValidationError`` and
``ConfigurationError`` under it, and ``InfrastructureError`` beside it. After
``use_application_exceptions`` the application's ``except`` clauses and FastAPI handlers catch
our errors (raised from Python and from the Rust core), while ours still catch them too.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

import secure_redis as sr
from secure_redis.fastapi import get_cache, secure_redis_lifespan
from secure_redis.testing import free_port


class AppError(Exception):
    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.context = context or {}

    def __str__(self) -> str:
        return f"{self.message} (Context: {self.context})" if self.context else self.message


class AppValidationError(AppError):
    pass


class AppConfigurationError(AppError):
    pass


class AppInfrastructureError(Exception):
    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.context = context or {}


@pytest.fixture
def bridged() -> Iterator[None]:
    sr.use_application_exceptions(
        configuration=AppConfigurationError,
        validation=AppValidationError,
        infrastructure=AppInfrastructureError,
    )
    try:
        yield
    finally:
        sr.use_application_exceptions()


def test_errors_from_the_rust_core_are_the_applications_too(bridged, pki, encryption_key) -> None:
    with pytest.raises(AppConfigurationError) as info:
        sr.SecurityConfig(redis_auth=None, encryption_key=encryption_key, tls_ca_path=pki.ca_cert)
    error = info.value
    assert isinstance(error, sr.ConfigurationError) and isinstance(error, AppError)
    assert not isinstance(error, AppValidationError)
    assert error.context["field"] == "redis_auth" and "REDIS_PASSWORD" in error.message
    assert str(error) == f"{error.message} (Context: {error.context!r})"
    assert type(error).__name__ == "ConfigurationError"


async def test_errors_raised_in_python_and_in_operations_are_bridged(bridged, cache) -> None:
    with pytest.raises(AppValidationError) as info:
        await cache.set("k", 1, ttl=-1)
    assert isinstance(info.value, sr.ValidationError)
    assert info.value.context["error_type"] == "invalid_ttl"
    with pytest.raises(AppValidationError):
        await cache.invalidate_pattern(123)  # type: ignore[arg-type]
    # Our own except clauses are unchanged.
    try:
        await cache.set("k", object())
    except sr.ValidationError as error:
        assert isinstance(error, AppValidationError)
    else:
        pytest.fail("an unserialisable value was accepted")


def test_a_global_handler_for_the_applications_base_class_answers(bridged, monkeypatch, redis_server,
                                                                   encryption_key, pki) -> None:
    for name in ("ENVIRONMENT", "ENFORCE_AUTH", "REDIS_INSECURE_ALLOW_PLAINTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    app = FastAPI(lifespan=secure_redis_lifespan())

    @app.exception_handler(AppError)
    async def application_error(_: Request, error: AppError) -> JSONResponse:
        return JSONResponse({"error": type(error).__name__, "message": error.message}, status_code=400)

    @app.get("/bad-ttl")
    async def bad_ttl(cache: sr.GenericRedisCache = Depends(get_cache)) -> dict[str, str]:
        await cache.set("k", 1, ttl=-5)
        return {"stored": "no"}

    with TestClient(app) as client:
        reply = client.get("/bad-ttl")
    assert reply.status_code == 400
    assert reply.json()["error"] == "ValidationError"


def test_infrastructure_errors_reach_the_applications_class(bridged, monkeypatch, encryption_key, pki) -> None:
    for name in ("ENVIRONMENT", "ENFORCE_AUTH", "REDIS_INSECURE_ALLOW_PLAINTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", f"rediss://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("REDIS_PASSWORD", "Unreachable-anyway-0123456789-abcdef")
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    monkeypatch.setenv("REDIS_MAX_RETRIES", "0")
    app = FastAPI(lifespan=secure_redis_lifespan(require_redis=True))
    with pytest.raises(AppInfrastructureError) as info:
        with TestClient(app):
            pass
    assert isinstance(info.value, sr.InfrastructureError)
    assert not isinstance(info.value, AppError)


def test_undoing_the_bridge_raises_our_classes_alone(pki, encryption_key) -> None:
    sr.use_application_exceptions(configuration=AppConfigurationError)
    sr.use_application_exceptions()
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=None, encryption_key=encryption_key, tls_ca_path=pki.ca_cert)
    assert type(info.value) is sr.ConfigurationError
    assert not isinstance(info.value, AppError)


def test_a_later_call_replaces_the_earlier_one(pki, encryption_key) -> None:
    try:
        sr.use_application_exceptions(configuration=AppConfigurationError, validation=AppValidationError)
        sr.use_application_exceptions(validation=AppValidationError)
        with pytest.raises(sr.ConfigurationError) as info:
            sr.SecurityConfig(redis_auth=None, encryption_key=encryption_key, tls_ca_path=pki.ca_cert)
        assert not isinstance(info.value, AppError)
        assert isinstance(sr.ValidationError("x"), AppValidationError)
    finally:
        sr.use_application_exceptions()


class NeedsACode(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)


class ForgetsTheContext(Exception):
    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.__dict__["context"] = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "context":
            super().__setattr__(name, value)


@pytest.mark.parametrize(
    ("argument", "value", "expected"),
    [
        ("configuration", "app.core.exceptions.ConfigurationError", "needs an Exception subclass"),
        ("validation", int, "needs an Exception subclass"),
        ("infrastructure", sr.InfrastructureError, "got a secure_redis class"),
        ("configuration", NeedsACode, "must accept (message, context=None)"),
        ("validation", ForgetsTheContext, "overwrites .message or .context"),
    ],
)
def test_classes_that_cannot_be_bridged_are_refused_by_name(argument, value, expected) -> None:
    with pytest.raises(sr.ConfigurationError) as info:
        sr.use_application_exceptions(**{argument: value})
    assert expected in info.value.message
    assert info.value.context["parameter"] == argument
    # A refused call changes nothing.
    assert type(sr.ConfigurationError("x")) is sr.ConfigurationError
