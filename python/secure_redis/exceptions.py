"""The exceptions secure_redis raises.

Each carries ``.message`` (what to change) and ``.context`` (a dict, never holding secrets);
``str(e)`` is ``"message (Context: {...})"`` when there is context, as in the layer we replace.
"""

from __future__ import annotations

import enum
from typing import Any

from . import _native


ErrorCode = enum.Enum(  # type: ignore[misc]  # built from the Rust list, the one source
    "ErrorCode", {code.upper(): code for code in _native.ERROR_CODES}, type=str, module=__name__
)
ErrorCode.__doc__ = """What went wrong, as ``error.context["error_type"]`` holds it.

A ``str`` enum over the codes of the Rust core (``crates/core/src/error/code.rs``, listed with
their meanings in docs/architecture.md): ``ErrorCode.AUTHENTICATION_FAILED == "authentication_failed"``.
``ErrorCode.X.meaning`` says when the code is used."""
for _code in ErrorCode:
    _code.meaning = _native.ERROR_CODES[_code.value]  # type: ignore[attr-defined]


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


class ApplicationError(_ContextMixin, SecureRedisError):
    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self._init_context(message, context)


class ValidationError(ApplicationError):
    """A caller passed a value the API does not accept (HTTP 400 in the backend)."""


class ConfigurationError(ApplicationError):
    """The configuration cannot work or would be insecure; the message says what to change."""


class InfrastructureError(_ContextMixin, SecureRedisError):
    """The outside world failed. Not a subclass of ApplicationError, as in the replaced layer."""

    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self._init_context(message, context)


__all__ = [
    "ApplicationError",
    "ConfigurationError",
    "ErrorCode",
    "InfrastructureError",
    "SecureRedisError",
    "ValidationError",
]
