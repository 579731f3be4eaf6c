"""`.env` files: read them, write a commented secure one per environment, check an existing one.

The functions behind `secure-redis generate-env` and `scripts/generate-secure-env.py`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import _native
from ._private_file import write_private_file

ENVIRONMENTS = ("development", "staging", "production")
APP_USER = "secure-redis-app"


@dataclass(frozen=True)
class Policy:
    password_length: int
    min_tls_version: str
    description: str


POLICIES = {
    "development": Policy(32, "1.2", "local development: TLS and AUTH on, a private CA"),
    "staging": Policy(32, "1.2", "staging: production-like, TLS 1.2+"),
    "production": Policy(48, "1.3", "production: TLS 1.3 only, mutual TLS, long passwords"),
}


def parse_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored; optional `export ` and quotes."""
    path = Path(path)
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


def render_secure_env(
    environment: str,
    *,
    redis_url: str = "rediss://localhost:6380/0",
    certs_dir: str | os.PathLike[str] = "certs",
    password: str | None = None,
    encryption_key: str | None = None,
    acl_username: str = APP_USER,
) -> str:
    if environment not in POLICIES:
        raise ValueError(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    policy = POLICIES[environment]
    certs = Path(certs_dir).absolute()
    password = password or _native.generate_secure_password(policy.password_length)
    encryption_key = encryption_key or _native.generate_encryption_key()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""# secure_redis configuration for {environment} ({policy.description}).
# Generated {stamp} by `secure-redis generate-env`. Keep this file private (mode 600) and out of git.
# Check it any time with: secure-redis check --env-file <this file> --connect

# Which rules apply (development, staging or production).
ENVIRONMENT={environment}

# The server's TLS port; rediss:// is required.
REDIS_URL={redis_url}

# AUTH: a least-privilege ACL user and its password ({policy.password_length} random characters).
REDIS_ACL_USERNAME={acl_username}
REDIS_PASSWORD={password}

# Fernet key for the values. To rotate: secure-redis generate-key --rotate, then deploy.
REDIS_ENCRYPTION_KEY={encryption_key}

# The CA that signed the server certificate, and this client's certificate for mutual TLS.
REDIS_TLS_CA_PATH={certs / "ca.crt"}
REDIS_TLS_CERT_PATH={certs / "client.crt"}
REDIS_TLS_KEY_PATH={certs / "client.key"}
REDIS_TLS_MIN_VERSION={policy.min_tls_version}
"""


def backup(path: Path) -> Path | None:
    """Moves an existing file aside as `<name>.backup.YYYYmmdd_HHMMSS`; returns where it went.

    A symbolic link at `path` is moved as the link itself: its target is neither read nor
    chmod-ed (it is not ours)."""
    if not os.path.lexists(path):
        return None
    stamp = _dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    target = path.with_name(f"{path.name}.backup.{stamp}")
    n = 1
    while os.path.lexists(target):
        target = path.with_name(f"{path.name}.backup.{stamp}_{n}")
        n += 1
    # Same directory, so a rename: it moves a link as a link (shutil.move could copy).
    os.rename(path, target)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno != errno.ELOOP:  # ELOOP: a link, which carries no secret of ours
            raise
    else:
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    return target


def write_secure_env(path: str | os.PathLike[str], environment: str, *, force: bool = False, **options: str) -> Path | None:
    """Writes the file (mode 600, see `write_private_file`). Anything already at `path`, a
    symbolic link included, is kept unless `force`; then it is backed up (a link as a link).

    Returns the backup's path, if one was made."""
    path = Path(path)
    refused = f"{path} exists; pass --force to replace it (the old file is backed up)"
    if os.path.lexists(path) and not force:
        raise FileExistsError(refused)
    text = render_secure_env(environment, **options)
    previous = backup(path) if force else None
    try:
        # Without --force, something that appeared since the check is not overwritten either.
        write_private_file(path, text, replace=force)
    except FileExistsError:
        raise FileExistsError(refused) from None
    return previous


@contextlib.contextmanager
def applied(values: dict[str, str]) -> Iterator[None]:
    """Temporarily sets these variables (and clears the REDIS_* ones the file lacks)."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith("REDIS_") or n == "ENVIRONMENT"]:
            del os.environ[name]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_env_file(path: str | os.PathLike[str], test_connectivity: bool = False) -> dict:
    """The validator's report on an env file, plus upgrade recommendations."""
    path = Path(path)
    values = parse_env_file(path)
    with applied(values):
        report = _native.validate_environment(None, None, test_connectivity)
    upgrades = list(report["recommendations"])
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        upgrades.insert(0, f"chmod 600 {path} (it is {mode:o}: readable by others)")
    environment = values.get("ENVIRONMENT", "development")
    if environment != "production":
        upgrades.append(
            "For production: secure-redis generate-env --environment production --output .env.production "
            "(48-character password, TLS 1.3, mutual TLS)"
        )
    report["upgrade_recommendations"] = upgrades
    return report
