"""Connecting: every way of getting it wrong gives a clear error, and TLS is never bypassed."""

from __future__ import annotations

import logging
import time

import pytest

import secure_redis as sr
from conftest import find_secrets, make_config, remember_secret, wait_until


async def expect_refusal(url: str, config: sr.SecurityConfig, error_type: str, *phrases: str) -> sr.ConfigurationError:
    cache = sr.GenericRedisCache(url, security_config=config)
    with pytest.raises(sr.ConfigurationError) as info:
        await cache.connect()
    error = info.value
    assert error.context["error_type"] == error_type, str(error)
    for phrase in phrases:
        assert phrase in error.message, error.message
    assert not find_secrets(str(error))
    return error


async def test_wrong_password(redis_server, pki, encryption_key) -> None:
    wrong = remember_secret("definitely-not-the-password-123")
    config = make_config(pki, wrong, encryption_key)
    await expect_refusal(redis_server.url, config, "authentication_failed", "rejected the credentials", "REDIS_PASSWORD")


async def test_a_refusal_is_logged_once_as_a_refusal_never_as_an_outage(redis_server, pki, encryption_key,
                                                                          caplog) -> None:
    """Issue 16: a wrong password first logged "Redis unavailable ... retried once a second",
    sending the reader after the network, and then raised ConfigurationError."""
    wrong = remember_secret("definitely-not-the-password-456")
    cache = sr.GenericRedisCache(redis_server.url, security_config=make_config(pki, wrong, encryption_key))
    caplog.set_level(logging.WARNING, logger="secure_redis.connection")
    for _ in range(3):
        with pytest.raises(sr.ConfigurationError):
            await cache.connect()
    messages = [r.getMessage() for r in caplog.records if r.name == "secure_redis.connection"]
    assert not [m for m in messages if "unavailable" in m], messages
    refused = [m for m in messages if "refused this client" in m]
    assert len(refused) == 1 and "rejected the credentials" in refused[0], messages
    await cache.disconnect()


async def test_unknown_ca(redis_server, pki, password, encryption_key) -> None:
    config = make_config(pki, password, encryption_key, tls_ca_path=pki.other_ca_cert)
    await expect_refusal(redis_server.url, config, "tls_handshake_failed", "not signed by the configured CA")


async def test_no_ca_means_the_public_roots_and_the_error_says_so(monkeypatch, redis_server, pki, password,
                                                                  encryption_key) -> None:
    """Issue 14: without a CA the advice named "the configured CA" although none was configured."""
    for name in ("ENVIRONMENT", "ENFORCE_AUTH", "REDIS_INSECURE_ALLOW_PLAINTEXT"):
        monkeypatch.delenv(name, raising=False)
    config = make_config(pki, password, encryption_key, tls_ca_path=None)  # one node, development: allowed
    error = await expect_refusal(
        redis_server.url, config, "tls_handshake_failed", "not trusted by the public web roots", "no CA is configured",
        "REDIS_TLS_CA_PATH",
    )
    assert "configured CA" not in error.message


async def test_hostname_mismatch(make_server, pki, password, encryption_key) -> None:
    server = make_server("wronghost", cert=pki.wrong_host_server_cert, key=pki.wrong_host_server_key)
    config = make_config(pki, password, encryption_key)
    await expect_refusal(server.url_for("localhost"), config, "tls_handshake_failed", "not valid for the host")


async def test_expired_server_certificate(make_server, pki, password, encryption_key) -> None:
    server = make_server("expired", cert=pki.expired_server_cert, key=pki.expired_server_key)
    config = make_config(pki, password, encryption_key)
    await expect_refusal(server.url, config, "tls_handshake_failed", "expired")


async def test_plaintext_server_on_a_rediss_url(make_server, pki, password, encryption_key) -> None:
    server = make_server("plain", tls=False)
    config = make_config(pki, password, encryption_key, connection_timeout=1.0)
    await expect_refusal(server.url_for("127.0.0.1").replace("redis://", "rediss://"), config, "plaintext_server",
                         "plaintext Redis port")


async def test_redis_url_is_refused_without_the_override(monkeypatch, pki, password, encryption_key) -> None:
    monkeypatch.delenv("REDIS_INSECURE_ALLOW_PLAINTEXT", raising=False)
    config = make_config(pki, password, encryption_key)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache(f"redis://:{password}@127.0.0.1:6379/0", security_config=config)
    assert info.value.context["error_type"] == "insecure_redis_url"
    assert "rediss://" in info.value.message
    assert password not in str(info.value)


async def test_plaintext_override_still_authenticates_and_encrypts(
    monkeypatch, make_server, pki, password, encryption_key, caplog
) -> None:
    monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "true")
    server = make_server("plain-ok", tls=False)
    with pytest.raises(sr.ConfigurationError) as info:  # use_tls=True contradicts a redis:// URL
        sr.GenericRedisCache(server.url, security_config=make_config(pki, password, encryption_key))
    assert info.value.context["error_type"] == "tls_configuration_conflict"
    config = make_config(pki, password, encryption_key, use_tls=False)
    cache = sr.GenericRedisCache(server.url, security_config=config)
    assert await cache.connect() is True
    assert any("INSECURE" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    await cache.set("k", {"still": "encrypted"})
    import redis

    raw = redis.Redis(host="127.0.0.1", port=server.port, password=password)
    assert raw.get("k").startswith(b"gAAAAA")
    raw.close()
    wrong = make_config(pki, remember_secret("wrong-password-on-plaintext-1"), encryption_key, use_tls=False)
    with pytest.raises(sr.ConfigurationError):
        await sr.GenericRedisCache(server.url, security_config=wrong).connect()


async def test_mutual_tls(make_server, pki, password, encryption_key) -> None:
    server = make_server("mtls", tls_auth_clients="yes")
    without = make_config(pki, password, encryption_key)
    cache = sr.GenericRedisCache(server.url, security_config=without)
    with pytest.raises(sr.ConfigurationError) as info:
        await cache.connect()
    assert "REDIS_TLS_CERT_PATH" in info.value.message
    with_cert = make_config(pki, password, encryption_key, tls_cert_path=pki.client_cert, tls_key_path=pki.client_key)
    cache = sr.GenericRedisCache(server.url, security_config=with_cert)
    assert await cache.connect() is True
    await cache.set("mtls", [1, 2, 3])
    assert await cache.get("mtls") == [1, 2, 3]


async def test_client_key_must_match_certificate(pki, password, encryption_key, redis_server) -> None:
    config = make_config(pki, password, encryption_key, tls_cert_path=pki.client_cert, tls_key_path=pki.server_key)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache(redis_server.url, security_config=config)
    assert info.value.context["field"] == "tls_key_path"


async def test_minimum_tls_version_is_enforced(make_server, pki, password, encryption_key) -> None:
    server = make_server("tls12", tls_protocols="TLSv1.2")
    config13 = make_config(pki, password, encryption_key, min_tls_version="1.3")
    error = await expect_refusal(server.url, config13, "tls_handshake_failed")
    assert "TLS" in error.message
    config12 = make_config(pki, password, encryption_key, min_tls_version="1.2")
    assert await sr.GenericRedisCache(server.url, security_config=config12).connect() is True


async def test_acl_user(make_server, pki, encryption_key) -> None:
    app_password = remember_secret("acl-user-password-0123456789")
    admin_password = remember_secret("admin-password-0123456789-abc")
    server = make_server(
        "acl",
        password=admin_password,
        acl_lines=[
            f"user default on >{admin_password} ~* &* +@all",
            f"user cache-app on >{app_password} ~* -@all +@read +@write +@keyspace +ping",
        ],
    )
    server.password = admin_password
    config = make_config(pki, app_password, encryption_key, acl_username="cache-app")
    cache = sr.GenericRedisCache(server.url, security_config=config)
    assert await cache.connect() is True
    await cache.set("acl", {"ok": True})
    assert await cache.get("acl") == {"ok": True}
    assert await cache.clear() == 1
    wrong_user = make_config(pki, app_password, encryption_key, acl_username="nobody")
    with pytest.raises(sr.ConfigurationError):
        await sr.GenericRedisCache(server.url, security_config=wrong_user).connect()


async def test_unreachable_redis_returns_false_and_calls_do_not_raise(pki, password, encryption_key) -> None:
    from secure_redis.testing import free_port

    config = make_config(pki, password, encryption_key)
    cache = sr.GenericRedisCache(f"rediss://127.0.0.1:{free_port()}/0", security_config=config)
    assert await cache.connect() is False
    started = time.monotonic()
    await cache.set("k", "v")
    # L1 answers only while Redis's invalidations reach it (another process may write "k"
    # meanwhile), so without Redis a read is a miss, never a possibly stale copy.
    assert await cache.get("k") is None
    assert await cache.get("other") is None
    assert await cache.exists("other") is False
    assert await cache.delete("k") is False
    assert await cache.ping() is False
    assert time.monotonic() - started < 3.0
    stats = await cache.get_cache_stats()
    assert stats["redis"]["status"] == "unavailable"
    assert stats["performance"]["l1_only_writes"] == 1


async def test_credentials_in_url_must_agree_and_never_leak(redis_server, pki, password, encryption_key) -> None:
    config = make_config(pki, password, encryption_key)
    url = redis_server.url.replace("rediss://", f"rediss://:{password}@")
    cache = sr.GenericRedisCache(url, security_config=config)
    assert password not in cache.redis_url and password not in repr(cache)
    assert await cache.connect() is True
    other = remember_secret("a-different-password-in-url-9")
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache(redis_server.url.replace("rediss://", f"rediss://:{other}@"), security_config=config)
    assert other not in str(info.value) and password not in str(info.value)


@pytest.mark.parametrize("separator", ["#", "?", "/"])
def test_url_with_unencoded_separators_in_the_password_never_leaks(pki, password, encryption_key, separator) -> None:
    leaky = remember_secret(f"8443{separator}very-secret-part")
    config = make_config(pki, password, encryption_key)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.GenericRedisCache(f"rediss://user:{leaky}@redis:6380/0", security_config=config)
    assert "8443" not in str(info.value) and "very-secret" not in str(info.value)
    assert "percent-encode" in info.value.message
    report = sr.RedisSecurityValidator().validate_security_configuration(f"rediss://user:{leaky}@redis:6380/0")
    assert "very-secret" not in str(report.to_dict())


def test_secrets_that_are_not_valid_text_are_not_echoed(encryption_key) -> None:
    broken = "\udcff" + remember_secret("surrogate-password-tail-xyz")
    with pytest.raises(sr.ConfigurationError) as info:
        sr.SecurityConfig(redis_auth=broken, encryption_key=encryption_key)
    assert "surrogate-password-tail-xyz" not in repr(info.value) + str(info.value.args)
    assert info.value.__cause__ is None and info.value.__context__ is None
    with pytest.raises(sr.ConfigurationError):
        sr.EncryptedCacheLayer("\udcff" + encryption_key)
    with pytest.raises(sr.ConfigurationError):
        sr.password_strength("\udcffpw")


async def test_plaintext_warning_is_repeated_on_every_reconnect(
    monkeypatch, make_server, pki, password, encryption_key, caplog
) -> None:
    monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "true")
    server = make_server("plain-reconnect", tls=False)
    cache = sr.GenericRedisCache(
        server.url, security_config=make_config(pki, password, encryption_key, use_tls=False), enable_l1_cache=False
    )

    def insecure_warnings() -> int:
        return sum("INSECURE" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

    assert await cache.connect() is True
    assert insecure_warnings() == 1
    await cache.set("k", 1)
    server.restart()  # the connection breaks; the cache reconnects by itself

    async def reconnected() -> bool:
        return await cache.get("k") is None and await cache.ping()

    assert await wait_until(reconnected)
    assert insecure_warnings() == 2
    await cache.disconnect()
