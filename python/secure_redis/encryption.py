"""Fernet helpers for callers who encrypt outside the cache."""

from __future__ import annotations

import os

from ._native import EncryptedCacheLayer, generate_encryption_key
from .exceptions import ConfigurationError


def create_encryption_layer_from_env() -> EncryptedCacheLayer:
    """An EncryptedCacheLayer for REDIS_ENCRYPTION_KEY. Raises if it is missing (no plaintext mode)."""
    key = os.environ.get("REDIS_ENCRYPTION_KEY", "")
    if not key.strip():
        raise ConfigurationError(
            "REDIS_ENCRYPTION_KEY is not set: cached values must be encrypted. Generate a key with "
            "secure_redis.generate_encryption_key() and set it in the environment.",
            {"error_type": "invalid_encryption_key"},
        )
    return EncryptedCacheLayer(key)


__all__ = ["EncryptedCacheLayer", "create_encryption_layer_from_env", "generate_encryption_key"]
