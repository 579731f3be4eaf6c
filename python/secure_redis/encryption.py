"""Fernet helpers for callers who encrypt outside the cache."""

from __future__ import annotations

from ._native import EncryptedCacheLayer, generate_encryption_key
from . import _native
from .exceptions import ConfigurationError, ErrorCode


def create_encryption_layer_from_env() -> EncryptedCacheLayer:
    """An EncryptedCacheLayer for REDIS_ENCRYPTION_KEY. Raises if it is missing (no plaintext mode)."""
    key = _native.env_value("REDIS_ENCRYPTION_KEY")
    if key is None:
        raise ConfigurationError(
            "REDIS_ENCRYPTION_KEY is not set: cached values must be encrypted. Generate a key with "
            "secure_redis.generate_encryption_key() and set it in the environment.",
            {"error_type": ErrorCode.INVALID_ENCRYPTION_KEY.value},
        )
    return EncryptedCacheLayer(key)


__all__ = ["EncryptedCacheLayer", "create_encryption_layer_from_env", "generate_encryption_key"]
