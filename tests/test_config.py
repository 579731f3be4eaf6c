"""SecurityConfig: construction-time validation, environment loading and policy."""

from __future__ import annotations

import pytest

import secure_redis as sr
from conftest import find_secrets, remember_secret

STRONG = sr.generate_secure_password(32)  # what production asks for: generated (zxcvbn scores it 4/4)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "ENVIRONMENT", "NODE_ENV", "FLASK_ENV", "APP_ENV", "ENV", "DEPLOYMENT_ENV", "ENFORCE_AUTH",
        "REDIS_PASSWORD", "REDIS_AUTH", "REDIS_ACL_USERNAME", "REDIS_ENCRYPTION_KEY", "REDIS_TLS_CA_PATH",
        "REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH", "REDIS_TLS_MIN_VERSION", "REDIS_INSECURE_ALLOW_PLAINTEXT",
        "REDIS_URL", "REDIS_CONNECTION_TIMEOUT", "REDIS_SOCKET_TIMEOUT", "REDIS_MAX_RETRIES", "REDIS_RETRY_DELAY",
        "REDIS_USE_TLS", "REDIS_TLS_TRUST_PUBLIC_ROOTS", "REDIS_CLUSTER_NODES", "REDIS_SENTINEL_NODES",
        "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_USERNAME",
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


# Issue 14, item 3: the policy the validator reports is also applied when anything is made, so an
# application that never calls the validator cannot run production on a guessable password.
WEAK = "a" * 54  # long enough for production, and guessable


def _refusals(attempts: dict) -> dict[str, sr.ConfigurationError]:
    refused = {}
    for name, attempt in attempts.items():
        with pytest.raises(sr.ConfigurationError) as info:
            attempt()
        refused[name] = info.value
    return refused


def _construction_paths(url: str, **config_kwargs) -> dict:
    return {
        "SecurityConfig(...)": lambda: sr.SecurityConfig(**config_kwargs),
        "SecurityConfig.from_env()": sr.SecurityConfig.from_env,
        "SecurityConfig.create_for_environment()": sr.SecurityConfig.create_for_environment,
        "GenericRedisCache(url)": lambda: sr.GenericRedisCache(url),
        "GenericRedisCache.create_secure()": sr.GenericRedisCache.create_secure,
        "AIResponseCache(url)": lambda: sr.AIResponseCache(url),
    }


async def test_production_refuses_guessable_passwords_on_every_path(monkeypatch, encryption_key, pki,
                                                                  redis_server) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret(WEAK))
    refused = _refusals(_construction_paths(
        redis_server.url, redis_auth=WEAK, encryption_key=encryption_key, tls_ca_path=pki.ca_cert
    ))
    for name, error in refused.items():
        assert error.context["error_type"] == "environment_policy_violation", (name, error.context)
        assert error.context["field"] == "redis_auth" and "guessable" in error.message, name
        assert WEAK not in str(error) and WEAK not in repr(error.context), name
    # The same paths with the server's own (random, 40 characters) password reach it over TLS 1.3.
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    cache = sr.GenericRedisCache.create_secure()
    assert await cache.connect() is True
    assert cache.get_security_status()["connection"]["tls_version"] == "TLSv1.3"
    await cache.disconnect()


# Issue 16: long but memorable passwords passed production; the zxcvbn estimator scores them 0 to 2.
MEMORABLE = ("P@ssw0rd2024!P@ssw0rd2024!P@ssw0rd2024!", "0123456789" * 4, "abcdefghijklmnopqrstuvwxyz" * 2)


@pytest.mark.parametrize("password", MEMORABLE)
def test_production_refuses_memorable_passwords_on_construction(monkeypatch, encryption_key, pki, password) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret(password))
    attempts = {
        "SecurityConfig(...)": lambda: sr.SecurityConfig(
            redis_auth=password, encryption_key=encryption_key, tls_ca_path=pki.ca_cert
        ),
        "SecurityConfig.create_for_environment()": sr.SecurityConfig.create_for_environment,
    }
    for name, error in _refusals(attempts).items():
        assert error.context["field"] == "redis_auth", name
        assert password not in str(error) and password not in repr(error.context), name
    generated = sr.generate_secure_password(32)
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret(generated))
    assert sr.SecurityConfig.create_for_environment().environment == "production"


def test_short_and_guessable_passwords_are_refused_outside_production_too(encryption_key) -> None:
    for password in ("Kp4!xZ9@mQ2#", "password1234567890", "x" * 40):
        with pytest.raises(sr.ConfigurationError) as info:
            sr.SecurityConfig(redis_auth=remember_secret(password), encryption_key=encryption_key)
        assert info.value.context["field"] == "redis_auth"
        assert info.value.context["environment"] == "development"
        assert password not in str(info.value)


def test_production_plaintext_override_needs_the_acknowledgement(monkeypatch, encryption_key, pki) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret(STRONG))
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "true")
    refused = _refusals(_construction_paths(
        "redis://127.0.0.1:6379/0", redis_auth=STRONG, encryption_key=encryption_key, use_tls=False
    ))
    for name, error in refused.items():
        assert error.context["error_type"] == "plaintext_not_acknowledged", (name, error.context)
        assert "REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged" in error.message, name
    # The validator agrees: a failure, whether or not the URL is plaintext.
    for url in ("redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/0"):
        monkeypatch.setenv("REDIS_URL", url)
        if url.startswith("rediss"):
            monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
        with pytest.raises(sr.ConfigurationError) as info:
            sr.validate_redis_security()
        assert "production-acknowledged" in info.value.message, url

    monkeypatch.delenv("REDIS_TLS_CA_PATH")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "production-acknowledged")
    config = sr.SecurityConfig.create_for_environment()
    assert config.use_tls is False and config.security_level == "LOW"
    cache = sr.GenericRedisCache(security_config=config)
    assert "tls=False" in repr(cache)
    result = sr.validate_redis_security()  # passes, loudly
    assert any("PRODUCTION WITHOUT TLS ALLOWED" in w for w in result.warnings), result.warnings


def test_plaintext_override_true_keeps_working_outside_production(monkeypatch, encryption_key) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "true")
    config = sr.SecurityConfig(redis_auth=remember_secret(STRONG), encryption_key=encryption_key, use_tls=False)
    assert "tls=False" in repr(sr.GenericRedisCache("redis://127.0.0.1:6379/0", security_config=config))


# Issue 14, item 2: without a CA any publicly trusted certificate for the host name passed.
def test_production_requires_a_ca_or_the_public_roots_opt_in(monkeypatch, encryption_key, pki) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret(STRONG))
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_URL", "rediss://redis.example.com:6380/0")
    refused = _refusals(_construction_paths(
        "rediss://redis.example.com:6380/0", redis_auth=STRONG, encryption_key=encryption_key
    ))
    for name, error in refused.items():
        assert error.context["error_type"] == "tls_ca_required", (name, error.context)
        assert error.context["field"] == "tls_ca_path", name
        assert "REDIS_TLS_CA_PATH" in error.message and "REDIS_TLS_TRUST_PUBLIC_ROOTS=true" in error.message, name
    with pytest.raises(sr.ConfigurationError) as info:
        sr.validate_redis_security()
    assert "tls_ca_path (REDIS_TLS_CA_PATH) is required in production" in info.value.message

    opted_in = sr.SecurityConfig(redis_auth=STRONG, encryption_key=encryption_key, tls_trust_public_roots=True)
    assert opted_in.tls_trust_public_roots is True and "tls_trust_public_roots=True" in repr(opted_in)
    assert opted_in.min_tls_version == "1.3"
    monkeypatch.setenv("REDIS_TLS_TRUST_PUBLIC_ROOTS", "true")
    assert sr.SecurityConfig.from_env().tls_trust_public_roots is True
    sr.GenericRedisCache.create_secure()  # a managed service: allowed, and said
    result = sr.validate_redis_security()
    assert any("REDIS_TLS_TRUST_PUBLIC_ROOTS=true" in w for w in result.warnings), result.warnings
    monkeypatch.delenv("REDIS_TLS_TRUST_PUBLIC_ROOTS")
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    assert sr.SecurityConfig.from_env().tls_ca_path is not None


def test_one_node_outside_production_may_use_the_public_roots(monkeypatch, encryption_key) -> None:
    config = sr.SecurityConfig(redis_auth=remember_secret(STRONG), encryption_key=encryption_key)
    assert config.tls_ca_path is None and config.tls_trust_public_roots is False
    sr.GenericRedisCache("rediss://redis.example.com:6380/0", security_config=config)
    result = sr.RedisSecurityValidator().validate_security_configuration(
        "rediss://redis.example.com:6380/0", encryption_key=encryption_key, auth_password=STRONG
    )
    assert result.is_valid and any("REDIS_TLS_CA_PATH is not set" in w for w in result.warnings), result.warnings


# Issue 14, item 8: a password pasted into the wrong variable was printed by the error about it.
PASTED = "Pasted-Secret-Value-7Hq2Zk9Lw4Rx"


def test_no_configuration_error_repeats_a_value(monkeypatch, encryption_key, pki) -> None:
    remember_secret(PASTED)
    base = {"REDIS_PASSWORD": STRONG, "REDIS_ENCRYPTION_KEY": encryption_key,
            "REDIS_URL": "rediss://127.0.0.1:6380/0", "REDIS_TLS_CA_PATH": str(pki.ca_cert)}
    variables = [
        "REDIS_URL", "REDIS_PASSWORD", "REDIS_AUTH", "REDIS_ENCRYPTION_KEY", "REDIS_ACL_USERNAME", "REDIS_USE_TLS",
        "REDIS_TLS_CA_PATH", "REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH", "REDIS_TLS_MIN_VERSION",
        "REDIS_TLS_TRUST_PUBLIC_ROOTS", "REDIS_CONNECTION_TIMEOUT", "REDIS_SOCKET_TIMEOUT", "REDIS_RETRY_DELAY",
        "REDIS_MAX_RETRIES", "REDIS_INSECURE_ALLOW_PLAINTEXT", "REDIS_CLUSTER_NODES", "REDIS_SENTINEL_NODES",
        "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_USERNAME",
    ]
    assert all(sr._native.env_value(name) is None or True for name in variables)  # each is a known name
    texts = []

    def record(attempt) -> None:
        try:
            made = attempt()
        except (sr.ConfigurationError, sr.ValidationError) as error:
            texts.extend([str(error), repr(error), error.message, repr(error.context)])
        else:
            texts.append(repr(made))
            texts.append(str(made))
            if hasattr(made, "to_dict"):
                texts.append(repr(made.to_dict()))

    for name in variables:
        for key, value in base.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv(name, PASTED)
        record(sr.SecurityConfig.from_env)
        record(sr.SecurityConfig.create_for_environment)
        record(sr.GenericRedisCache.create_secure)
        record(lambda: sr.RedisSecurityValidator().validate_startup_security())
        monkeypatch.delenv(name)
    for field in ("tls_ca_path", "tls_cert_path", "tls_key_path", "acl_username", "min_tls_version"):
        record(lambda: sr.SecurityConfig(redis_auth=STRONG, encryption_key=encryption_key, **{field: PASTED}))
    record(lambda: sr.GenericRedisCache(PASTED))
    leaks = [text for text in texts if PASTED.lower() in text.lower()]
    assert not leaks, leaks[:3]
