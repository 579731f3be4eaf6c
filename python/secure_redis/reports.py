"""The shapes of the documents a cache reports about itself, for type checkers.

Each TypedDict mirrors a serializable struct of the Rust core (``crates/core/src/cache/report.rs``
and ``cache/memory.rs``), which builds the dict; ``tests/test_reports.py`` checks live documents
against these declarations, key for key.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class _NodeStatusBase(TypedDict):
    address: str
    role: str


class NodeStatus(_NodeStatusBase, total=False):
    """One node the connection reached; the TLS keys are present when it speaks TLS."""

    tls_version: str
    server_certificate_subject: str | None
    server_certificate_days_until_expiry: int | None


class _RedisStatsBase(TypedDict):
    status: Literal["connected", "unavailable"]
    url: str
    namespace: str
    tls: bool
    keys: int | None
    reconnects: int
    topology: Literal["standalone", "sentinel", "cluster"]
    nodes: list[NodeStatus]
    consecutive_failures: int
    last_error: str | None


class RedisStats(_RedisStatsBase, total=False):
    """The server keys are present in ``AIResponseCache`` statistics (INFO memory and clients;
    None when the ACL user may not run INFO or Redis is unreachable)."""

    memory_used: str | None
    memory_used_bytes: int | None
    connected_clients: int | None


class L1Stats(TypedDict):
    enabled: bool
    memory_cache_entries: int
    memory_cache_size_limit: int
    memory_cache_utilization: str
    coherent: bool
    invalidations: int
    coherence_flushes: int


class RejectionCounts(TypedDict):
    """Entries read from Redis and refused (each a miss), by why they were refused."""

    not_ours: int  # not a token of our keys: plaintext, pickle, garbage, tampered, another keyring's
    foreign_key: int  # a genuine token copied from another key
    malformed: int  # a genuine token whose envelope is malformed
    too_large: int  # a genuine token that decompresses past the 32 MiB value cap
    expired: int  # a genuine token past the expiry it was written with: a replay
    oversized: int  # a stored value longer than any entry the cache writes; never read whole
    malformed_json: int  # a genuine token whose JSON does not parse


class PerformanceStats(TypedDict):
    gets: int
    hits: int
    l1_hits: int
    redis_hits: int
    misses: int
    hit_ratio: float
    sets: int
    deletes: int
    redis_failures: int
    l1_only_writes: int
    rejected_entries: int
    rejected_by_kind: RejectionCounts
    # Warnings about rejected entries held back: one is logged per key and kind a minute at
    # most, and at most 4096 distinct keys a minute are logged one by one.
    tamper_warnings_suppressed: int


class EncryptionStats(TypedDict):
    enabled: bool
    algorithm: str
    plaintext_bytes: int
    stored_bytes: int
    size_overhead_ratio: float
    compressed_writes: int
    encrypt_operations: int
    decrypt_operations: int
    avg_encrypt_ms: float
    avg_decrypt_ms: float


class CacheStats(TypedDict):
    """``GenericRedisCache.get_cache_stats()`` (``AIResponseCache`` adds its own sections)."""

    redis: RedisStats
    memory: L1Stats
    performance: PerformanceStats
    encryption: EncryptionStats


class SecurityConfiguration(TypedDict):
    has_authentication: bool
    tls_enabled: bool
    acl_configured: bool
    certificate_verification: bool
    private_ca: bool
    mutual_tls: bool
    min_tls_version: str
    encryption: str
    encryption_keys: int
    connection_timeout: float
    socket_timeout: float
    max_retries: int


class _ConnectionStatusBase(TypedDict):
    redis_url: str
    connected: bool
    reconnects: int
    last_error: str | None
    topology: Literal["standalone", "sentinel", "cluster"]
    nodes: list[NodeStatus]


class ConnectionStatus(_ConnectionStatusBase, total=False):
    """The TLS keys are present while a TLS connection is live."""

    tls_version: str
    cipher_suite: str
    server_certificate_subject: str | None
    server_certificate_days_until_expiry: int | None


class SecurityStatus(TypedDict):
    """``get_security_status()``: configuration and connection facts, without secrets."""

    security_level: Literal["HIGH", "LOW"]
    configuration: SecurityConfiguration
    connection: ConnectionStatus


class MemoryCacheStats(TypedDict):
    """``MemoryCacheCore.stats()``, which ``InMemoryCache.get_stats()`` builds on."""

    total_entries: int
    active_entries: int
    expired_entries: int
    max_size: int
    default_ttl: int
    hits: int
    misses: int
    evictions: int
    memory_usage_bytes: int


__all__ = [
    "CacheStats",
    "ConnectionStatus",
    "EncryptionStats",
    "L1Stats",
    "MemoryCacheStats",
    "NodeStatus",
    "PerformanceStats",
    "RedisStats",
    "RejectionCounts",
    "SecurityConfiguration",
    "SecurityStatus",
]
