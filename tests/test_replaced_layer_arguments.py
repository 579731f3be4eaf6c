"""Every constructor argument of the replaced layer is honoured or refused by name (issue 15
items 3 and 7), through a real TLS Redis wherever a cache connects.

``REPLACED`` lists, per class, every argument name the replaced layer's constructor took, as
docs/shared reference §1.5-1.8 and §6.2 give them (for AIResponseCache, the security keywords
it listed and dropped as well). Each name has at least one case below: either its effect is
asserted, or ``ConfigurationError`` naming it is. A meta-test keeps the cases and ``REPLACED``
equal, so a name cannot be forgotten.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import warnings
from typing import Any, Awaitable, Callable

import pytest
from cryptography.fernet import Fernet

import secure_redis as sr
from secure_redis import _args
from secure_redis.testing import free_port

from conftest import make_config, remember_secret

GENERIC_NAMES = [
    "redis_url", "default_ttl", "enable_l1_cache", "l1_cache_size", "compression_threshold",
    "compression_level", "performance_monitor", "security_config",
    # not a parameter there (always False), but the factory's and the attribute's name
    "fail_on_connection_error",
]
AI_SECURITY_NAMES = [
    "redis_password", "use_tls", "tls_cert_path", "tls_key_path", "tls_ca_path", "verify_certificates",
    "redis_auth", "acl_username", "acl_password", "connection_timeout", "socket_timeout", "min_tls_version",
    "cipher_suites",
]
REPLACED: dict[str, list[str]] = {
    "GenericRedisCache": GENERIC_NAMES,
    "AIResponseCache": [
        "redis_url", "default_ttl", "text_hash_threshold", "hash_algorithm", "compression_threshold",
        "compression_level", "text_size_tiers", "memory_cache_size", "l1_cache_size", "enable_l1_cache",
        "performance_monitor", "operation_ttls",
        # dropped with a warning as "security params"
        "security_config", "fail_on_connection_error", *AI_SECURITY_NAMES,
    ],
    "InMemoryCache": ["default_ttl", "max_size", "fail_on_connection_error"],
    "EncryptedCacheLayer": ["encryption_key", "performance_monitoring"],
    "SecurityConfig": [
        "redis_auth", "acl_username", "acl_password", "use_tls", "tls_cert_path", "tls_key_path", "tls_ca_path",
        "verify_certificates", "min_tls_version", "cipher_suites", "connection_timeout", "socket_timeout",
        "max_retries", "retry_delay", "enable_security_monitoring", "log_security_events",
    ],
}


class Monitor:
    """The replaced ``CachePerformanceMonitor``'s recording methods, counting calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def record_cache_operation_time(self, operation, duration, cache_hit, text_length=0, additional_data=None):
        self.calls.append(("operation", {"operation": operation}))

    def record_key_generation_time(self, duration, text_length, operation_type="", additional_data=None):
        self.calls.append(("key_generation", dict(additional_data or {})))

    def record_invalidation_event(self, *args, **kwargs):
        self.calls.append(("invalidation", {}))

    def record_memory_usage(self, *args, **kwargs):
        self.calls.append(("memory", {}))


# -- cases: (class, name, value, check) where check is an async assertion on the built object,
#    or REFUSED: ConfigurationError naming the argument. ------------------------------------------

REFUSED = None
Check = Callable[..., Awaitable[None]] | None


async def _connects(cache, **_) -> None:
    assert await cache.connect() is True
    await cache.set("arg:url", 1)
    assert await cache.get("arg:url") == 1


async def _default_ttl(cache, **_) -> None:
    await cache.set("arg:ttl", 1)
    assert 118 <= await cache.get_ttl("arg:ttl") <= 120


async def _no_l1(cache, **_) -> None:
    await cache.set("arg:l1", 1)
    assert (await cache.get_cache_stats())["memory"]["enabled"] is False


async def _l1_size(cache, **_) -> None:
    assert (await cache.get_cache_stats())["memory"]["memory_cache_size_limit"] == 7


async def _compresses(cache, **_) -> None:
    await cache.set("arg:big", "ab" * 300)  # 600 bytes: above 100, below the default 1000
    assert await cache.get("arg:big") == "ab" * 300
    stats = await cache.get_cache_stats()
    assert stats["encryption"]["compressed_writes"] == 1
    assert cache.compression_level == 9


async def _records(cache, **_) -> None:
    await cache.set("arg:mon", 1)
    assert ("operation", {"operation": "set"}) in cache.performance_monitor.calls


async def _wrong_password_is_used(cache, **_) -> None:
    with pytest.raises(sr.ConfigurationError):
        await cache.connect()


async def _fails_fast(cache, **_) -> None:
    assert cache.fail_on_connection_error is True
    with pytest.raises(sr.InfrastructureError) as info:
        await cache.connect()
    assert info.value.context["error_type"] == sr.ErrorCode.REDIS_UNREACHABLE.value


async def _text_hash_threshold(cache, **_) -> None:
    assert cache.text_hash_threshold == 10
    cache.build_key("x" * 20, "summarize")  # longer than the threshold: "large" for the monitor
    assert ("key_generation", {"text_tier": "large", "has_options": False, "has_question": False}) in \
        cache.performance_monitor.calls


async def _sha256_names(cache, reference, **_) -> None:
    assert cache.build_key("same text", "qa") == reference.build_key("same text", "qa")


async def _tiers(cache, **_) -> None:
    assert cache._get_text_tier("x" * 10) == "medium" and cache._get_text_tier("x" * 600) == "xlarge"


async def _alias(cache, **_) -> None:
    assert cache.memory_cache_size == 7 and cache.l1_cache_size == 7
    assert (await cache.get_cache_stats())["memory"]["memory_cache_size_limit"] == 7


async def _operation_ttl(cache, **_) -> None:
    key = cache.build_key("some text", "summarize")
    await cache.set(key, {"summary": "s"})
    assert 75 <= await cache.get_ttl(key) <= 77


async def _accepted(obj, **_) -> None:
    assert obj is not None


async def _memory_ttl(cache, **_) -> None:
    await cache.set("k", 1)
    assert 59 <= await cache.get_ttl("k") <= 60


async def _memory_size(cache, **_) -> None:
    for i in range(3):
        await cache.set(f"k{i}", i)
    assert cache.size() == 2


async def _memory_fail_flag(cache, **_) -> None:
    assert cache.fail_on_connection_error is True
    await cache.set("k", 1)
    assert await cache.get("k") == 1


async def _layer_key(layer, encryption_key, **_) -> None:
    token = layer.encrypt_cache_data({"a": 1})
    assert Fernet(encryption_key.encode()).decrypt(token) == b'{"a":1}'


async def _layer_unmonitored(layer, **_) -> None:
    layer.encrypt_cache_data(1)
    assert layer.get_performance_stats() == {"error": "Performance monitoring is disabled"}


# Arguments shared by both Redis caches (the AI cache is a GenericRedisCache).
SHARED_CACHE_CASES: list[tuple[str, Any, Check]] = [
    ("redis_url", "<server>", _connects),
    ("default_ttl", 120, _default_ttl),
    ("enable_l1_cache", False, _no_l1),
    ("l1_cache_size", 7, _l1_size),
    ("compression_threshold", 100, _compresses),
    ("compression_level", 9, _compresses),
    ("performance_monitor", "<monitor>", _records),
    ("security_config", "<wrong password>", _wrong_password_is_used),
    ("fail_on_connection_error", True, _fails_fast),
]
CASES: list[tuple[str, str, Any, Check]] = [
    *(("GenericRedisCache", *case) for case in SHARED_CACHE_CASES),
    *(("AIResponseCache", *case) for case in SHARED_CACHE_CASES),
    ("AIResponseCache", "text_hash_threshold", 10, _text_hash_threshold),
    ("AIResponseCache", "hash_algorithm", hashlib.sha256, _sha256_names),
    ("AIResponseCache", "hash_algorithm", None, _sha256_names),
    ("AIResponseCache", "hash_algorithm", "sha256", _sha256_names),
    ("AIResponseCache", "hash_algorithm", hashlib.md5, REFUSED),
    ("AIResponseCache", "text_size_tiers", {"small": 5, "medium": 50, "large": 500}, _tiers),
    ("AIResponseCache", "memory_cache_size", 7, _alias),
    ("AIResponseCache", "operation_ttls", {"summarize": 77}, _operation_ttl),
    *(("AIResponseCache", name, "x", REFUSED) for name in AI_SECURITY_NAMES),
    *(("GenericRedisCache", name, "x", REFUSED) for name in AI_SECURITY_NAMES),
    ("AIResponseCache", "use_tls", True, REFUSED),
    ("AIResponseCache", "verify_certificates", False, REFUSED),
    # None asks for nothing: a settings dict with unset entries still builds a cache
    *(("AIResponseCache", name, None, _accepted) for name in AI_SECURITY_NAMES),
    ("InMemoryCache", "default_ttl", 60, _memory_ttl),
    ("InMemoryCache", "max_size", 2, _memory_size),
    ("InMemoryCache", "fail_on_connection_error", True, _memory_fail_flag),
    ("EncryptedCacheLayer", "encryption_key", "<key>", _layer_key),
    ("EncryptedCacheLayer", "performance_monitoring", False, _layer_unmonitored),
]


def test_every_replaced_name_has_a_case() -> None:
    covered: dict[str, set[str]] = {}
    for cls, name, _, _ in CASES:
        covered.setdefault(cls, set()).add(name)
    for case in CONFIG_CASES:
        covered.setdefault("SecurityConfig", set()).update(case[0])
    assert covered.keys() == REPLACED.keys()
    for cls, names in REPLACED.items():  # GenericRedisCache also has cases for the security names
        assert set(names) <= covered[cls], (cls, set(names) - covered[cls])


def _value(value: Any, redis_server, pki, encryption_key) -> Any:
    if value == "<server>":
        return redis_server.url
    if value == "<monitor>":
        return Monitor()
    if value == "<wrong password>":
        return make_config(pki, remember_secret("Wrong-password-for-argument-tests-1"), encryption_key)
    if value == "<key>":
        return encryption_key
    return value


def _build(cls_name: str, name: str, value: Any, redis_server, config) -> Any:
    cls = getattr(sr, cls_name)
    if cls_name in ("GenericRedisCache", "AIResponseCache"):
        options: dict[str, Any] = {"redis_url": redis_server.url, "security_config": config,
                                   "performance_monitor": Monitor()}
        if name == "fail_on_connection_error":  # a port nothing listens on
            options["redis_url"] = f"rediss://127.0.0.1:{free_port()}/0"
        if name in ("compression_threshold", "compression_level"):
            options.update(compression_threshold=100, compression_level=9)
        options[name] = value
        return cls(**options)
    if cls_name == "EncryptedCacheLayer":
        key = value if name == "encryption_key" else sr.generate_encryption_key()
        return cls(**{"encryption_key": key, name: value})
    return cls(**{name: value})


@pytest.mark.parametrize(("cls_name", "name", "value", "check"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{getattr(c[2], '__name__', c[2])}" for c in CASES])
async def test_replaced_argument(cls_name, name, value, check, redis_server, pki, config, encryption_key) -> None:
    value = _value(value, redis_server, pki, encryption_key)
    if check is REFUSED:
        with pytest.raises(sr.ConfigurationError) as info:
            _build(cls_name, name, value, redis_server, config)
        assert name in info.value.message and info.value.context["parameter"] == name
        assert info.value.context["error_type"] == sr.ErrorCode.UNSUPPORTED_PARAMETER.value
        return
    built = _build(cls_name, name, value, redis_server, config)
    try:
        reference = sr.AIResponseCache(redis_server.url, security_config=config)
        await check(built, reference=reference, encryption_key=encryption_key)
    finally:
        if hasattr(built, "disconnect"):
            await built.disconnect()


def test_security_keywords_say_where_they_belong(config) -> None:
    with pytest.raises(sr.ConfigurationError) as info:
        sr.AIResponseCache("rediss://localhost:6380/0", security_config=config, redis_password="x")
    assert "SecurityConfig(redis_auth=" in info.value.message
    assert "x" not in info.value.context.values()


# -- typos: refused naming the closest valid name (item 7) ------------------------------------------


@pytest.mark.parametrize(("cls_name", "typo", "meant"), [
    ("GenericRedisCache", "defualt_ttl", "default_ttl"),
    ("GenericRedisCache", "namesapce", "namespace"),
    ("AIResponseCache", "operation_ttl", "operation_ttls"),
    ("AIResponseCache", "l1_cache_szie", "l1_cache_size"),
    ("AIResponseCache", "share_conection", "share_connection"),
    ("InMemoryCache", "max_szie", "max_size"),
])
def test_a_typo_names_the_closest_parameter(cls_name, typo, meant, config) -> None:
    cls = getattr(sr, cls_name)
    options = {} if cls_name == "InMemoryCache" else {"redis_url": "rediss://localhost:6380/0", "security_config": config}
    with pytest.raises(sr.ConfigurationError) as info:
        cls(**options, **{typo: 1})
    assert repr(typo) in info.value.message and f"did you mean {meant}?" in info.value.message
    assert info.value.context == {"error_type": sr.ErrorCode.UNKNOWN_PARAMETER.value, "parameter": typo,
                                  "suggestion": meant}


def test_our_own_keywords_still_work(redis_server, config) -> None:
    cache = sr.GenericRedisCache.create_secure(redis_server.url, security_config=config, namespace="args:",
                                               share_connection=False, cluster=False, cluster_nodes=None,
                                               sentinel_nodes=None, sentinel_master=None)
    assert cache.namespace == "args:"
    manager = sr.CacheManager(redis_server.url, ai=True, security_config=config, memory_cache_size=5)
    assert manager.cache.l1_cache_size == 5
    with pytest.raises(sr.ConfigurationError):
        sr.CacheManager(redis_server.url, security_config=config, defualt_ttl=5)


# -- the deprecated alias: said once per process, value still used (item 7) --------------------------


async def test_the_deprecated_alias_warns_once(redis_server, config, caplog) -> None:
    _args._warned.discard("memory_cache_size")  # earlier tests of this process may have used it
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caches = [sr.AIResponseCache(redis_server.url, security_config=config, memory_cache_size=7)
                  for _ in range(5)]
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1 and "memory_cache_size" in str(deprecations[0].message)
    assert "/secure_redis/" not in deprecations[0].filename  # points at the caller
    logged = [r for r in caplog.records if "memory_cache_size" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if "unknown parameter" in r.getMessage()]
    for cache in caches:
        assert cache.l1_cache_size == 7
        assert (await cache.get_cache_stats())["memory"]["memory_cache_size_limit"] == 7
        await cache.disconnect()


# -- EncryptedCacheLayer.create_with_generated_key -------------------------------------------------


def test_create_with_generated_key() -> None:
    layer = sr.EncryptedCacheLayer.create_with_generated_key()
    other = sr.EncryptedCacheLayer.create_with_generated_key(performance_monitoring=False)
    token = layer.encrypt_cache_data({"a": [1, 2]})
    assert layer.decrypt_cache_data(token) == {"a": [1, 2]}
    with pytest.raises(sr.ConfigurationError):
        other.decrypt_cache_data(token)  # a fresh key each time
    assert layer.get_performance_stats()["encryption_operations"] == 1
    other.encrypt_cache_data(1)
    assert other.get_performance_stats() == {"error": "Performance monitoring is disabled"}
    assert isinstance(layer, sr.EncryptedCacheLayer) and layer.key_count == 1


def test_fail_on_connection_error_must_be_a_bool(config) -> None:
    with pytest.raises(sr.ConfigurationError):
        sr.GenericRedisCache("rediss://localhost:6380/0", security_config=config, fail_on_connection_error="yes")


async def test_connect_without_fail_on_connection_error_returns_false(config) -> None:
    cache = sr.GenericRedisCache(f"rediss://127.0.0.1:{free_port()}/0", security_config=config)
    assert cache.fail_on_connection_error is False and await cache.connect() is False
    await cache.disconnect()



# -- SecurityConfig: each argument changes the connection as it did, or is refused by name ------------


async def _round_trip(config, server) -> dict:
    cache = sr.GenericRedisCache(server.url, security_config=config, share_connection=False)
    try:
        assert await cache.connect() is True
        await cache.set("arg:config", 1)
        assert await cache.get("arg:config") == 1
        return cache.get_security_status()
    finally:
        await cache.disconnect()


async def _refused_by_server(config, server) -> None:
    cache = sr.GenericRedisCache(server.url, security_config=config, share_connection=False)
    try:
        with pytest.raises(sr.ConfigurationError):
            await cache.connect()
    finally:
        await cache.disconnect()


APP_PASSWORD = remember_secret("Acl-user-pa55word-for-argument-tests-Q7")
# (names, overrides, server, expected): overrides replace make_config's defaults ("<password>",
# "<other password>" and pki attribute names are filled in); server "acl"/"mtls" start one;
# expected is "connects", "refused by server", a dict of attributes, or ("refused", field, code).
CONFIG_CASES: list[tuple[tuple[str, ...], dict[str, Any], str, Any]] = [
    (("redis_auth",), {"redis_auth": "<password>"}, "main", "connects"),
    (("redis_auth",), {"redis_auth": "<other password>"}, "main", "refused by server"),
    (("acl_password",), {"redis_auth": None, "acl_password": "<password>"}, "main", "connects"),
    (("acl_password",), {"redis_auth": None, "acl_password": "<other password>"}, "main", "refused by server"),
    (("acl_password",), {"acl_password": "<password>"}, "main", "connects"),  # equal to redis_auth
    (("acl_password",), {"acl_password": "<other password>"}, "main",
     ("refused", "acl_password", "conflicting_credentials")),
    (("acl_username", "acl_password"), {"redis_auth": None, "acl_username": "app", "acl_password": APP_PASSWORD},
     "acl", "connects"),
    (("use_tls",), {"use_tls": True}, "main", "connects"),
    (("use_tls",), {"use_tls": False}, "main", ("refused", "use_tls", None)),
    (("tls_cert_path", "tls_key_path"), {"tls_cert_path": "client_cert", "tls_key_path": "client_key"}, "mtls",
     "connects"),
    (("tls_cert_path", "tls_key_path"), {}, "mtls", "refused by server"),  # the server asks for one
    (("tls_ca_path",), {"tls_ca_path": "ca_cert"}, "main", "connects"),
    (("tls_ca_path",), {"tls_ca_path": "other_ca_cert"}, "main", "refused by server"),
    (("verify_certificates",), {"verify_certificates": True}, "main", "connects"),
    (("verify_certificates",), {"verify_certificates": False}, "main",
     ("refused", "verify_certificates", "unsupported_parameter")),
    (("min_tls_version",), {"min_tls_version": 772}, "main", {"min_tls_version": "1.3", "tls_version": "TLSv1.3"}),
    (("min_tls_version",), {"min_tls_version": ssl.TLSVersion.TLSv1_2}, "main", {"min_tls_version": "1.2"}),
    (("min_tls_version",), {"min_tls_version": "1.3"}, "main", {"min_tls_version": "1.3"}),
    (("min_tls_version",), {"min_tls_version": ssl.TLSVersion.TLSv1_1}, "main",
     ("refused", "min_tls_version", "invalid_tls_version")),
    (("cipher_suites",), {"cipher_suites": None}, "main", "connects"),
    (("cipher_suites",), {"cipher_suites": ["TLS_AES_256_GCM_SHA384"]}, "main",
     ("refused", "cipher_suites", "unsupported_parameter")),
    (("cipher_suites",), {"cipher_suites": "ECDHE-RSA-AES256-GCM-SHA384"}, "main",
     ("refused", "cipher_suites", "unsupported_parameter")),
    (("connection_timeout", "socket_timeout", "max_retries", "retry_delay"),
     {"connection_timeout": 3, "socket_timeout": 4, "max_retries": 2, "retry_delay": 0.5}, "main",
     {"connection_timeout": 3.0, "socket_timeout": 4.0, "max_retries": 2, "retry_delay": 0.5}),
    (("enable_security_monitoring", "log_security_events"),
     {"enable_security_monitoring": False, "log_security_events": False}, "main", "connects"),
    (("enable_security_monitoring", "log_security_events"),
     {"enable_security_monitoring": True, "log_security_events": True}, "main", "connects"),
]


@pytest.mark.parametrize(("names", "overrides", "server_kind", "expected"), CONFIG_CASES,
                         ids=[f"{'+'.join(c[0])}-{i}" for i, c in enumerate(CONFIG_CASES)])
async def test_security_config_argument(names, overrides, server_kind, expected, redis_server, make_server, pki,
                                        password, encryption_key) -> None:
    other = remember_secret("Some-other-strong-pa55word-for-tests-Z3")
    fill = {"<password>": password, "<other password>": other}

    def filled(value: Any) -> Any:
        if isinstance(value, str) and value in fill:
            return fill[value]
        if isinstance(value, str) and value.isidentifier() and hasattr(pki, value):
            return getattr(pki, value)
        return value

    options = {name: filled(value) for name, value in overrides.items()}
    server = redis_server
    if server_kind == "acl":
        server = make_server("acl", acl_lines=[f"user default on >{password} ~* &* +@all",
                                               f"user app on >{APP_PASSWORD} ~* &* +@all"])
    elif server_kind == "mtls":
        server = make_server("mtls", tls_auth_clients="yes")
    if isinstance(expected, tuple):
        _, field, code = expected
        with pytest.raises(sr.ConfigurationError) as info:
            make_config(pki, password, encryption_key, **options)
        assert info.value.context["field"] == field and field in info.value.message
        if code is not None:
            assert info.value.context["error_type"] == code
        return
    config = make_config(pki, password, encryption_key, **options)
    assert config.verify_certificates is True
    if expected == "refused by server":
        await _refused_by_server(config, server)
        return
    status = await _round_trip(config, server)
    if isinstance(expected, dict):
        for name, value in expected.items():
            if name == "tls_version":
                assert status["connection"]["tls_version"] == value
            else:
                assert getattr(config, name) == value, name
