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
ENVIRONMENTS = ["development", "testing", "staging", "production"]
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
    short = {"development": "dev", "testing": "test", "staging": "stage", "production": "prod"}[environment]
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


DETECTION_VARIABLES = ["ENVIRONMENT", "NODE_ENV", "FLASK_ENV", "APP_ENV", "ENV", "DEPLOYMENT_ENV"]
DETECTION_VALUES = {
    "development": "development", "dev": "development", "testing": "testing", "test": "testing",
    "staging": "staging", "stage": "staging", "production": "production", "prod": "production",
    "live": "production",
}


@pytest.mark.parametrize("value", sorted(DETECTION_VALUES))
@pytest.mark.parametrize("variable", DETECTION_VARIABLES)
def test_every_variable_and_value_is_detected(monkeypatch, variable, value) -> None:
    monkeypatch.setenv(variable, value.upper() if variable == "APP_ENV" else value)
    detected = sr.detect_environment()
    assert detected["environment"] == DETECTION_VALUES[value]
    assert detected["signal"].split("=")[0] == variable
    result = validator().validate_security_configuration("rediss://h:6380/0")
    assert result.environment == DETECTION_VALUES[value] and result.environment_signal == detected["signal"]


@pytest.mark.parametrize("later", DETECTION_VARIABLES[1:])
def test_environment_takes_precedence_then_the_listed_order(monkeypatch, later) -> None:
    monkeypatch.setenv(later, "live")
    monkeypatch.setenv("ENVIRONMENT", "test")
    assert sr.detect_environment() == {"environment": "testing", "signal": "ENVIRONMENT=test"}
    monkeypatch.delenv("ENVIRONMENT")
    earlier = DETECTION_VARIABLES[DETECTION_VARIABLES.index(later) - 1]
    if earlier != "ENVIRONMENT":
        monkeypatch.setenv(earlier, "stage")
        assert sr.detect_environment() == {"environment": "staging", "signal": f"{earlier}=stage"}
    else:
        assert sr.detect_environment() == {"environment": "production", "signal": f"{later}=live"}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_plaintext_url_fails_everywhere_and_the_override_warns(monkeypatch, environment, caplog) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    with pytest.raises(sr.ConfigurationError) as info:
        validator().validate_production_security("redis://redis:6379/0")
    assert "rediss://" in info.value.message
    assert validator()._is_secure_connection("rediss://h") and not validator()._is_secure_connection("redis://u:p@h")
    if environment == "production":
        # Issue 14: plain `true` passed in production; it needs the second acknowledgement.
        with pytest.raises(sr.ConfigurationError) as info:
            validator().validate_production_security("redis://redis:6379/0", insecure_override=True)
        assert "REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged" in info.value.message
        monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "production-acknowledged")
    validator().validate_production_security("redis://redis:6379/0", insecure_override=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("INSECURE TRANSPORT" in w and "isolated" in w and "firewall" in w for w in warnings), warnings
    if environment == "production":
        assert any("PRODUCTION WITHOUT TLS ALLOWED" in w for w in warnings), warnings


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_authentication_rules_per_environment(monkeypatch, environment) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    v = validator()
    missing = v.validate_redis_auth("rediss://h:6380/0")
    assert not missing["valid"] and missing["auth_info"]["status"] == "Missing"
    twenty = remember_secret("Kp4!xZ9@mQ2#vL7$wR5&")  # strong but 20 characters
    result = v.validate_redis_auth("rediss://h:6380/0", twenty)
    assert result["valid"] is (environment in ("development", "testing")), result
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
    assert not result["valid"] and any("names an ACL user other than" in e for e in result["errors"])
    assert not any("other-user" in e or "cache-app" in e for e in result["errors"])  # names are not echoed


MEMORABLE = ("P@ssw0rd2024!P@ssw0rd2024!", "0123456789" * 4, "abcdefghijklmnopqrstuvwxyz" * 2)


@pytest.mark.parametrize("password", MEMORABLE)
def test_memorable_passwords_rate_weak_and_fail_production_validation(monkeypatch, password) -> None:
    """Issue 16: these rated strong (or passed production) under the old length-and-classes estimate."""
    strength = sr.password_strength(password)
    assert strength["rating"] == "weak" and strength["zxcvbn_score"] <= 2, strength
    assert strength["feedback"]["warning"] or strength["feedback"]["suggestions"]
    assert password not in repr(strength)
    monkeypatch.setenv("ENVIRONMENT", "production")
    remember_secret(password)
    padded = password if len(password) >= 32 else password + password[:32 - len(password)]
    result = validator().validate_redis_auth("rediss://h:6380/0", padded)
    assert not result["valid"], result
    assert not find_secrets(repr(result))


def test_generated_passwords_pass_production_validation(monkeypatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for _ in range(20):
        generated = remember_secret(sr.generate_secure_password(32))
        assert sr.password_strength(generated)["zxcvbn_score"] == 4
        result = validator().validate_redis_auth("rediss://h:6380/0", generated)
        assert result["valid"], result["errors"]
        assert result["auth_info"]["strength"]["zxcvbn_score"] == 4


def test_the_acl_user_name_counts_against_the_password(monkeypatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_ACL_USERNAME", "orders-cache-writer")
    password = remember_secret("orders-cache-writer-Orders-Cache-Writer-2024")
    result = validator().validate_redis_auth("rediss://h:6380/0", password)
    assert not result["valid"]
    assert not find_secrets(repr(result))


def test_password_strength_and_generation() -> None:
    generated = sr.generate_secure_password(32)
    assert sr.password_strength(generated)["rating"] == "strong"
    weak = sr.password_strength("letmein")
    assert weak["rating"] == "weak" and any("common" in i for i in weak["issues"])
    repeated = sr.password_strength("xxxxxxxxxxxxxxxxxxxxxxxx")
    assert any("repeated" in i for i in repeated["issues"])
    assert {"score", "entropy_bits", "issues", "rating", "zxcvbn_score", "feedback"} <= set(weak)
    assert set(weak["feedback"]) == {"warning", "suggestions"}


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
    # Unreadable cert, no key for it, and (production only) no CA: public roots need an opt-in there.
    assert not missing["valid"] and len(missing["errors"]) == (3 if environment == "production" else 2)


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
        p.read_text().split("#[cfg(test)]")[0] for p in (Path(__file__).parent.parent / "crates" / "core" / "src" / "validate").glob("*.rs")
    )
    used = set(re.findall(r',\s*"([a-z][a-z-]+)",?\s*\)', sources))
    assert len(used) >= 12 and used <= anchors, used - anchors
    # The policy's rules (which the validator reports too) name theirs as `anchor: "..."`.
    policy = (Path(__file__).parent.parent / "crates" / "core" / "src" / "config" / "policy.rs").read_text()
    rule_anchors = set(re.findall(r'anchor: "([a-z][a-z-]+)"', policy.split("#[cfg(test)]")[0]))
    assert len(rule_anchors) >= 3 and rule_anchors <= anchors, rule_anchors - anchors


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


ASSIGNMENT = re.compile(r"[A-Z_]{4,}=\S")


def _assert_fixes_name_variables(findings: list[dict], seen: set[str]) -> None:
    for finding in findings:
        assert finding["severity"] in {"error", "warning"}
        assert ASSIGNMENT.search(finding["fix"]), f"fix names no VARIABLE=example: {finding}"
        assert finding["doc"].startswith("docs/infrastructure/redis-security.md#")
        seen.add(finding["message"])


def test_every_fix_names_the_variable_and_an_example(monkeypatch, pki, tmp_path, encryption_key) -> None:
    """Triggers every static finding the validator can produce; each fix must be an assignment."""
    seen: set[str] = set()
    v = validator()

    def configuration(url: str, **kwargs) -> None:
        _assert_fixes_name_variables(v.validate_security_configuration(url, **kwargs).findings, seen)

    # URL: missing (startup error), unparsable, plaintext, plaintext with the override, credentials in it.
    with pytest.raises(sr.ConfigurationError) as info:
        sr.validate_redis_security()
    _assert_fixes_name_variables(info.value.context["violations"], seen)
    configuration("rediss://")
    configuration("http://redis:6380/0")
    configuration("redis://redis:6379/0")
    monkeypatch.setenv("REDIS_INSECURE_ALLOW_PLAINTEXT", "true")
    configuration("redis://redis:6379/0")
    monkeypatch.delenv("REDIS_INSECURE_ALLOW_PLAINTEXT")
    url_password = remember_secret("Nq8tW3zP6yK1dF4hG7jL2mB9xC5vR0sA")  # URL-safe characters only
    configuration(f"rediss://:{url_password}@redis:6380/0")
    configuration(f"rediss://:{url_password}@redis:6380/0", auth_password=STRONG)  # differs from the URL's
    monkeypatch.setenv("REDIS_ACL_USERNAME", "cache-app")
    configuration(f"rediss://other-user:{url_password}@redis:6380/0")
    monkeypatch.delenv("REDIS_ACL_USERNAME")

    # Environment names and TLS versions.
    monkeypatch.setenv("ENV", "prd")
    monkeypatch.setenv("REDIS_TLS_MIN_VERSION", "1.1")
    configuration("rediss://h:6380/0")
    monkeypatch.delenv("ENV")
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("REDIS_TLS_MIN_VERSION", "1.2")
    configuration("rediss://h:6380/0")
    monkeypatch.delenv("REDIS_TLS_MIN_VERSION")

    # Authentication: missing, short, guessable, weak (an error in production).
    for password in (None, "Kp4!xZ9@mQ2#vL7$", "Password1234567890!!", "abcdefghijklmnopqrstuvwxyzabcdef"):
        if password:
            remember_secret(password)
        _assert_fixes_name_variables(v.validate_redis_auth("rediss://h:6380/0", password)["findings"], seen)

    # Encryption keys: missing, invalid, the docs' sample, no randomness, duplicated, too many.
    zero_key = "A" * 43 + "="
    keys = [sr.generate_encryption_key() for _ in range(5)]
    for key in keys:
        remember_secret(key)
    for value in (None, "not-a-key", SAMPLE_KEY, zero_key, f"{encryption_key},{encryption_key}", ",".join(keys)):
        _assert_fixes_name_variables(v.validate_encryption_key(value)["findings"], seen)

    # Certificates, in production so that a key readable by others and a 5-day expiry are errors.
    def certificates(cert=None, key=None, ca=None) -> None:
        result = v.validate_tls_certificates(*(str(p) if p else None for p in (cert, key, ca)))
        _assert_fixes_name_variables(result["findings"], seen)

    empty = tmp_path / "empty.crt"
    empty.write_text("no certificate here\n")
    broken = tmp_path / "broken.crt"
    broken.write_text("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
    not_x509 = tmp_path / "not-x509.crt"
    not_x509.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    garbage_key = tmp_path / "garbage.key"
    garbage_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    garbage_key.chmod(0o600)
    expired = issue_certificate(pki, "fixes-expired", not_before=_days(-60), not_after=_days(-2))
    future = issue_certificate(pki, "fixes-future", not_before=_days(3), not_after=_days(90))
    soon = issue_certificate(pki, "fixes-soon", not_after=_days(5))
    foreign = issue_certificate(pki, "fixes-foreign", ca_cert=pki.other_ca_cert, ca_key=pki.other_ca_key)
    loose = issue_certificate(pki, "fixes-loose")
    loose[1].chmod(0o644)
    certificates(ca=tmp_path / "missing-ca.crt")
    certificates(ca=empty)
    certificates(ca=broken)
    certificates(ca=not_x509)
    certificates(ca=pki.server_cert)  # a leaf, not a CA
    certificates(cert=pki.client_cert)
    certificates(key=pki.client_key)
    certificates(cert=pki.client_cert, key=tmp_path / "missing.key", ca=pki.ca_cert)
    certificates(cert=not_x509, key=pki.client_key, ca=pki.ca_cert)
    for cert, key in (expired, future, soon, foreign, loose):
        certificates(cert, key, pki.ca_cert)
    certificates(pki.client_cert, pki.server_key, pki.ca_cert)
    certificates(pki.client_cert, garbage_key, pki.ca_cert)
    configuration("rediss://h:6380/0")  # no CA configured: a warning
    monkeypatch.setenv("ENVIRONMENT", "development")
    month = issue_certificate(pki, "fixes-month", not_after=_days(20))
    certificates(month[0], month[1], pki.ca_cert)

    expected = [
        "No Redis URL", "plaintext Redis URL", "INSECURE TRANSPORT", "carries a password", "differs from",
        "names an ACL user other than", "not a recognised environment", "REDIS_TLS_MIN_VERSION", "production requires TLS 1.3",
        "No Redis password", "characters; the production environment requires", "guessable", "is weak",
        "No encryption key", "sample key", "almost no randomness", "same key twice", "encryption keys are configured",
        "cannot read", "holds no PEM", "not valid PEM", "does not parse as X.509", "not a CA certificate",
        "REDIS_TLS_KEY_PATH is not", "REDIS_TLS_CERT_PATH is not", "expired", "not valid yet",
        "production requires at least 7", "expires in", "not signed by the CA", "does not belong",
        "cannot be used", "readable by", "REDIS_TLS_CA_PATH is not set",
    ]
    missing = [phrase for phrase in expected if not any(phrase in message for message in seen)]
    assert not missing, (missing, sorted(seen))


def test_every_connectivity_failure_names_the_variable(secure_env, redis_server, encryption_key, pki, make_server,
                                                       tmp_path) -> None:
    from secure_redis.testing import free_port

    seen: set[str] = set()
    v = validator()

    def connect(url: str, ca=pki.ca_cert, password=redis_server.password):
        result = v.validate_security_configuration(
            url, encryption_key=encryption_key, tls_ca_path=str(ca), auth_password=password, test_connectivity=True
        )
        _assert_fixes_name_variables(result.findings, seen)
        return result

    assert not connect(redis_server.url, password=remember_secret("wrong-but-long-enough-password-Xy7#")).is_valid
    assert not connect(redis_server.url, ca=pki.other_ca_cert).is_valid
    assert not connect(f"rediss://127.0.0.1:{free_port()}/0").is_valid
    plaintext = make_server("plain", tls=False)
    assert not connect(f"rediss://127.0.0.1:{plaintext.port}/0").is_valid
    wrong_host = make_server("wrong-host", cert=pki.wrong_host_server_cert, key=pki.wrong_host_server_key)
    assert not connect(wrong_host.url).is_valid
    expired = make_server("expired", cert=pki.expired_server_cert, key=pki.expired_server_key)
    assert not connect(expired.url).is_valid
    for phrase in ("rejected the credentials", "not signed by the configured CA", "unreachable",
                   "plaintext Redis port", "not valid for the host", "has expired"):
        assert any(phrase in message for message in seen), (phrase, sorted(seen))


def _connectivity_errors(result) -> list[str]:
    return [f["message"] for f in result.findings if f["check"] == "connectivity" and f["severity"] == "error"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_connectivity_refuses_a_server_signed_by_another_ca(secure_env, redis_server, encryption_key, pki,
                                                           environment) -> None:
    secure_env.setenv("ENVIRONMENT", environment)
    result = validator().validate_security_configuration(
        redis_server.url, encryption_key=encryption_key, tls_ca_path=str(pki.other_ca_cert),
        auth_password=redis_server.password, test_connectivity=True,
    )
    assert not result.is_valid and result.connectivity_status == "❌ Failed"
    errors = _connectivity_errors(result)
    assert errors and "not signed by the configured CA" in errors[0], errors
    assert "tls_version" not in (result.connectivity_info or {})


def test_connectivity_refuses_a_hostname_mismatch(secure_env, encryption_key, pki, make_server) -> None:
    server = make_server("wrong-host", cert=pki.wrong_host_server_cert, key=pki.wrong_host_server_key)
    result = validator().validate_security_configuration(
        server.url, encryption_key=encryption_key, tls_ca_path=str(pki.ca_cert),
        auth_password=server.password, test_connectivity=True,
    )
    assert not result.is_valid and result.connectivity_status == "❌ Failed"
    errors = _connectivity_errors(result)
    assert errors and "not valid for the host" in errors[0], errors
    fix = next(f["fix"] for f in result.findings if f["check"] == "connectivity")
    assert "REDIS_URL=rediss://" in fix and "subjectAltName" in fix
    assert "127.0.0.1" in errors[0]  # the host that was checked against the certificate


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_connectivity_warns_about_a_server_certificate_expiring_soon(secure_env, encryption_key, pki, make_server,
                                                                    environment) -> None:
    secure_env.setenv("ENVIRONMENT", environment)
    cert, key = issue_certificate(
        pki, f"soon-server-{environment}", client=False, sans=("localhost", "127.0.0.1"), not_after=_days(20)
    )
    server = make_server("soon", cert=cert, key=key)
    result = validator().validate_security_configuration(
        server.url, encryption_key=encryption_key, tls_ca_path=str(pki.ca_cert),
        auth_password=server.password, test_connectivity=True,
    )
    assert result.is_valid, result.errors
    assert result.connectivity_info["server_certificate_days_until_expiry"] in (19, 20)
    assert result.connectivity_info["encrypted_round_trip"] == "write, read and delete succeeded"
    warnings = [f for f in result.findings if f["check"] == "connectivity" and f["severity"] == "warning"]
    assert len(warnings) == 1 and "server certificate expires in" in warnings[0]["message"]
    assert ASSIGNMENT.search(warnings[0]["fix"])
    assert any("server certificate expires in" in w for w in result.warnings)


def test_connectivity_refuses_a_server_certificate_expiring_within_a_week_in_production(
    secure_env, encryption_key, pki, make_server
) -> None:
    secure_env.setenv("ENVIRONMENT", "production")
    cert, key = issue_certificate(
        pki, "week-server", client=False, sans=("localhost", "127.0.0.1"), not_after=_days(5)
    )
    server = make_server("week", cert=cert, key=key)
    result = validator().validate_security_configuration(
        server.url, encryption_key=encryption_key, tls_ca_path=str(pki.ca_cert),
        auth_password=server.password, test_connectivity=True,
    )
    assert not result.is_valid
    assert any("production requires at least 7" in e for e in _connectivity_errors(result))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_group_readable_private_key(monkeypatch, pki, environment) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    cert, key = issue_certificate(pki, f"group-{environment}")
    key.chmod(0o640)
    result = validator().validate_tls_certificates(str(cert), str(key), str(pki.ca_cert))
    assert result["cert_info"]["key_file_mode"] == "640"
    production = environment == "production"
    assert result["valid"] is not production
    found = result["errors"] if production else result["warnings"]
    assert any("readable by its group" in m and "mode 640" in m for m in found), result
    assert not any("readable by" in m for m in (result["warnings"] if production else result["errors"]))


def test_validate_encryption_key_accepts_key_and_encryption_key(encryption_key) -> None:
    v = validator()
    for result in (
        v.validate_encryption_key(encryption_key),
        v.validate_encryption_key(key=encryption_key),
        v.validate_encryption_key(encryption_key=encryption_key),
    ):
        assert result["valid"] and result["key_info"]["key_count"] == 1
    assert not v.validate_encryption_key(key=SAMPLE_KEY)["valid"]
    assert not v.validate_encryption_key(encryption_key=SAMPLE_KEY)["valid"]
    assert not v.validate_encryption_key()["valid"]
    with pytest.raises(TypeError):
        v.validate_encryption_key(encryption_key, encryption_key=SAMPLE_KEY)
