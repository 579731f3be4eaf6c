"""repr and str of every public object, and every report and status view, never show a secret.

Each object is built with real secrets: a random password that is also embedded in the Redis
URL, a freshly generated Fernet key, and a secret-bearing value stored in the caches.
"""

from __future__ import annotations

import json

import pytest

import secure_redis as sr
from conftest import find_secrets, make_config, remember_secret
from secure_redis.fastapi import cache_health
from secure_redis.testing import random_password


def credential_url(server, password: str) -> str:
    return server.url.replace("rediss://", f"rediss://:{password}@")


def assert_clean(label: str, text: str, *secrets: str) -> None:
    # The explicit secrets are checked even if a future change stopped registering them.
    leaked = [s for s in secrets if s in text] + find_secrets(text)
    assert not leaked, f"{label} shows a secret"


def views(obj: object) -> dict[str, str]:
    return {"repr": repr(obj), "str": str(obj), "format": f"{obj}"}


@pytest.fixture
def stored_secret() -> str:
    """A value a user caches (an API token): it must never surface in a repr either."""
    return remember_secret("sk-live-" + random_password(32))


async def test_caches_and_manager_built_from_a_credential_url(
    redis_server, pki, password, encryption_key, stored_secret
) -> None:
    url = credential_url(redis_server, password)
    config = make_config(pki, password, encryption_key)
    generic = sr.GenericRedisCache(url, security_config=config)
    ai = sr.AIResponseCache(url, security_config=config)
    by_url = sr.CacheManager(url, security_config=config)  # the manager builds the cache itself
    by_cache = sr.CacheManager(cache=sr.GenericRedisCache(url, security_config=config))
    memory = sr.InMemoryCache()
    objects = {"GenericRedisCache": generic, "AIResponseCache": ai, "CacheManager(url)": by_url,
               "CacheManager(cache)": by_cache, "InMemoryCache": memory, "SecurityConfig": config,
               "cache.security_config": generic.security_config}
    for cache in (generic, ai, by_url, by_cache):
        assert await cache.connect() is True
    for cache in (generic, ai, by_url, by_cache, memory):
        await cache.set("token:1", {"api_token": stored_secret})
        assert (await cache.get("token:1"))["api_token"] == stored_secret  # really stored, in L1 too
    for label, obj in objects.items():
        for view, text in views(obj).items():
            assert_clean(f"{view}({label})", text, password, encryption_key, url, stored_secret)
    assert "redis_url" in repr(by_url) and "redis_url" in repr(by_cache)  # printed, but without credentials
    for cache in (generic, ai):
        assert_clean("get_security_status", json.dumps(cache.get_security_status()), password, encryption_key)
        assert_clean("get_cache_stats", json.dumps(await cache.get_cache_stats(), default=str),
                     password, encryption_key, stored_secret)
        assert_clean("recommendations", " ".join(cache.get_security_recommendations()), password, encryption_key)
        assert_clean("security report", await cache.generate_security_report(), password, encryption_key, url)
        assert_clean("health endpoint", json.dumps(await cache_health(cache), default=str), password, url)
    for manager in (by_url, by_cache):
        assert_clean("get_cache_info", json.dumps(manager.get_cache_info(), default=str), password, url)
        assert_clean("health_check", json.dumps(await manager.health_check(), default=str), password)
    assert_clean("memory stats", json.dumps(memory.get_stats(), default=str) + repr(memory.get_keys()),
                 stored_secret)
    for cache in (generic, ai, by_url, by_cache):
        await cache.delete("token:1")
        await cache.disconnect()


async def test_validation_results_reports_and_summaries(
    redis_server, pki, password, encryption_key, monkeypatch
) -> None:
    url = credential_url(redis_server, password)
    validator = sr.RedisSecurityValidator()
    assert_clean("RedisSecurityValidator", repr(validator) + str(validator), password)
    direct = validator.validate_security_configuration(
        url, encryption_key=encryption_key, tls_ca_path=str(pki.ca_cert), auth_password=password,
        test_connectivity=True,
    )
    for name in ("ENFORCE_AUTH", "REDIS_INSECURE_ALLOW_PLAINTEXT", "REDIS_TLS_MIN_VERSION", "REDIS_ACL_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("REDIS_PASSWORD", password)
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    startup = sr.validate_redis_security(test_connectivity=True)
    cache = sr.GenericRedisCache(url, security_config=make_config(pki, password, encryption_key))
    assert await cache.connect()
    from_cache = await cache.validate_security()
    for label, result in {"direct": direct, "startup": startup, "cache.validate_security": from_cache}.items():
        assert isinstance(result, sr.SecurityValidationResult)
        # The dataclass repr includes connectivity_info and certificate_info: make sure they were filled.
        assert result.connectivity_info, label
        texts = views(result) | {"summary": result.summary(), "to_dict": json.dumps(result.to_dict(), default=str)}
        for view, text in texts.items():
            assert_clean(f"{view} of the {label} result", text, password, encryption_key, url)
    assert direct.certificate_info and startup.is_valid
    for check in (validator.validate_encryption_key(encryption_key), validator.validate_redis_auth(url, password),
                  validator.validate_tls_certificates(ca_path=str(pki.ca_cert))):
        assert_clean("a validator check", repr(check) + json.dumps(check, default=str), password, encryption_key)
    await cache.disconnect()


def test_encryption_layer_and_configuration(password, encryption_key) -> None:
    second = sr.generate_encryption_key()  # registered by conftest's wrapper, checked explicitly here
    layer = sr.EncryptedCacheLayer(f"{second},{encryption_key}")
    env_layer_config = sr.SecurityConfig(redis_auth=password, encryption_key=f"{second},{encryption_key}")
    for label, obj in {"EncryptedCacheLayer": layer, "SecurityConfig": env_layer_config}.items():
        for view, text in views(obj).items():
            assert_clean(f"{view}({label})", text, password, encryption_key, second)
    assert_clean("layer stats", json.dumps(layer.get_performance_stats(), default=str), encryption_key, second)


async def test_errors_of_a_refused_connection(redis_server, pki, encryption_key) -> None:
    wrong = remember_secret(random_password(40))
    url = credential_url(redis_server, wrong)
    cache = sr.GenericRedisCache(url, security_config=make_config(pki, wrong, encryption_key))
    with pytest.raises(sr.ConfigurationError) as info:
        await cache.connect()
    error = info.value
    for text in (str(error), repr(error), repr(error.args), json.dumps(error.context, default=str),
                 repr(cache), str(cache.last_error)):
        assert_clean("refused connection error", text, wrong, encryption_key, url)
