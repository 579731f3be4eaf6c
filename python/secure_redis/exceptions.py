"""The exceptions secure_redis raises.

Each carries ``.message`` (what to change) and ``.context`` (a dict, never holding secrets);
``str(e)`` is ``"message (Context: {...})"`` when there is context, as in the layer we replace.

An application with its own hierarchy of the same shape (the starter backend's
``app.core.exceptions``) calls :func:`use_application_exceptions` once: from then on every error
secure_redis raises, from Python or from the Rust core, is also an instance of the application's
class, so the application's ``except`` clauses and handlers see it, while
``except secure_redis.ConfigurationError`` keeps working. The bridge is a subclass of both
classes, chosen in ``__new__``, so no raise site has to know about it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, cast

from . import _native

if TYPE_CHECKING:
    # What type checkers see: the same members, spelled out, since they cannot run the
    # functional Enum call below. tests/test_native_stub.py keeps this list equal to the Rust one.
    class ErrorCode(str, enum.Enum):
        meaning: str

        INVALID_SECURITY_CONFIG = "invalid_security_config"
        INVALID_SECRET = "invalid_secret"
        INVALID_ENCRYPTION_KEY = "invalid_encryption_key"
        INVALID_PASSWORD_LENGTH = "invalid_password_length"
        INVALID_TLS_VERSION = "invalid_tls_version"
        INVALID_TLS_MATERIAL = "invalid_tls_material"
        TLS_CONFIGURATION_CONFLICT = "tls_configuration_conflict"
        INVALID_REDIS_URL = "invalid_redis_url"
        INSECURE_REDIS_URL = "insecure_redis_url"
        MIXED_TLS_MODES = "mixed_tls_modes"
        CONFLICTING_CREDENTIALS = "conflicting_credentials"
        CONFLICTING_TOPOLOGY = "conflicting_topology"
        SENTINEL_NODES_MISSING = "sentinel_nodes_missing"
        SENTINEL_MASTER_MISSING = "sentinel_master_missing"
        CLUSTER_DATABASE = "cluster_database"
        CLUSTER_CONFIGURATION = "cluster_configuration"
        INVALID_ENVIRONMENT_VALUE = "invalid_environment_value"
        ENVIRONMENT_POLICY_VIOLATION = "environment_policy_violation"
        PLAINTEXT_NOT_ACKNOWLEDGED = "plaintext_not_acknowledged"
        TLS_CA_REQUIRED = "tls_ca_required"
        SECURITY_VALIDATION_FAILED = "security_validation_failed"
        AUTHENTICATION_FAILED = "authentication_failed"
        ACL_DENIED = "acl_denied"
        TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
        PLAINTEXT_SERVER = "plaintext_server"
        CONNECTION_SETUP_FAILED = "connection_setup_failed"
        NOT_A_CLUSTER = "not_a_cluster"
        SENTINEL_UNKNOWN_MASTER = "sentinel_unknown_master"
        REDIS_REJECTED_CONFIGURATION = "redis_rejected_configuration"
        INVALID_KEY = "invalid_key"
        INVALID_TTL = "invalid_ttl"
        INVALID_CACHE_PARAMETER = "invalid_cache_parameter"
        UNKNOWN_PARAMETER = "unknown_parameter"
        UNSUPPORTED_PARAMETER = "unsupported_parameter"
        INVALID_PATTERN = "invalid_pattern"
        INVALID_SCOPE = "invalid_scope"
        INVALID_OPERATION = "invalid_operation"
        UNSUPPORTED_VALUE = "unsupported_value"
        VALUE_TOO_LARGE = "value_too_large"
        DESERIALIZATION_ERROR = "deserialization_error"
        DECRYPTION_FAILURE = "decryption_failure"
        REDIS_UNREACHABLE = "redis_unreachable"
        CACHE_NOT_INITIALIZED = "cache_not_initialized"
        MISSING_REDIS_URL = "missing_redis_url"
        SCOPE_UNAVAILABLE = "scope_unavailable"
        RUNTIME_START_FAILURE = "runtime_start_failure"
        RANDOM_SOURCE_FAILURE = "random_source_failure"
        INTERNAL_ERROR = "internal_error"

else:
    # Built from the Rust list, the one source.
    ErrorCode = enum.Enum(
        "ErrorCode", {code.upper(): code for code in _native.ERROR_CODES}, type=str, module=__name__
    )
ErrorCode.__doc__ = """What went wrong, as ``error.context["error_type"]`` holds it.

A ``str`` enum over the codes of the Rust core (``crates/core/src/error/code.rs``, listed with
their meanings in docs/architecture.md): ``ErrorCode.AUTHENTICATION_FAILED == "authentication_failed"``.
``ErrorCode.X.meaning`` says when the code is used."""
for _code in ErrorCode:
    _code.meaning = _native.ERROR_CODES[_code.value]


class _ContextMixin:
    message: str
    context: dict[str, Any]

    def _init_context(self, message: str, context: dict[str, Any] | None) -> None:
        self.message = message
        self.context = dict(context) if context else {}

    def __str__(self) -> str:
        if self.context:
            return f"{self.message} (Context: {self.context!r})"
        return self.message


class SecureRedisError(Exception):
    """Base of every secure_redis error, for callers who want one ``except``."""


# Our class -> the subclass of it and of the application's class that is raised instead.
_BRIDGES: dict[type[BaseException], type[BaseException]] = {}


class _Bridged:
    """Raises the application's bridge class in place of ours once one is registered."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        ours = cast("type[BaseException]", cls)  # _Bridged is only mixed into exception classes
        bridge = _BRIDGES.get(ours)
        target = bridge if bridge is not None else ours
        # Exception.__new__ takes the same positional arguments; __init__ runs next because
        # the bridge is a subclass of ``cls``.
        return Exception.__new__(target, *args)


class ApplicationError(_Bridged, _ContextMixin, SecureRedisError):
    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self._init_context(message, context)


class ValidationError(ApplicationError):
    """A caller passed a value the API does not accept (HTTP 400 in the backend)."""


class ConfigurationError(ApplicationError):
    """The configuration cannot work or would be insecure; the message says what to change."""


class InfrastructureError(_Bridged, _ContextMixin, SecureRedisError):
    """The outside world failed. Not a subclass of ApplicationError, as in the replaced layer."""

    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self._init_context(message, context)


def use_application_exceptions(
    *,
    configuration: type[Exception] | None = None,
    validation: type[Exception] | None = None,
    infrastructure: type[Exception] | None = None,
) -> None:
    """Make every error secure_redis raises also an instance of the application's own classes.

    Call it once at start-up, before the first cache is built::

        from app.core import exceptions as app_exceptions
        secure_redis.use_application_exceptions(
            configuration=app_exceptions.ConfigurationError,
            validation=app_exceptions.ValidationError,
            infrastructure=app_exceptions.InfrastructureError,
        )

    A ``secure_redis.ConfigurationError`` is then raised as a class deriving from both
    ``secure_redis.ConfigurationError`` and ``app_exceptions.ConfigurationError``: either
    ``except`` clause catches it, and ``.message``, ``.context`` and ``str()`` are ours. Each
    class must be an ``Exception`` subclass whose ``__init__`` accepts ``(message)`` or
    ``(message, context)``; anything else raises ``ConfigurationError`` here, naming it. A call
    replaces every earlier registration; a kind left out (or ``None``) goes back to raising
    our own class, so ``use_application_exceptions()`` undoes it all.
    """
    chosen = {
        ConfigurationError: ("configuration", configuration),
        ValidationError: ("validation", validation),
        InfrastructureError: ("infrastructure", infrastructure),
    }
    bridges: dict[type[BaseException], type[BaseException]] = {}
    for ours, (argument, theirs) in chosen.items():
        if theirs is None:
            continue
        if not (isinstance(theirs, type) and issubclass(theirs, Exception)):
            raise ConfigurationError(
                f"use_application_exceptions({argument}=...) needs an Exception subclass",
                {"parameter": argument, "type": type(theirs).__name__},
            )
        if issubclass(theirs, SecureRedisError):
            raise ConfigurationError(
                f"use_application_exceptions({argument}=...) got a secure_redis class; pass the application's own",
                {"parameter": argument, "class": theirs.__qualname__},
            )
        try:
            bridge = type(ours.__name__, (ours, theirs), {"__module__": __name__, "__doc__": ours.__doc__})
            probe = bridge("probe", {"check": True})
        except TypeError as err:
            raise ConfigurationError(
                f"use_application_exceptions({argument}=...): {theirs.__qualname__} cannot be combined with "
                f"secure_redis.{ours.__name__} ({err}); its __init__ must accept (message, context=None)",
                {"parameter": argument, "class": theirs.__qualname__},
            ) from None
        if getattr(probe, "message", None) != "probe" or getattr(probe, "context", None) != {"check": True}:
            raise ConfigurationError(
                f"use_application_exceptions({argument}=...): {theirs.__qualname__} overwrites .message or "
                ".context after they are set",
                {"parameter": argument, "class": theirs.__qualname__},
            )
        bridge.__qualname__ = f"{ours.__name__}[{theirs.__module__}.{theirs.__qualname__}]"
        bridges[ours] = bridge
    _BRIDGES.clear()
    _BRIDGES.update(bridges)


__all__ = [
    "ApplicationError",
    "ConfigurationError",
    "ErrorCode",
    "InfrastructureError",
    "SecureRedisError",
    "ValidationError",
    "use_application_exceptions",
]
