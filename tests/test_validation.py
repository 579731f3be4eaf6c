"""Startup validation: every check, in every environment, against files and servers made here."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path

import pytest

import secure_redis as sr
from conftest import find_secrets, remember_secret
from secure_redis.testing import issue_certificate

SAMPLE_KEY = "osh2GKJFHvhPf2CHBp-FwXc3S-nC7srqvqTmMnSnxMs="
ENVIRONMENTS = ["development", "staging", "production"]
STRONG = "Vq7#mZ2!pL9$xR4@kT8&wN3^bH6*cJ5%"  # 32 characters, four classes

VARIABLES = [
    "ENVIRONMENT", "NODE_ENV", "FLASK_ENV", "APP_ENV", "ENV", "DEPLOYMENT_ENV", "ENFORCE_AUTH", "REDIS_URL",
    "REDIS_PASSWORD", "REDIS_AUTH", "REDIS_ACL_USERNAME", "REDIS_ENCRYPTION_KEY", "REDIS_TLS_CA_PATH",
    "REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH", "REDIS_TLS_MIN_VERSION", "REDIS_INSECURE_ALLOW_PLAINTEXT",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    remember_secret(STRONG)


@pytest.fixture
def secure_env(monkeypatch, redis_server, pki, encryption_key):
    """A complete, correct configuration for the session's TLS server (the test sets ENVIRONMENT)."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", str(pki.ca_cert))
    return monkeypatch


def validator() -> sr.RedisSecurityValidator:
    return sr.RedisSecurityValidator()


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_is_detected_and_reported(monkeypatch, environment) -> None:
    short = {"development": "dev", "staging": "stage", "production": "prod"}[environment]
    monkeypatch.setenv("NODE_ENV", short)
    detected = sr.detect_environment()
    assert detected["environment"] == environment
    assert detected["signal"].startswith("NODE_ENV=")
    result = validator().validate_security_configuration("rediss://h:6380/0")
    assert result.environment == environment and result.environment_signal.startswith("NODE_ENV=")
    assert f"Environment: {environment}" in result.summary()


def test_no_signal_means_development_and_enforce_auth_means_production(monkeypatch) -> None:
    assert sr.detect_environment() == {"environment": "development", "signal": "default (no environment variable set)"}
    monkeypatch.setenv("ENFORCE_AUTH", "true")
    assert sr.detect_environment()["environment"] == "production"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_plaintext_url_fails_everywhere_and_the_override_warns(monkeypatch, environment, caplog) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    with pytest.raises(sr.ConfigurationError) as info:
        validator().validate_production_security("redis://redis:6379/0")
    assert "rediss://" in info.value.message
    assert validator()._is_secure_connection("rediss://h") and not validator()._is_secure_connection("redis://u:p@h")
    validator().validate_production_security("redis://redis:6379/0", insecure_override=True)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1]
    assert "INSECURE TRANSPORT" in warning and "isolated" in warning and "firewall" in warning


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_authentication_rules_per_environment(monkeypatch, environment) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    v = validator()
    missing = v.validate_redis_auth("rediss://h:6380/0")
    assert not missing["valid"] and missing["auth_info"]["status"] == "Missing"
    twenty = remember_secret("Kp4!xZ9@mQ2#vL7$wR5&")  # strong but 20 characters
    result = v.validate_redis_auth("rediss://h:6380/0", twenty)
    assert result["valid"] is (environment == "development"), result
    for guessable in ("Password1234567890!!", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"):
        remember_secret(guessable)
        result = v.validate_redis_auth("rediss://h:6380/0", guessable)
        assert not result["valid"] and any("guessable" in e for e in result["errors"])
    strong = v.validate_redis_auth("rediss://h:6380/0", STRONG)
    assert strong["valid"] and strong["auth_info"]["strength"]["rating"] == "strong"
    assert not find_secrets(repr(strong))


def test_random_hex_passwords_are_strong_and_url_users_must_agree(monkeypatch) -> None:
    import secrets

    for _ in range(200):
        hex_password = secrets.token_hex(32)
        assert not any("repeated" in i for i in sr.password_strength(hex_password)["issues"]), hex_password
    monkeypatch.setenv("REDIS_ACL_USERNAME", "cache-app")
    url_password = remember_secret("Kq7mZ2pL9xR4kT8wN3bH6cJ5vB1nM0sY")
    result = validator().validate_redis_auth(f"rediss://other-user:{url_password}@h:6380/0")
    assert not result["valid"] and any("names ACL user" in e for e in result["errors"])


def test_password_strength_and_generation() -> None:
    generated = sr.generate_secure_password(32)
    assert sr.password_strength(generated)["rating"] == "strong"
    weak = sr.password_strength("letmein")
    assert weak["rating"] == "weak" and any("common" in i for i in weak["issues"])
    repeated = sr.password_strength("xxxxxxxxxxxxxxxxxxxxxxxx")
    assert any("repeated" in i for i in repeated["issues"])
    assert {"score", "entropy_bits", "issues", "rating"} <= set(weak)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_encryption_key_rules(monkeypatch, environment, encryption_key) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    v = validator()
    assert not v.validate_encryption_key(None)["valid"]
    assert not v.validate_encryption_key("not-a-key")["valid"]
    sample = v.validate_encryption_key(SAMPLE_KEY)
    assert not sample["valid"] and "sample key" in sample["errors"][0]
    rotated = v.validate_encryption_key(f"{sr.generate_encryption_key()},{encryption_key}")
    assert rotated["valid"] and rotated["key_info"]["key_count"] == 2 and rotated["key_info"]["rotation"]
    assert not find_secrets(repr(rotated))


def _days(n: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=n)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_certificate_rules(monkeypatch, environment, pki) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    v = validator()
    ok = v.validate_tls_certificates(str(pki.client_cert), str(pki.client_key), str(pki.ca_cert))
    assert ok["valid"], ok["errors"]
    assert ok["cert_info"]["signed_by_ca"] and ok["cert_info"]["key_matches_certificate"]

    expired = issue_certificate(pki, f"expired-{environment}", not_before=_days(-60), not_after=_days(-2))
    result = v.validate_tls_certificates(str(expired[0]), str(expired[1]), str(pki.ca_cert))
    assert not result["valid"] and "expired" in result["errors"][0]

    future = issue_certificate(pki, f"future-{environment}", not_before=_days(3), not_after=_days(90))
    result = v.validate_tls_certificates(str(future[0]), str(future[1]), str(pki.ca_cert))
    assert not result["valid"] and "not valid yet" in result["errors"][0]

    foreign = issue_certificate(
        pki, f"foreign-{environment}", ca_cert=pki.other_ca_cert, ca_key=pki.other_ca_key
    )
    result = v.validate_tls_certificates(str(foreign[0]), str(foreign[1]), str(pki.ca_cert))
    assert not result["valid"] and any("not signed by the CA" in e for e in result["errors"])

    result = v.validate_tls_certificates(str(pki.client_cert), str(pki.server_key), str(pki.ca_cert))
    assert not result["valid"] and any("does not belong" in e for e in result["errors"])

    soon = issue_certificate(pki, f"soon-{environment}", not_after=_days(5))
    result = v.validate_tls_certificates(str(soon[0]), str(soon[1]), str(pki.ca_cert))
    assert result["valid"] is (environment != "production")
    month = issue_certificate(pki, f"month-{environment}", not_after=_days(20))
    result = v.validate_tls_certificates(str(month[0]), str(month[1]), str(pki.ca_cert))
    assert result["valid"] and any("expires in" in w for w in result["warnings"])

    loose = issue_certificate(pki, f"loose-{environment}")
    loose[1].chmod(0o644)
    result = v.validate_tls_certificates(str(loose[0]), str(loose[1]), str(pki.ca_cert))
    assert result["valid"] is (environment != "production")
    assert any("readable by everyone" in m for m in result["errors"] + result["warnings"])

    missing = v.validate_tls_certificates("/nonexistent/client.crt", None, None)
    assert not missing["valid"] and len(missing["errors"]) == 2  # unreadable cert, and no key for it


def test_connectivity_check_records_tls_details(secure_env, redis_server) -> None:
    secure_env.setenv("ENVIRONMENT", "development")
    result = validator().validate_security_configuration(
        redis_server.url,
        encryption_key=os.environ["REDIS_ENCRYPTION_KEY"],
        tls_ca_path=os.environ["REDIS_TLS_CA_PATH"],
        auth_password=redis_server.password,
        test_connectivity=True,
    )
    assert result.is_valid, result.errors
    info = result.connectivity_info
    assert info["tls_version"] in {"TLSv1.3", "TLSv1.2"}
    assert info["cipher_suite"].startswith("TLS")
    assert info["server_certificate_days_until_expiry"] >= 80
    assert info["round_trip_ms"] > 0
    assert info["encrypted_round_trip"] == "write, read and delete succeeded"
    assert result.connectivity_status.startswith("✅ Connected")


def test_connectivity_failure_is_reported(secure_env, redis_server, encryption_key, pki) -> None:
    wrong = remember_secret("wrong-but-long-enough-password-Xy7#")
    result = validator().validate_security_configuration(
        redis_server.url, encryption_key=encryption_key, tls_ca_path=str(pki.ca_cert),
        auth_password=wrong, test_connectivity=True,
    )
    assert not result.is_valid
    assert result.connectivity_status == "❌ Failed"
    assert any("rejected the credentials" in e for e in result.errors)


def test_startup_passes_with_one_success_line(secure_env, caplog) -> None:
    secure_env.setenv("ENVIRONMENT", "staging")
    with caplog.at_level(logging.INFO, logger="secure_redis.validation"):
        result = sr.validate_redis_security(test_connectivity=True)
    assert result.is_valid and result.security_level == "HIGH"
    success = [r.getMessage() for r in caplog.records if "validation passed" in r.getMessage()]
    assert len(success) == 1
    assert "staging environment" in success[0] and "security level HIGH" in success[0]


def test_startup_lists_every_violation_at_once(secure_env) -> None:
    secure_env.setenv("ENVIRONMENT", "production")
    secure_env.setenv("REDIS_URL", "redis://redis:6379/0")
    secure_env.setenv("REDIS_ENCRYPTION_KEY", SAMPLE_KEY)
    with pytest.raises(sr.ConfigurationError) as info:
        sr.validate_redis_security()
    error = info.value
    checks = [v["check"] for v in error.context["violations"]]
    assert checks.count("url") == 1 and "encryption" in checks
    assert error.context["environment"] == "production"
    for violation in error.context["violations"]:
        assert violation["fix"] and violation["doc"].startswith("docs/infrastructure/redis-security.md#")
    assert not find_secrets(str(error))


def test_startup_error_snapshot(monkeypatch, tmp_path) -> None:
    """The exact text an operator sees; regenerate with SNAPSHOT_UPDATE=1 after deliberate changes."""
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@redis:6379/0")
    monkeypatch.setenv("REDIS_PASSWORD", remember_secret("hunter2"))
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", SAMPLE_KEY)
    monkeypatch.setenv("REDIS_TLS_CA_PATH", "/etc/redis/tls/missing-ca.crt")
    monkeypatch.setenv("REDIS_TLS_MIN_VERSION", "1.2")
    with pytest.raises(sr.ConfigurationError) as info:
        sr.validate_redis_security()
    text = info.value.message
    snapshot = Path(__file__).parent / "snapshots" / "startup_error.txt"
    if os.environ.get("SNAPSHOT_UPDATE"):
        snapshot.write_text(text + "\n")
    assert text + "\n" == snapshot.read_text()
    assert "hunter2" not in text


def test_docs_hold_every_section_the_errors_cite() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "infrastructure" / "redis-security.md").read_text()
    anchors = {
        line.lstrip("#").strip().lower().replace(" ", "-") for line in doc.splitlines() if line.startswith("## ")
    }
    cited = {"redis-url", "plaintext-override", "tls-versions", "certificates", "certificate-expiry", "mutual-tls",
             "key-file-permissions", "authentication", "password-policy", "acl-users", "encryption-keys",
             "key-rotation", "connectivity", "troubleshooting"}
    assert cited <= anchors, cited - anchors
    # Every anchor a finding cites: the last string argument of a call, outside test modules.
    sources = "\n".join(
        p.read_text().split("#[cfg(test)]")[0] for p in (Path(__file__).parent.parent / "src" / "validate").glob("*.rs")
    )
    used = set(re.findall(r',\s*"([a-z][a-z-]+)",?\s*\)', sources))
    assert len(used) >= 12 and used <= anchors, used - anchors


async def test_live_cache_security_methods(cache) -> None:
    result = await cache.validate_security()
    assert result.is_valid, result.errors
    assert result.connectivity_info["tls_version"].startswith("TLSv1.")
    status = cache.get_security_status()
    assert status["security_level"] == "HIGH"
    assert status["connection"]["connected"] and status["connection"]["tls_version"].startswith("TLSv1.")
    assert status["configuration"]["certificate_verification"] is True
    report = await cache.generate_security_report()
    assert "PASSED" in report and "Redis Security Validation Report" in report
    assert not find_secrets(report) and not find_secrets(repr(status))


def test_unrecognised_environment_names_are_reported(monkeypatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "prd")
    result = validator().validate_security_configuration("rediss://h:6380/0")
    assert result.environment == "development"
    assert any("ENVIRONMENT=prd is not a recognised environment name" in w for w in result.warnings)
