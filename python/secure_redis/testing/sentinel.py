"""``RedisSentinelSet``: a TLS-only primary, its replica and three sentinels on loopback.

Owns the sentinels' config (their own password, TLS to the data nodes and to each other),
the waits until replica and sentinels agree, and the wait for a failover.
"""

from __future__ import annotations

import os
from pathlib import Path

from .server import RedisServer, _StartStop, _tls_cli, _wait

__all__ = ["RedisSentinelSet"]


class RedisSentinelSet(_StartStop):
    """A TLS-only primary, one replica and three sentinels (quorum 2) on loopback. The
    sentinels have a password of their own, talk TLS to the data nodes and to each other,
    and fail over a primary that has been unreachable for ``down_after_ms`` (3000 ms by default)."""

    MASTER_NAME = "securecache"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        password: str,
        sentinel_password: str,
        cert: Path,
        key: Path,
        ca: Path,
        sentinels: int = 3,
        down_after_ms: int = 3000,
    ) -> None:
        self.folder = Path(folder)
        self.password = password
        self.sentinel_password = sentinel_password
        self.down_after_ms = down_after_ms
        self.primary = RedisServer(
            self.folder / "primary",
            password=password,
            extra_config=[f"masterauth {password}", "tls-replication yes"],
            cert=cert,
            key=key,
            ca=ca,
        )
        self.replica = RedisServer(
            self.folder / "replica",
            password=password,
            extra_config=[f"masterauth {password}", "tls-replication yes"],
            config_hook=lambda node: [f"replicaof {self.primary.host} {self.primary.port}"],
            cert=cert,
            key=key,
            ca=ca,
        )
        self.sentinels = [
            RedisServer(
                self.folder / f"sentinel-{index}",
                password=sentinel_password,
                sentinel=True,
                config_hook=self._sentinel_config,
                cert=cert,
                key=key,
                ca=ca,
            )
            for index in range(sentinels)
        ]

    def _sentinel_config(self, sentinel: RedisServer) -> list[str]:
        name = self.MASTER_NAME
        return [
            "tls-replication yes",
            f"sentinel announce-ip {sentinel.host}",
            f"sentinel announce-port {sentinel.port}",
            f"sentinel monitor {name} {self.primary.host} {self.primary.port} 2",
            f"sentinel auth-pass {name} {self.password}",
            f"sentinel sentinel-pass {self.sentinel_password}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} 10000",
            f"sentinel parallel-syncs {name} 1",
        ]

    def start(self, timeout: float = 60.0) -> "RedisSentinelSet":
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self.primary.start()
        self.replica.start()
        _wait(
            lambda: "master_link_status:up" in _tls_cli(self.replica, self.password, "INFO", "replication"),
            timeout,
            "the replica to sync",
        )
        for sentinel in self.sentinels:
            sentinel.start()
        _wait(self._sentinels_agree, timeout, "the sentinels to find each other and the replica")

    def _sentinel_view(self, sentinel: RedisServer) -> dict[str, str]:
        fields = _tls_cli(sentinel, self.sentinel_password, "SENTINEL", "MASTER", self.MASTER_NAME).split("\n")
        return dict(zip(fields[0::2], fields[1::2]))

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            view = self._sentinel_view(sentinel)
            if int(view.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                return False
            if int(view.get("num-slaves", 0)) < 1:
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port as the sentinels see it now."""
        reply = _tls_cli(
            self.sentinels[0], self.sentinel_password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER_NAME
        ).split()
        return int(reply[1])

    def wait_for_failover(self, old_port: int, timeout: float = 45.0) -> None:
        def moved() -> bool:
            if self.primary_port() == old_port:
                return False
            new = self.replica if self.replica.port != old_port else self.primary
            return "role:master" in _tls_cli(new, self.password, "INFO", "replication")

        _wait(moved, timeout, "the sentinels to promote the replica")

    @property
    def sentinel_urls(self) -> list[str]:
        return [sentinel.url for sentinel in self.sentinels]

    def stop(self) -> None:
        for server in [*self.sentinels, self.replica, self.primary]:
            server.stop()
