"""Argument checks the public classes share (private: not part of the API).

``_is_int`` is true for an ``int`` that is not a ``bool``; ``_require_int`` raises
``ConfigurationError`` naming the parameter otherwise. Used by ``generic``, ``ai`` and
``memory``.
"""

from __future__ import annotations

from typing import Any

from .exceptions import ConfigurationError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_int(name: str, value: Any) -> None:
    if not _is_int(value):
        raise ConfigurationError(f"{name} must be an integer", {name: value})
