"""The cache contract every secure_redis cache fulfils (and test fakes may implement).

No ``from __future__ import annotations`` here: the annotations are real types, as in the
replaced layer, whose tests read them with ``inspect.signature``.
"""

from abc import ABC, abstractmethod
from typing import Any

from .aside import CacheAside


class CacheInterface(CacheAside, ABC):
    """The four operations every cache offers: ``get`` (the value or None), ``set`` (with an
    optional TTL in seconds), ``delete`` and ``exists``. Code written against it works with
    ``GenericRedisCache``, ``AIResponseCache``, ``InMemoryCache`` and ``CacheManager`` alike.
    Every implementation also gets cache-aside from ``CacheAside``: ``get_or_set`` with
    single-flight, early refresh and stale-if-error, over its ``get`` and ``set``."""

    @abstractmethod
    async def get(self, key: str) -> Any | None: ...

    @abstractmethod
    async def set(self, key: str, value: Any, ttl: int | None = None) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> Any: ...

    @abstractmethod
    async def exists(self, key: str) -> bool: ...
