"""The type of a password or key argument: str, bytes, or a wrapper that reveals one.

Only for annotations. The Rust binding (``crates/py/src/args.rs``, ``secret_arg``) accepts
any object with ``get_secret_value()`` returning str or bytes, as pydantic's ``SecretStr``
and ``SecretBytes`` do, without importing pydantic; this Protocol says the same to type
checkers, so a pydantic-settings configuration passes its secrets without unwrapping them.
"""

from __future__ import annotations

from typing import Protocol, Union, runtime_checkable


@runtime_checkable
class SecretLike(Protocol):
    """A wrapper that hides a secret until ``get_secret_value()`` is called (pydantic's
    ``SecretStr``/``SecretBytes``). secure_redis calls it once and copies the value straight
    into its own secret holder; the wrapper is not kept."""

    def get_secret_value(self) -> str | bytes: ...


# A password or key as every entry point takes it.
SecretArg = Union[str, bytes, SecretLike]

__all__ = ["SecretArg", "SecretLike"]
