"""Throwaway TLS Redis servers for tests and local demos.

``make_test_pki(folder)`` writes a CA, server and client certificates (plus deliberately
broken ones: expired, wrong host name, signed by an unknown CA); ``RedisServer`` runs the
system ``redis-server`` TLS-only with a password on a free loopback port and stops it
afterwards. Needs the ``cryptography`` package (``pip install secure_redis[testing]``) and a
``redis-server`` built with TLS (Debian's is).
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

__all__ = ["TestPKI", "RedisServer", "issue_certificate", "make_test_pki", "free_port", "random_password"]


def random_password(length: int = 40) -> str:
    return secrets.token_urlsafe(length)[:length]


def free_port() -> int:
    """A loopback port that was free a moment ago (the server start retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class TestPKI:
    folder: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    expired_server_cert: Path
    expired_server_key: Path
    wrong_host_server_cert: Path
    wrong_host_server_key: Path
    other_ca_cert: Path
    other_ca_key: Path
    other_ca_server_cert: Path
    other_ca_server_key: Path

    __test__ = False  # not a pytest test class


def make_test_pki(folder: str | os.PathLike[str], hostnames: Iterable[str] = ("localhost",)) -> TestPKI:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc)

    def new_key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write_key(key: ec.EllipticCurvePrivateKey, filename: str) -> Path:
        path = out / filename
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        return path

    def write_cert(cert: x509.Certificate, filename: str) -> Path:
        path = out / filename
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        path.chmod(0o644)
        return path

    def make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def make_leaf(
        ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        common_name: str,
        sans: Iterable[str],
        client: bool,
        not_before: _dt.datetime,
        not_after: _dt.datetime,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = new_key()
        alt_names: list[x509.GeneralName] = []
        for san in sans:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                alt_names.append(x509.DNSName(san))
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca[0].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(ca[1], hashes.SHA256()), key

    valid_from, valid_to = now - _dt.timedelta(hours=1), now + _dt.timedelta(days=90)
    server_names = [*hostnames, "127.0.0.1", "::1"]

    ca = make_ca("secure_redis test CA")
    other_ca = make_ca("an unknown CA")
    server = make_leaf(ca, "redis", server_names, False, valid_from, valid_to)
    client = make_leaf(ca, "secure-redis-client", [], True, valid_from, valid_to)
    expired = make_leaf(
        ca, "redis", server_names, False, now - _dt.timedelta(days=30), now - _dt.timedelta(days=1)
    )
    wrong_host = make_leaf(ca, "elsewhere", ["elsewhere.example"], False, valid_from, valid_to)
    foreign = make_leaf(other_ca, "redis", server_names, False, valid_from, valid_to)

    return TestPKI(
        folder=out,
        ca_cert=write_cert(ca[0], "ca.crt"),
        ca_key=write_key(ca[1], "ca.key"),
        server_cert=write_cert(server[0], "server.crt"),
        server_key=write_key(server[1], "server.key"),
        client_cert=write_cert(client[0], "client.crt"),
        client_key=write_key(client[1], "client.key"),
        expired_server_cert=write_cert(expired[0], "expired-server.crt"),
        expired_server_key=write_key(expired[1], "expired-server.key"),
        wrong_host_server_cert=write_cert(wrong_host[0], "wrong-host-server.crt"),
        wrong_host_server_key=write_key(wrong_host[1], "wrong-host-server.key"),
        other_ca_cert=write_cert(other_ca[0], "other-ca.crt"),
        other_ca_key=write_key(other_ca[1], "other-ca.key"),
        other_ca_server_cert=write_cert(foreign[0], "other-ca-server.crt"),
        other_ca_server_key=write_key(foreign[1], "other-ca-server.key"),
    )


def issue_certificate(
    pki: TestPKI,
    name: str,
    *,
    client: bool = True,
    sans: Iterable[str] = (),
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
) -> tuple[Path, Path]:
    """Issues one more leaf from the test CA (or another CA given by its files), e.g. an
    expired or not-yet-valid client certificate. Returns (certificate, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = _dt.datetime.now(_dt.timezone.utc)
    issuer_cert = x509.load_pem_x509_certificate((ca_cert or pki.ca_cert).read_bytes())
    issuer_key = serialization.load_pem_private_key((ca_key or pki.ca_key).read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _dt.timedelta(hours=1))
        .not_valid_after(not_after or now + _dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path = pki.folder / f"{name}.crt"
    key_path = pki.folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


_Started = TypeVar("_Started", bound="_StartStop")


class _StartStop:
    """`with X(...) as x:` starts x (its `start()`) and stops it afterwards (`stop()`), whatever
    happens inside."""

    def __enter__(self: _Started) -> _Started:
        return self.start()  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.stop()  # type: ignore[attr-defined]


class RedisServer(_StartStop):
    """A ``redis-server`` child process on a free loopback port.

    TLS-only by default (``port 0``); ``tls=False`` makes a plaintext server, for tests of
    what the client refuses. The password goes into a config file readable only by us,
    never onto the command line.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        password: str,
        tls: bool = True,
        cert: Path | None = None,
        key: Path | None = None,
        ca: Path | None = None,
        tls_auth_clients: str = "no",
        tls_protocols: str = "TLSv1.2 TLSv1.3",
        acl_lines: Iterable[str] = (),
        extra_config: Iterable[str] = (),
        host: str = "127.0.0.1",
        config_hook: "Callable[[RedisServer], Iterable[str]] | None" = None,
        sentinel: bool = False,
        pick_port: Callable[[], int] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.tls = tls
        self.cert, self.key, self.ca = cert, key, ca
        self.tls_auth_clients = tls_auth_clients
        self.tls_protocols = tls_protocols
        self.acl_lines = list(acl_lines)
        self.extra_config = list(extra_config)
        # Lines that depend on the port chosen at start (cluster bus, announce-port...).
        self.config_hook = config_hook
        self.sentinel = sentinel
        self.pick_port = pick_port or free_port
        self.host = host
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary

    def _write_config(self) -> Path:
        lines = [
            f"bind {self.host}",
            "protected-mode yes",
            f"dir {self.folder}",
            'save ""',
            "appendonly no",
            f"logfile {self.folder / 'redis.log'}",
            f"requirepass {self.password}",
        ]
        if self.tls:
            assert self.cert and self.key and self.ca, "TLS needs cert, key and ca"
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.cert}",
                f"tls-key-file {self.key}",
                f"tls-ca-cert-file {self.ca}",
                f"tls-auth-clients {self.tls_auth_clients}",
                f'tls-protocols "{self.tls_protocols}"',
            ]
        else:
            lines.append(f"port {self.port}")
        if self.acl_lines:
            acl = self.folder / "users.acl"
            acl.write_text("\n".join(self.acl_lines) + "\n")
            acl.chmod(0o600)
            lines.append(f"aclfile {acl}")
        lines += self.extra_config
        if self.config_hook is not None:
            lines += list(self.config_hook(self))
        path = self.folder / ("sentinel.conf" if self.sentinel else "redis.conf")
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/0"

    def url_for(self, host: str) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/0"

    def _launch(self, timeout: float) -> str | None:
        """Starts the process on ``self.port``; None when it listens, else why it did not."""
        config = self._write_config()
        self.process = subprocess.Popen(
            [self.binary, str(config), *(["--sentinel"] if self.sentinel else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return self._log_tail()
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return None
            except OSError:
                time.sleep(0.02)
        self.stop()
        return "timed out waiting for the port"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        last_error = "did not start"
        for _ in range(5):  # a port taken between free_port() and bind() is retried
            self.port = self.pick_port()
            failure = self._launch(timeout)
            if failure is None:
                return self
            last_error = failure
        self.port = 0
        raise RuntimeError(f"redis-server failed to start: {last_error}")

    def restart(self, timeout: float = 10.0) -> "RedisServer":
        """Starts again on the same port (after stop() or kill())."""
        self.stop()
        failure = self._launch(timeout)
        if failure is not None:
            raise RuntimeError(f"redis-server failed to restart: {failure}")
        return self

    def _log_tail(self) -> str:
        log = self.folder / "redis.log"
        if log.exists():
            return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        return "no log"

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing connections cleanly."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def _tls_cli(server: RedisServer, password: str, *args: str, timeout: float = 30.0) -> str:
    """`redis-cli` over TLS against `server`; the password travels in REDISCLI_AUTH, never argv."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
    command = [cli, "-h", server.host, "-p", str(server.port)]
    if server.tls:
        command += ["--tls", "--cacert", str(server.ca)]
    result = subprocess.run(
        [*command, *args],
        env={**os.environ, "REDISCLI_AUTH": password},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"redis-cli {args[0] if args else ''} failed: {result.stderr.strip()[:300]}")
    return result.stdout


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


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
        self.nodes = [
            RedisServer(
                self.folder / f"node-{index}",
                password=password,
                cert=cert,
                key=key,
                ca=ca,
                config_hook=self._node_config,
                pick_port=_cluster_port,
            )
            for index in range(primaries * (1 + replicas))
        ]

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

    @property
    def seed_url(self) -> str:
        return self.nodes[0].url

    @property
    def node_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


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
        tls = dict(cert=cert, key=key, ca=ca)
        self.primary = RedisServer(
            self.folder / "primary", password=password, extra_config=[f"masterauth {password}", "tls-replication yes"], **tls
        )
        self.replica = RedisServer(
            self.folder / "replica",
            password=password,
            extra_config=[f"masterauth {password}", "tls-replication yes"],
            config_hook=lambda node: [f"replicaof {self.primary.host} {self.primary.port}"],
            **tls,
        )
        self.sentinels = [
            RedisServer(
                self.folder / f"sentinel-{index}",
                password=sentinel_password,
                sentinel=True,
                config_hook=self._sentinel_config,
                **tls,
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
