"""``RedisCluster``: a TLS-only Redis Cluster of ``RedisServer`` nodes on loopback.

Owns the cluster-node port choice (``_cluster_port``: a client port whose bus port, +10000,
is free too), the nodes' cluster config, ``redis-cli --cluster create``, the health and
failover waits, and growing a running cluster (``add_node``, ``move_empty_slot``).
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from .server import RedisServer, _StartStop, _tls_cli, _wait

__all__ = ["RedisCluster"]


def _cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free as well: `redis-cli --cluster
    create` introduces nodes by their client port, and the others then dial port + 10000."""
    for _ in range(200):
        port = secrets.randbelow(20000) + 20000
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster(_StartStop):
    """A TLS-only Redis Cluster on loopback: ``primaries`` primaries, each with ``replicas``
    replicas. Cluster bus and replication run over TLS too, every node requires the password,
    and a primary that dies is replaced by its replica within a few seconds
    (``node_timeout_ms``, 3000 ms unless a test asks for less)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        password: str,
        cert: Path,
        key: Path,
        ca: Path,
        client_cert: Path,
        client_key: Path,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 3000,
    ) -> None:
        self.folder = Path(folder)
        self.password = password
        self.replicas = replicas
        # How long a primary may be silent before its replica takes over: short for failover
        # tests, longer elsewhere so a loaded machine does not fail nodes over by accident.
        self.node_timeout_ms = node_timeout_ms
        # The cluster bus always demands a client certificate (clientAuth) from the dialling
        # node, whatever tls-auth-clients says for ordinary clients.
        self.client_cert, self.client_key = client_cert, client_key
        self._server_tls = (cert, key, ca)
        self.nodes = [self._new_node(index) for index in range(primaries * (1 + replicas))]

    def _new_node(self, index: int, tls_protocols: str = "TLSv1.2 TLSv1.3") -> RedisServer:
        cert, key, ca = self._server_tls
        return RedisServer(
            self.folder / f"node-{index}",
            password=self.password,
            cert=cert,
            key=key,
            ca=ca,
            tls_protocols=tls_protocols,
            config_hook=self._node_config,
            pick_port=_cluster_port,
        )

    def _node_config(self, node: RedisServer) -> list[str]:
        return [
            "cluster-enabled yes",
            f"cluster-config-file {node.folder / 'nodes.conf'}",
            f"cluster-node-timeout {self.node_timeout_ms}",
            "cluster-replica-validity-factor 0",
            "tls-cluster yes",
            "tls-replication yes",
            f"tls-client-cert-file {self.client_cert}",
            f"tls-client-key-file {self.client_key}",
            f"masterauth {self.password}",
        ]

    def start(self, timeout: float = 60.0) -> "RedisCluster":
        try:
            self._start(timeout)
        except BaseException:
            self.stop()  # never leave half a cluster running
            raise
        return self

    def _start(self, timeout: float) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"{node.host}:{node.port}" for node in self.nodes]
        _tls_cli(
            self.nodes[0],
            self.password,
            "--cluster",
            "create",
            *addresses,
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
            timeout=timeout,
        )
        _wait(self._healthy, timeout, "the cluster to be ok on every node with replicas in sync")

    def info(self, node: RedisServer, section: str = "") -> dict[str, str]:
        text = _tls_cli(node, self.password, "INFO", section) if section else _tls_cli(node, self.password, "INFO")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))

    def _healthy(self) -> bool:
        for node in self.alive():
            state = _tls_cli(node, self.password, "CLUSTER", "INFO")
            if "cluster_state:ok" not in state:
                return False
        replicas = [n for n in self.alive() if self.info(n, "replication").get("role") == "slave"]
        if len(replicas) < len(self.primaries()) * self.replicas:
            return False
        return all(self.info(n, "replication").get("master_link_status") == "up" for n in replicas)

    def alive(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None and node.process.poll() is None]

    def primaries(self) -> list[RedisServer]:
        return [node for node in self.alive() if self.info(node, "replication").get("role") == "master"]

    def replica_of(self, primary: RedisServer) -> RedisServer:
        for node in self.alive():
            info = self.info(node, "replication")
            if info.get("role") == "slave" and info.get("master_port") == str(primary.port):
                return node
        raise RuntimeError(f"no replica of {primary.port}")

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        """After a primary died: its replica has taken over and every slot is served."""

        def recovered() -> bool:
            return all(
                "cluster_state:ok" in _tls_cli(node, self.password, "CLUSTER", "INFO") for node in self.alive()
            )

        _wait(recovered, timeout, "the cluster to fail over")

    def node_id(self, node: RedisServer) -> str:
        """`node`'s cluster node id (CLUSTER MYID)."""
        return _tls_cli(node, self.password, "CLUSTER", "MYID").strip()

    def slot_of(self, name: str) -> int:
        """The hash slot of the key `name`."""
        return int(_tls_cli(self.alive()[0], self.password, "CLUSTER", "KEYSLOT", name))

    def _owner_id(self, node: RedisServer, slot: int) -> str | None:
        """Which node `node` believes serves `slot` (CLUSTER NODES: id, address, flags, master,
        ping, pong, epoch, link state, then the slot ranges)."""
        for line in _tls_cli(node, self.password, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            for served in fields[8:]:
                if served.startswith("["):  # a slot being migrated or imported
                    continue
                first, _, last = served.partition("-")
                if int(first) <= slot <= int(last or first):
                    return fields[0]
        return None

    def add_node(self, *, tls_protocols: str = "TLSv1.2 TLSv1.3", timeout: float = 30.0) -> RedisServer:
        """A new, empty primary joined to the running cluster (it serves no slot until
        `move_empty_slot` gives it one), accepting the TLS versions of `tls_protocols`."""
        node = self._new_node(len(self.nodes), tls_protocols)
        self.nodes.append(node)
        node.start()
        _tls_cli(self.alive()[0], self.password, "CLUSTER", "MEET", node.host, str(node.port))
        ids = [self.node_id(other) for other in self.alive()]

        def everyone_knows_everyone() -> bool:
            # Every node, the new one included, knows every other (handshakes done), and the new
            # one has learnt the slot map and the epochs, so the slot it is given next is its
            # own with an epoch above the others' (see `move_empty_slot`).
            for other in self.alive():
                nodes = _tls_cli(other, self.password, "CLUSTER", "NODES")
                if "handshake" in nodes or any(node_id not in nodes for node_id in ids):
                    return False
            return "cluster_state:ok" in _tls_cli(node, self.password, "CLUSTER", "INFO")

        _wait(everyone_knows_everyone, timeout, "every node to know the new one")
        return node

    def move_empty_slot(self, slot: int, to: RedisServer, timeout: float = 30.0) -> None:
        """Hands `slot`, which must hold no key, to `to`, the way resharding does (IMPORTING and
        MIGRATING, then NODE on every node), and waits until every node agrees."""
        target = self.node_id(to)
        source_id = self._owner_id(self.alive()[0], slot)
        if source_id is None:
            raise RuntimeError(f"no node serves slot {slot}")
        source = next(node for node in self.alive() if self.node_id(node) == source_id)
        if source_id == target:
            return
        keys = int(_tls_cli(source, self.password, "CLUSTER", "COUNTKEYSINSLOT", str(slot)))
        if keys:
            raise RuntimeError(f"slot {slot} holds {keys} keys; move_empty_slot moves empty slots only")
        _tls_cli(to, self.password, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        _tls_cli(source, self.password, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target)
        for node in [to, source, *(n for n in self.alive() if n not in (to, source))]:
            if self.info(node, "replication").get("role") == "master":
                _tls_cli(node, self.password, "CLUSTER", "SETSLOT", str(slot), "NODE", target)
        _wait(
            lambda: all(self._owner_id(node, slot) == target for node in self.alive()),
            timeout,
            f"every node to see slot {slot} served by the new owner",
        )

    @property
    def seed_url(self) -> str:
        return self.nodes[0].url

    @property
    def node_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
