"""Fail-fast startup validation and the security report.

Every check runs in the Rust core (``secure_redis._native``); this module keeps the names and
shapes of the layer we replace. Unlike that layer, anything that makes the cache insecure
fails startup in every environment; the environment only tightens thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from . import _native
from ._secret_like import SecretArg
from .exceptions import ConfigurationError, ErrorCode

logger = logging.getLogger("secure_redis.validation")

_RULE = "━" * 63


class TLSValidationResult(TypedDict):
    valid: bool
    errors: list[str]
    warnings: list[str]
    cert_info: dict[str, Any]


class EncryptionValidationResult(TypedDict):
    valid: bool
    errors: list[str]
    warnings: list[str]
    key_info: dict[str, Any]


class AuthValidationResult(TypedDict):
    valid: bool
    errors: list[str]
    warnings: list[str]
    auth_info: dict[str, Any]


@dataclass
class SecurityValidationResult:
    """The outcome of a validation run: ``summary()`` for people, ``to_dict()`` for machines."""

    is_valid: bool
    tls_status: str
    encryption_status: str
    auth_status: str
    connectivity_status: str
    warnings: list[str] = field(default_factory=list[str])
    errors: list[str] = field(default_factory=list[str])
    recommendations: list[str] = field(default_factory=list[str])
    certificate_info: dict[str, Any] | None = None
    environment: str = "development"
    environment_signal: str = ""
    security_level: str = ""
    connectivity_info: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> "SecurityValidationResult":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in report.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            _RULE,
            "🔒 Redis Security Validation Report",
            _RULE,
            "",
            f"{'✅' if self.is_valid else '❌'} Overall Status: {'PASSED' if self.is_valid else 'FAILED'}",
            f"   Environment: {self.environment} (detected from {self.environment_signal})",
            f"   Security level: {self.security_level}",
            "",
            "Security Components:",
            f"  • TLS/SSL:      {self.tls_status}",
            f"  • Encryption:   {self.encryption_status}",
            f"  • Auth:         {self.auth_status}",
            f"  • Connectivity: {self.connectivity_status}",
        ]
        if self.connectivity_info:
            lines += ["", "Connection:"] + [f"  • {k}: {v}" for k, v in self.connectivity_info.items()]
        if self.certificate_info:
            lines += ["", "Certificate Information:"] + [f"  • {k}: {v}" for k, v in self.certificate_info.items()]
        if self.errors:
            lines += ["", "❌ Errors:"] + [f"  • {e}" for e in self.errors]
        if self.warnings:
            lines += ["", "⚠️  Warnings:"] + [f"  • {w}" for w in self.warnings]
        if self.recommendations:
            lines += ["", "💡 Recommendations:"] + [f"  • {r}" for r in self.recommendations]
        lines.append(_RULE)
        return "\n".join(lines)


class RedisSecurityValidator:
    """The startup validator, with the method names of the layer it replaces."""

    def __init__(self) -> None:
        self.logger = logger

    def _is_secure_connection(self, redis_url: str | None) -> bool:
        """True only for rediss:// URLs (a password over plaintext is not secure)."""
        return bool(redis_url) and str(redis_url).strip().lower().startswith("rediss://")

    def validate_production_security(self, redis_url: str | None, insecure_override: bool = False) -> None:
        """Raises ConfigurationError unless the URL is rediss:// (in every environment).

        With ``insecure_override`` a plaintext URL is allowed with a prominent warning; in production only when
        REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged is set too."""
        result = _native.check_url(redis_url, bool(insecure_override))
        for warning in result["warnings"]:
            self.logger.warning("🚨 %s", warning)
        if not result["valid"]:
            raise ConfigurationError(
                "🔒 SECURITY ERROR: " + " ".join(result["errors"]),
                {
                    "error_type": ErrorCode.INSECURE_REDIS_URL.value,
                    "validation_type": "production_security",
                    "redis_url": result["url_info"].get("redis_url"),
                    "environment": _native.detect_environment()["environment"],
                },
            )

    def validate_tls_certificates(
        self, cert_path: str | None = None, key_path: str | None = None, ca_path: str | None = None
    ) -> TLSValidationResult:
        return _native.check_certificates(cert_path or None, key_path or None, ca_path or None)

    def validate_encryption_key(
        self, key: SecretArg | None = None, *, encryption_key: SecretArg | None = None
    ) -> EncryptionValidationResult:
        """Checks one key or a comma-separated rotation list (newest first).

        ``key`` is the name the replaced layer documents; ``encryption_key=`` is accepted too
        because earlier releases of this package used it."""
        if key is not None and encryption_key is not None and key != encryption_key:
            raise TypeError("validate_encryption_key() got two different keys (key and encryption_key); pass one")
        return _native.check_encryption_key(key if key is not None else encryption_key)

    def validate_redis_auth(self, redis_url: str, auth_password: SecretArg | None = None) -> AuthValidationResult:
        return _native.check_auth(redis_url, auth_password, _native.env_value("REDIS_ACL_USERNAME"))

    def validate_security_configuration(
        self,
        redis_url: str,
        encryption_key: SecretArg | None = None,
        tls_cert_path: str | None = None,
        tls_key_path: str | None = None,
        tls_ca_path: str | None = None,
        auth_password: SecretArg | None = None,
        test_connectivity: bool = False,
    ) -> SecurityValidationResult:
        if not redis_url:
            raise ConfigurationError(
                "A Redis URL is required for security validation: set REDIS_URL=rediss://redis.internal:6380/0",
                {"validation_type": "security_configuration", "error_type": ErrorCode.MISSING_REDIS_URL.value},
            )
        report = _native.validate_configuration(
            redis_url,
            encryption_key=encryption_key,
            tls_cert_path=tls_cert_path,
            tls_key_path=tls_key_path,
            tls_ca_path=tls_ca_path,
            auth_password=auth_password,
            acl_username=_native.env_value("REDIS_ACL_USERNAME"),
            min_tls_version=_native.env_value("REDIS_TLS_MIN_VERSION"),
            test_connectivity=test_connectivity,
        )
        return SecurityValidationResult.from_report(report)

    def validate_startup_security(
        self, redis_url: str | None = None, insecure_override: bool | None = None, test_connectivity: bool = False
    ) -> SecurityValidationResult:
        """The startup gate: raises one ConfigurationError listing every violation.

        Reads REDIS_URL (unless given), REDIS_PASSWORD, REDIS_ACL_USERNAME, REDIS_ENCRYPTION_KEY,
        REDIS_TLS_* and REDIS_INSECURE_ALLOW_PLAINTEXT (unless ``insecure_override`` is given)."""
        try:
            report = _native.validate_startup(redis_url, insecure_override, test_connectivity)
        except ConfigurationError as error:
            self.logger.error("%s", error.message)
            raise
        result = SecurityValidationResult.from_report(report)
        for warning in result.warnings:
            self.logger.warning("%s", warning)
        self.logger.info("✅ %s", report["success_line"])
        return result


def validate_redis_security(
    redis_url: str | None = None, insecure_override: bool | None = None, test_connectivity: bool = False
) -> SecurityValidationResult:
    """Validates the Redis configuration from the environment; raises ConfigurationError when insecure."""
    return RedisSecurityValidator().validate_startup_security(redis_url, insecure_override, test_connectivity)


def password_strength(password: SecretArg) -> dict[str, Any]:
    """Rates a password with the zxcvbn estimator and our own pattern checks; never returns the password.

    ``{"score": 0-100, "entropy_bits": float, "rating": "weak|fair|strong", "issues": [...],
    "zxcvbn_score": 0-4, "feedback": {"warning": str | None, "suggestions": [...]}}``. Production
    requires ``zxcvbn_score`` 4, which a ``generate_secure_password()`` password always has.
    """
    return _native.password_strength(password)


def detect_environment() -> dict[str, str]:
    """``{"environment": "production", "signal": "ENVIRONMENT=prod"}``."""
    return _native.detect_environment()


__all__ = [
    "AuthValidationResult",
    "EncryptionValidationResult",
    "RedisSecurityValidator",
    "SecurityValidationResult",
    "TLSValidationResult",
    "detect_environment",
    "password_strength",
    "validate_redis_security",
]
