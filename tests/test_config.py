"""SecurityConfig: construction-time validation, environment loading and policy."""

from __future__ import annotations

import pytest

import secure_redis as sr
from conftest import find_secrets, remember_secret

STRONG = "Str0ng-and-long-enough-password-for-production!"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "ENVIRONMENT", "NODE_ENV", "FLASK_ENV", "APP_ENV", "ENV", "DEPLOYMENT_ENV", "ENFORCE_AUTH",
        "REDIS_PASSWORD", "REDIS_AUTH", "REDIS_ACL_USERNAME", "REDIS_ENCRYPTION_KEY", "REDIS_TLS_CA_PATH",
        "REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH", "REDIS_TLS_MIN_VERSION", "REDIS_INSECURE_ALLOW_PLAINTEXT",
        "REDIS_URL", "REDIS_CONNECTION_TIMEOUT", "REDIS_SOCKET_TIMEOUT", "REDIS_MAX_RETRIES", "REDIS_RETRY_DELAY",
        "REDIS_USE_TLS",
    ]:
        monkeypatch.delenv(name, raising=False)


def test_missing_password_names_the_field_and_the_fix(encryption_key: str) -> None:
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(encryption_key=encryption_key)
    assert info.value.context["field"] == "redis_auth"
    assert "REDIS_PASSWORD" in info.value.message
    assert str(info.value).startswith(info.value.message + " (Context: {")


def test_missing_or_malformed_key_is_refused(password: str) -> None:
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=password)
    assert info.value.context["field"] == "encryption_key"
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=password, encryption_key="not-a-fernet-key")
    assert info.value.context["error_type"] == "invalid_encryption_key"
    assert "not-a-fernet-key" not in str(info.value)


def test_missing_certificate_files_are_reported(password: str, encryption_key: str, tmp_path) -> None:
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=password, encryption_key=encryption_key, tls_ca_path=tmp_path / "nope.crt")
    assert info.value.context["field"] == "tls_ca_path"
    assert "not found" in info.value.message
    cert = tmp_path / "client.crt"
    cert.write_text("x")
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=password, encryption_key=encryption_key, tls_cert_path=cert)
    assert info.value.context["field"] == "tls_key_path"


@pytest.mark.parametrize(
    "field,value",
    [("connection_timeout", 0), ("socket_timeout", -1.0), ("max_retries", -1), ("retry_delay", -0.5)],
)
def test_non_positive_timeouts_are_refused(password: str, encryption_key: str, field: str, value: float) -> None:
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=password, encryption_key=encryption_key, **{field: value})
    assert info.value.context["field"] == field


def test_plaintext_only_with_the_override(password: str, encryption_key: str, monkeypatch) -> None:
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=password, encryption_key=encryption_key, use_tls=False)
    assert "REDIS_INSECURE_ALLOW_PLAINTEXT" in info.value.message
    monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "true")
    config = sr.SecurityConfig(redis_auth=password, encryption_key=encryption_key, use_tls=False)
    assert config.use_tls is False and config.security_level == "LOW"


def test_repr_and_str_never_show_secrets(password: str, encryption_key: str) -> None:
    config = sr.SecurityConfig(redis_auth=password, encryption_key=encryption_key)
    for text in (repr(config), str(config)):
        assert not find_secrets(text)
        assert "***" in text
    assert not hasattr(config, "redis_auth")
    assert not hasattr(config, "encryption_key")


def test_from_env_reads_every_variable(monkeypatch, pki, password, encryption_key) -> None:
    monkeypatch.setenv("REDIS_AUTH", password)  # the alias
    monkeypatch.setenv("REDIS_ACL_USERNAME", "cache-app")
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    monkeypatch.setenv("REDIS_TLS_CERT_PATH", str(pki.client_cert))
    monkeypatch.setenv("REDIS_TLS_KEY_PATH", str(pki.client_key))
    monkeypatch.setenv("REDIS_TLS_MIN_VERSION", "1.3")
    config = sr.SecurityConfig.from_env()
    assert config.acl_username == "cache-app"
    assert str(config.tls_ca_path) == str(pki.ca_cert)
    assert config.has_client_certificate
    assert config.min_tls_version == "1.3"


def test_invalid_environment_values_fail_clearly(monkeypatch, password, encryption_key) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", password)
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT", "fast")
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig.from_env()
    assert info.value.context["variable"] == "REDIS_SOCKET_TIMEOUT"


def test_environment_policy(monkeypatch, encryption_key, pki) -> None:
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig.create_for_environment()  # no password: never invented
    assert info.value.context["field"] == "redis_auth"

    sixteen = remember_secret("sixteen-chars-ok")
    monkeypatch.setenv("REDIS_PASSWORD", sixteen)
    dev = sr.SecurityConfig.create_for_environment()
    assert dev.environment == "development" and dev.min_tls_version == "1.2"
    assert dev.environment_signal.startswith("default")

    monkeypatch.setenv("ENVIRONMENT", "staging")
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig.create_for_environment()
    assert info.value.context["environment"] == "staging"
    assert "at least 24" in info.value.message
    assert sixteen not in str(info.value)

    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret(STRONG))
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))  # production needs its CA (see below)
    prod = sr.SecurityConfig.create_for_environment()
    assert prod.environment == "production" and prod.min_tls_version == "1.3"
    assert prod.environment_signal == "ENVIRONMENT=prod"

    monkeypatch.setenv("REDIS_TLS_MIN_VERSION", "1.2")
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig.create_for_environment()
    assert info.value.context["field"] == "min_tls_version"


def test_enforce_auth_means_production(monkeypatch, encryption_key) -> None:
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("ENFORCE_AUTH", "true")
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret("only-twenty-chars-xx"))
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig.create_for_environment()
    assert info.value.context["environment"] == "production"
    assert info.value.context["environment_signal"] == "ENFORCE_AUTH=true"


def test_generated_passwords() -> None:
    a, b = sr.generate_secure_password(32), sr.generate_secure_password(32)
    assert len(a) == 32 and a != b
    with pytest.raises(sr.ValidationError):
        sr.generate_secure_password(4)


async def test_redis_password_wins_over_its_alias(monkeypatch, redis_server, pki, password, encryption_key) -> None:
    """Proved against a server that knows only one of the two passwords."""
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    monkeypatch.setenv("REDIS_AUTH", remember_secret("the-alias-loses-to-REDIS_PASSWORD-1"))
    monkeypatch.setenv("REDIS_PASSWORD", password)
    cache = sr.GenericRedisCache(redis_server.url, security_config=sr.SecurityConfig.from_env())
    assert await cache.connect() is True
    await cache.disconnect()
    monkeypatch.delenv("REDIS_PASSWORD")
    monkeypatch.setenv("REDIS_AUTH", password)  # the alias alone is enough
    cache = sr.GenericRedisCache(redis_server.url, security_config=sr.SecurityConfig.from_env())
    assert await cache.connect() is True
    await cache.disconnect()


@pytest.mark.parametrize("field", ["tls_ca_path", "tls_cert_path"])
def test_files_that_exist_but_cannot_be_read_fail_at_construction(tmp_path, field, pki, password, encryption_key) -> None:
    # A directory exists but is no PEM file; permission bits would not stop root, who runs CI.
    paths = {"tls_ca_path": pki.ca_cert, "tls_cert_path": pki.client_cert, "tls_key_path": pki.client_key}
    paths[field] = tmp_path
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=password, encryption_key=encryption_key, **paths)
    assert field in str(info.value)
