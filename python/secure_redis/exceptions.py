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


# Our class -> the subclass of it and of the application's class that is raised instead.
_BRIDGES: dict[type[BaseException], type[BaseException]] = {}


class _Bridged:
    """Raises the application's bridge class in place of ours once one is registered."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        bridge = _BRIDGES.get(cls)
        target = bridge if bridge is not None else cls
        # Exception.__new__ takes the same positional arguments; __init__ runs next because
        # the bridge is a subclass of ``cls``.
        return Exception.__new__(target, *args)  # type: ignore[arg-type]


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
