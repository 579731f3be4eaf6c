"""secure_redis: a Redis cache for asyncio backends that cannot be made insecure.

Every connection is TLS with AUTH, every value is Fernet-encrypted, and configuration that
would break either fails at startup with an error that says what to fix.
"""

from __future__ import annotations

import atexit as _atexit
import os as _os

from . import _native
from ._native import EncryptedCacheLayer, SecurityConfig, generate_encryption_key, generate_secure_password
from .aside import XFETCH, CachedFunction, cached
from .base import CacheInterface
from .encryption import create_encryption_layer_from_env
from .exceptions import (
    ApplicationError,
    ConfigurationError,
    ErrorCode,
    InfrastructureError,
    SecureRedisError,
    ValidationError,
    use_application_exceptions,
)
from .ai import AIResponseCache
from .generic import GenericRedisCache
from .manager import CacheManager
from .memory import InMemoryCache
from .validation import (
    RedisSecurityValidator,
    SecurityValidationResult,
    detect_environment,
    password_strength,
    validate_redis_security,
)

__version__: str = _native.__version__

# Stop the Rust side from entering the interpreter once it starts shutting down.
_atexit.register(_native._shutdown)
# A forked child has none of the parent's threads: it starts its own runtime on first use.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_native._after_fork_in_child)

__all__ = [
    "cached",
    "CachedFunction",
    "XFETCH",
    "AIResponseCache",
    "ApplicationError",
    "CacheManager",
    "CacheInterface",
    "ConfigurationError",
    "EncryptedCacheLayer",
    "ErrorCode",
    "GenericRedisCache",
    "InMemoryCache",
    "RedisSecurityValidator",
    "SecurityValidationResult",
    "InfrastructureError",
    "SecureRedisError",
    "SecurityConfig",
    "ValidationError",
    "create_encryption_layer_from_env",
    "detect_environment",
    "generate_encryption_key",
    "generate_secure_password",
    "password_strength",
    "use_application_exceptions",
    "validate_redis_security",
]
