"""Throwaway TLS Redis servers for tests and local demos.

This package only re-exports; the code lives in its modules (being split out of ``server``).
"""

from __future__ import annotations

from .server import (
    RedisCluster,
    RedisSentinelSet,
    RedisServer,
    TestPKI,
    _cluster_port,
    _StartStop,
    _tls_cli,
    _wait,
    free_port,
    issue_certificate,
    make_test_pki,
    random_password,
)

__all__ = [
    "RedisCluster",
    "RedisSentinelSet",
    "RedisServer",
    "TestPKI",
    "free_port",
    "issue_certificate",
    "make_test_pki",
    "random_password",
]
