"""Throwaway TLS Redis servers for tests and local demos: the public face of the harness.

This module only re-exports; the code lives in one module per concern:

- ``pki``: ``make_test_pki(folder)`` writes a CA, server and client certificates (plus
  deliberately broken ones: expired, wrong host name, signed by an unknown CA) and returns
  them as a ``TestPKI``; ``issue_certificate`` adds one more leaf.
- ``server``: ``RedisServer`` runs the system ``redis-server`` TLS-only with a password on a
  free loopback port and stops it afterwards; ``free_port``, ``random_password`` and the
  helpers the other two share.
- ``cluster``: ``RedisCluster``, a TLS-only Redis Cluster with replicas.
- ``sentinel``: ``RedisSentinelSet``, a primary, a replica and three sentinels, all TLS.
- ``netns``: ``NetworkNamespace``, a TLS server alone in a network namespace behind a veth
  pair, for partitions made with iptables (root only; ``namespaces_available()`` says why not).

Needs the ``cryptography`` package for certificates (``pip install secure_redis[testing]``)
and a ``redis-server`` built with TLS (Debian's is).
"""

from __future__ import annotations

from .cluster import RedisCluster
from .cluster import _cluster_port as _cluster_port
from .pki import TestPKI, issue_certificate, make_test_pki
from .netns import NetworkNamespace, SocketView, namespaces_available
from .sentinel import RedisSentinelSet
from .server import RedisServer, free_port, random_password
from .server import _StartStop as _StartStop
from .server import _tls_cli as _tls_cli
from .server import _wait as _wait

__all__ = [
    "NetworkNamespace",
    "RedisCluster",
    "RedisSentinelSet",
    "RedisServer",
    "SocketView",
    "TestPKI",
    "free_port",
    "issue_certificate",
    "make_test_pki",
    "namespaces_available",
    "random_password",
]
