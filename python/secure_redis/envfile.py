"""`.env` files: read them, write a commented secure one per environment, check an existing one.

The functions behind `secure-redis generate-env` and `scripts/generate-secure-env.py`.

Invariant: the files are read with python-dotenv's grammar (`parse_env_text` lists the
deliberate differences) and every value written goes through `quote_env_value`, so what we
write, `parse_env_file` and `dotenv.dotenv_values` all agree (tests/test_envfile.py).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

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


# `.env` syntax: python-dotenv's grammar (its `parser.py`, version 1.2), reimplemented so that
# secure_redis keeps no runtime dependency. tests/test_envfile.py compares every case with
# `dotenv.dotenv_values`; change these patterns only together with that table.
_WHITESPACE_ANY = re.compile(r"\s*", re.MULTILINE)
_BLANK = re.compile(r"[^\S\r\n]*")
_EXPORT = re.compile(r"(?:export[^\S\r\n]+)?")
_SINGLE_QUOTED_KEY = re.compile(r"'([^']+)'")
_UNQUOTED_KEY = re.compile(r"([^=\#\s]+)")
_EQUAL_SIGN = re.compile(r"(=[^\S\r\n]*)")
# A backslash always escapes the next character, so `\\"` does not read as an escaped quote.
_SINGLE_QUOTED_VALUE = re.compile(r"'((?:\\.|[^'\\])*)'", re.DOTALL)
_DOUBLE_QUOTED_VALUE = re.compile(r'"((?:\\.|[^"\\])*)"', re.DOTALL)
_UNQUOTED_VALUE = re.compile(r"([^\r\n]*)")
_INLINE_COMMENT = re.compile(r"\s+#.*")
_COMMENT = re.compile(r"(?:[^\S\r\n]*#[^\r\n]*)?")
_END_OF_LINE = re.compile(r"[^\S\r\n]*(?:\r\n|\n|\r|$)")
_DOUBLE_QUOTE_ESCAPES = re.compile(r"\\[\\'\"abfnrtv]")
_SINGLE_QUOTE_ESCAPES = re.compile(r"\\[\\']")
_ESCAPED = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
# What python-dotenv expands by default (`${NAME}`, `${NAME:-default}`), in any quoting.
_EXPANSION = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")
# Values the writer leaves unquoted: every generated password and key, plain URLs and paths.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.,/:@%^&*!+=~-]+")


class _Syntax(ValueError):
    pass


def _take(text: str, at: int, pattern: re.Pattern[str]) -> tuple[int, tuple[str, ...]]:
    match = pattern.match(text, at)
    if match is None:
        raise _Syntax
    return match.end(), match.groups()


def _unescape(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda match: _ESCAPED[match.group(0)[1]], text)


def _binding(text: str, at: int) -> tuple[int, str | None, str | None]:
    """One `KEY=VALUE` (or `KEY`, or a comment) from `at`; returns (end, key, value)."""
    at, _ = _take(text, at, _EXPORT)
    if text.startswith("#", at):
        key = None
    elif text.startswith("'", at):
        at, (key,) = _take(text, at, _SINGLE_QUOTED_KEY)
    else:
        at, (key,) = _take(text, at, _UNQUOTED_KEY)
    at, _ = _take(text, at, _BLANK)
    value = None
    if text.startswith("=", at):
        at, (equal_sign,) = _take(text, at, _EQUAL_SIGN)
        first = text[at : at + 1]
        if len(equal_sign) > 1 and first == "#":  # `KEY= # comment`: empty; `KEY=#x` is "#x"
            value = ""
        elif first == "'":
            at, (raw,) = _take(text, at, _SINGLE_QUOTED_VALUE)
            value = _unescape(_SINGLE_QUOTE_ESCAPES, raw)
        elif first == '"':
            at, (raw,) = _take(text, at, _DOUBLE_QUOTED_VALUE)
            value = _unescape(_DOUBLE_QUOTE_ESCAPES, raw)
        elif first in ("", "\n", "\r"):
            value = ""
        else:
            at, (raw,) = _take(text, at, _UNQUOTED_VALUE)
            value = _INLINE_COMMENT.sub("", raw).rstrip()
    at, _ = _take(text, at, _COMMENT)
    at, _ = _take(text, at, _END_OF_LINE)
    return at, key, value


def parse_env_text(text: str, source: str = "<env>") -> dict[str, str]:
    """python-dotenv's `dotenv_values` semantics, with three deliberate differences.

    Quotes, escapes (`\\n \\" \\\\` in double quotes, `\\' \\\\` in single quotes), inline
    comments, `export `, multi-line quoted values, CRLF and a leading BOM read as python-dotenv
    reads them. The differences, each safer for a file of secrets:

    - a line python-dotenv cannot parse (it warns and skips it) raises `ValueError` naming the
      line, never its content;
    - a value containing `${NAME}` or `${NAME:-default}` raises `ValueError` instead of being
      expanded from the process environment: expansion would silently change a password that
      contains those characters, and make the file mean different things in different shells;
    - a `KEY` without `=` (python-dotenv: `None`) is left out, as `load_dotenv` leaves it unset.
    """
    text = text.removeprefix("\ufeff")
    values: dict[str, str] = {}
    at = 0
    while at < len(text):
        start = at
        at, _ = _take(text, at, _WHITESPACE_ANY)
        if at >= len(text):
            break
        line = text.count("\n", 0, at) + 1
        try:
            at, key, value = _binding(text, at)
        except _Syntax:
            raise ValueError(f"{source}:{line}: not a KEY=VALUE line python-dotenv can read") from None
        if at == start:  # defensive: every pattern above consumed nothing
            raise ValueError(f"{source}:{line}: not a KEY=VALUE line python-dotenv can read")
        if key is None or value is None:
            continue
        if _EXPANSION.search(value):
            raise ValueError(
                f"{source}:{line}: {key} contains ${{...}}, which python-dotenv would expand and "
                "secure_redis does not; write the value itself"
            )
        values[key] = value
    return values


def parse_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables a `.env` file sets, read as `parse_env_text` describes (UTF-8)."""
    path = Path(path)
    # Universal newlines, as python-dotenv opens it: CRLF and CR read as LF, in quotes too.
    return parse_env_text(path.read_text(encoding="utf-8"), str(path))


def quote_env_value(value: str) -> str:
    """`value` written so that both `parse_env_file` and python-dotenv read it back unchanged.

    Plain values stay bare; anything else is double-quoted with `\\`, `"`, CR and LF escaped.
    A value containing `${...}` is refused: python-dotenv expands it in any quoting."""
    if _EXPANSION.search(value):
        raise ValueError("a value containing ${...} cannot be written to a .env file: python-dotenv would expand it")
    if _PLAIN_VALUE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def render_secure_env(
    environment: str,
    *,
    redis_url: str = "rediss://localhost:6380/0",
    certs_dir: str | os.PathLike[str] = "certs",
    password: str | None = None,
    encryption_key: str | None = None,
    acl_username: str = APP_USER,
) -> str:
    """The commented `.env` text for `environment`; every value goes through `quote_env_value`."""
    if environment not in POLICIES:
        raise ValueError(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    policy = POLICIES[environment]
    certs = Path(certs_dir).absolute()
    password = password or _native.generate_secure_password(policy.password_length)
    encryption_key = encryption_key or _native.generate_encryption_key()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    _q = quote_env_value
    return f"""# secure_redis configuration for {environment} ({policy.description}).
# Generated {stamp} by `secure-redis generate-env`. Keep this file private (mode 600) and out of git.
# Check it any time with: secure-redis check --env-file <this file> --connect

# Which rules apply (development, staging or production).
ENVIRONMENT={_q(environment)}

# The server's TLS port; rediss:// is required.
REDIS_URL={_q(redis_url)}

# AUTH: a least-privilege ACL user and its password ({policy.password_length} random characters).
REDIS_ACL_USERNAME={_q(acl_username)}
REDIS_PASSWORD={_q(password)}

# Fernet key for the values. To rotate: secure-redis generate-key --rotate, then deploy.
REDIS_ENCRYPTION_KEY={_q(encryption_key)}

# The CA that signed the server certificate, and this client's certificate for mutual TLS.
REDIS_TLS_CA_PATH={_q(str(certs / "ca.crt"))}
REDIS_TLS_CERT_PATH={_q(str(certs / "client.crt"))}
REDIS_TLS_KEY_PATH={_q(str(certs / "client.key"))}
REDIS_TLS_MIN_VERSION={_q(policy.min_tls_version)}
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
def applied(values: dict[str, str]) -> Generator[None, None, None]:
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


def check_env_file(path: str | os.PathLike[str], test_connectivity: bool = False) -> dict[str, Any]:
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
