"""Secrets wrapped by pydantic (``SecretStr``/``SecretBytes``) are taken wherever a password
or key is, and a ``SecurityConfig`` survives ``copy.copy``/``copy.deepcopy``.

A pydantic-settings configuration holds its secrets wrapped; unwrapping them by hand to build
the cache would spread the revealed value around the application. The binding reveals each
wrapper once and copies the value straight into the core's secret holder (``secret_arg``).
"""

from __future__ import annotations

import copy
import dataclasses

import pydantic
import pytest
from pydantic import SecretBytes, SecretStr

import secure_redis as sr
from conftest import find_secrets, make_config, remember_secret
from secure_redis.testing import RedisServer, TestPKI


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "ENVIRONMENT", "NODE_ENV", "FLASK_ENV", "APP_ENV", "ENV", "DEPLOYMENT_ENV", "ENFORCE_AUTH",
        "REDIS_PASSWORD", "REDIS_AUTH", "REDIS_ACL_USERNAME", "REDIS_ENCRYPTION_KEY",
    ]:
        monkeypatch.delenv(name, raising=False)


async def _round_trip(server: RedisServer, config: sr.SecurityConfig) -> None:
    cache = sr.GenericRedisCache(server.url, security_config=config)
    try:
        assert await cache.connect() is True
        await cache.set("secret-wrapper:probe", {"ok": 1}, ttl=60)
        assert await cache.get("secret-wrapper:probe") == {"ok": 1}
        await cache.delete("secret-wrapper:probe")
    finally:
        await cache.disconnect()


async def test_a_config_of_pydantic_secrets_connects_to_tls_redis(
    redis_server: RedisServer, pki: TestPKI, password: str, encryption_key: str
) -> None:
    config = make_config(pki, SecretStr(password), SecretStr(encryption_key))  # type: ignore[arg-type]
    assert config.has_authentication and config.encryption_key_count == 1
    assert not find_secrets(repr(config)) and not find_secrets(str(config))
    await _round_trip(redis_server, config)


async def test_secret_bytes_and_acl_password_are_taken_too(
    redis_server: RedisServer, pki: TestPKI, password: str, encryption_key: str
) -> None:
    config = make_config(
        pki,
        None,  # type: ignore[arg-type]
        SecretBytes(encryption_key.encode()),  # type: ignore[arg-type]
        redis_auth=None,
        acl_password=SecretBytes(password.encode()),
    )
    assert config.has_authentication
    await _round_trip(redis_server, config)


def test_create_for_environment_takes_a_wrapped_key(
    monkeypatch: pytest.MonkeyPatch, password: str, encryption_key: str
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", password)
    config = sr.SecurityConfig.create_for_environment(encryption_key=SecretStr(encryption_key))
    assert config.encryption_key_count == 1


def test_the_encryption_layer_takes_a_wrapped_key(encryption_key: str) -> None:
    wrapped = sr.EncryptedCacheLayer(SecretStr(encryption_key))
    from_bytes = sr.EncryptedCacheLayer(encryption_key=SecretBytes(encryption_key.encode()))
    plain = sr.EncryptedCacheLayer(encryption_key)
    token = wrapped.encrypt_cache_data({"value": [1, 2]})
    assert plain.decrypt_cache_data(token) == {"value": [1, 2]}
    assert from_bytes.decrypt_cache_data(token) == {"value": [1, 2]}
    assert not find_secrets(repr(wrapped))


def test_the_validators_take_wrapped_secrets(password: str, encryption_key: str) -> None:
    validator = sr.RedisSecurityValidator()
    assert validator.validate_encryption_key(SecretStr(encryption_key))["valid"] is True
    assert (
        sr.password_strength(SecretStr(password))["score"] == sr.password_strength(password)["score"]
    )
    auth = validator.validate_redis_auth("rediss://redis.internal:6380/0", SecretStr(password))
    assert auth == validator.validate_redis_auth("rediss://redis.internal:6380/0", password)


def test_a_wrapped_bad_key_is_refused_without_showing_it() -> None:
    bad = remember_secret("not-a-fernet-key-" + "x" * 20)
    with pytest.raises(sr.ConfigurationError) as raised:
        sr.EncryptedCacheLayer(SecretStr(bad))
    assert raised.value.context["error_type"] == sr.ErrorCode.INVALID_ENCRYPTION_KEY.value
    assert bad not in str(raised.value) and bad not in repr(raised.value)


class _Wrapper:
    """Duck-typed like pydantic's secrets, but misbehaving."""

    def __init__(self, reveal: object) -> None:
        self._reveal = reveal

    def get_secret_value(self) -> object:
        if isinstance(self._reveal, BaseException):
            raise self._reveal
        return self._reveal


def test_a_wrapper_that_fails_or_reveals_no_text_is_refused_without_its_value(encryption_key: str) -> None:
    leaked = remember_secret("Wrapper-Revealed-Password-0123456789")
    with pytest.raises(sr.ConfigurationError) as raised:
        sr.SecurityConfig(redis_auth=_Wrapper(RuntimeError(f"cannot read {leaked}")), encryption_key=encryption_key)
    assert "redis_auth.get_secret_value() raised RuntimeError" in str(raised.value)
    assert leaked not in str(raised.value) and raised.value.__cause__ is None

    with pytest.raises(sr.ConfigurationError) as raised:
        sr.SecurityConfig(redis_auth=_Wrapper(12345678901234567890), encryption_key=encryption_key)
    assert "not int" in str(raised.value) and "12345678901234567890" not in str(raised.value)
    assert raised.value.context["error_type"] == sr.ErrorCode.INVALID_SECRET.value


def test_copy_and_deepcopy_give_the_same_usable_config(pki: TestPKI, password: str, encryption_key: str) -> None:
    config = make_config(pki, password, encryption_key)
    for copied in (copy.copy(config), copy.deepcopy(config)):
        assert repr(copied) == repr(config)
        assert copied.encryption_key_count == 1 and copied.has_authentication


async def test_a_deep_copied_config_connects(
    redis_server: RedisServer, pki: TestPKI, password: str, encryption_key: str
) -> None:
    await _round_trip(redis_server, copy.deepcopy(make_config(pki, password, encryption_key)))


@dataclasses.dataclass
class _Settings:
    security: sr.SecurityConfig
    name: str = "app"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    security: sr.SecurityConfig
    name: str = "app"


def test_a_config_inside_a_dataclass_or_pydantic_model_deep_copies(
    pki: TestPKI, password: str, encryption_key: str
) -> None:
    config = make_config(pki, password, encryption_key)
    settings = copy.deepcopy(_Settings(config))
    assert repr(settings.security) == repr(config)
    assert dataclasses.replace(settings, name="other").security is settings.security

    model = _Model(security=config)
    for copied in (copy.deepcopy(model), model.model_copy(deep=True)):
        assert repr(copied.security) == repr(config)
