"""The throwaway TLS redis-server a bench runs against: a PKI, password and encryption key of its
own, made fresh for each run, and the SecurityConfig that reaches the server with them.

Invariants: the server is TLS-only and stopped when the ``with`` block ends, whatever happens
in it; ``spec()`` holds the password and key, so a bench hands it to a worker in the worker's
environment, not on its command line.
Nothing here imports ``secure_redis`` at module level: a bench that puts ``python/`` on
``sys.path`` itself does so before calling in, and a worker imports the package copy its own
PYTHONPATH names.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generator, Iterable, Mapping

if TYPE_CHECKING:
    from secure_redis import SecurityConfig
    from secure_redis.testing import RedisServer


@dataclass(frozen=True)
class TlsRedis:
    """A running TLS redis-server and the secrets a client needs for it."""

    server: RedisServer
    password: str
    encryption_key: str
    ca_cert: Path

    def config(self) -> SecurityConfig:
        """A SecurityConfig for this server, with the library's defaults for everything else."""
        import secure_redis as sr

        return sr.SecurityConfig(redis_auth=self.password, encryption_key=self.encryption_key,
                                 tls_ca_path=self.ca_cert)

    def spec(self) -> dict[str, str]:
        """What a worker process needs to connect, as JSON-ready text (see ``config_from_spec``)."""
        return {"password": self.password, "key": self.encryption_key, "ca": str(self.ca_cert),
                "url": self.server.url}


def config_from_spec(spec: Mapping[str, object]) -> SecurityConfig:
    """In a worker process: the SecurityConfig that ``TlsRedis.spec()`` describes."""
    import secure_redis as sr

    return sr.SecurityConfig(redis_auth=str(spec["password"]), encryption_key=str(spec["key"]),
                             tls_ca_path=str(spec["ca"]))


@contextlib.contextmanager
def tls_redis(workdir: Path, extra_config: Iterable[str] = ()) -> Generator[TlsRedis, None, None]:
    """Makes a PKI under ``workdir/pki`` and runs a TLS redis-server in ``workdir/tls``, with
    ``extra_config`` as more lines of its redis.conf.

    ``workdir`` stays the caller's: a bench that keeps other files there removes it itself.
    """
    import secure_redis as sr
    from secure_redis.testing import RedisServer, make_test_pki, random_password

    pki = make_test_pki(workdir / "pki")
    password = random_password(32)
    key = sr.generate_encryption_key()
    with RedisServer(workdir / "tls", password=password, cert=pki.server_cert, key=pki.server_key,
                     ca=pki.ca_cert, extra_config=extra_config) as server:
        yield TlsRedis(server, password, key, pki.ca_cert)
