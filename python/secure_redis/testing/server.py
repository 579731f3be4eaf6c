"""One ``redis-server`` process, and what the cluster and sentinel harnesses share.

``RedisServer`` runs the system ``redis-server`` (built with TLS, as Debian's is) TLS-only
with a password on a free loopback port and stops it afterwards. Shared with ``cluster`` and
``sentinel``: the ``with``-statement base ``_StartStop``, ``free_port``, ``random_password``,
``_tls_cli`` (``redis-cli`` over TLS, the password never on argv) and ``_wait`` (polling).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

from .._private_file import write_private_file

__all__ = ["RedisServer", "free_port", "random_password"]


def random_password(length: int = 40) -> str:
    return secrets.token_urlsafe(length)[:length]


def free_port() -> int:
    """A loopback port that was free a moment ago (the server start retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_Started = TypeVar("_Started", bound="_StartStop")


class _StartStop:
    """`with X(...) as x:` starts x (its `start()`) and stops it afterwards (`stop()`), whatever
    happens inside."""

    if TYPE_CHECKING:  # every subclass defines both (with its own optional arguments)

        def start(self: _Started) -> _Started: ...

        def stop(self) -> None: ...

    def __enter__(self: _Started) -> _Started:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
        # 0700: redis-server's own CONFIG REWRITE (a sentinel rewrites its config at every
        # failover) writes the file 0644 minus the umask, requirepass and auth-pass included, so
        # the folder, which holds nothing but this server's files, is what keeps them private.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
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
            # ACL and config files hold passwords (or their hashes): 0600 from creation, and a
            # restart's rewrite replaces the file rather than writing into one redis may have
            # rewritten with other permissions.
            write_private_file(acl, "\n".join(self.acl_lines) + "\n")
            lines.append(f"aclfile {acl}")
        lines += self.extra_config
        if self.config_hook is not None:
            lines += list(self.config_hook(self))
        path = self.folder / ("sentinel.conf" if self.sentinel else "redis.conf")
        return write_private_file(path, "\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/0"

    def url_for(self, host: str) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/0"

    def _command(self, config: Path) -> list[str]:
        """The argv that starts the server. A subclass may wrap it (``netns`` runs it inside a
        network namespace); the password stays in the config file either way."""
        return [self.binary, str(config), *(["--sentinel"] if self.sentinel else [])]

    def _launch(self, timeout: float) -> str | None:
        """Starts the process on ``self.port``; None when it listens, else why it did not."""
        config = self._write_config()
        self.process = subprocess.Popen(
            self._command(config),
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


def _tls_cli(  # pyright: ignore[reportUnusedFunction]  # used by cluster.py, sentinel.py
    server: RedisServer, password: str, *args: str, timeout: float = 30.0
) -> str:
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


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:  # pyright: ignore[reportUnusedFunction]  # used by cluster.py, sentinel.py
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")
