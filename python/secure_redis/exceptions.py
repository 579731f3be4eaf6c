"""The exceptions secure_redis raises.

Each carries ``.message`` (what to change) and ``.context`` (a dict, never holding secrets);
``str(e)`` is ``"message (Context: {...})"`` when there is context, as in the layer we replace.
"""

from __future__ import annotations

from typing import Any


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
    "InfrastructureError",
    "SecureRedisError",
    "ValidationError",
]
