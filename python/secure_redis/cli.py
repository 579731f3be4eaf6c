"""``secure-redis`` (or ``python -m secure_redis``): check a configuration, make keys and passwords.

Exit codes: 0 secure / done, 1 insecure, 2 usage errors, 3 unreachable (the configuration is
secure but no Redis answered at REDIS_URL: a stopped server is not an insecure one).

No secret is taken from an argument (every local user can read argv in /proc/<pid>/cmdline):
keys come from REDIS_ENCRYPTION_KEY or stdin (`--rotate -`), a URL with credentials from
REDIS_URL or stdin (`--url -`); key material or user-info given as an argument is refused unless
--allow-secret-in-argv accepts the exposure. Nothing printed on stderr holds a secret.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence
from urllib.parse import urlsplit

from . import _native
from ._private_file import write_private_file
from .envfile import ENVIRONMENTS, check_env_file, parse_env_file, write_secure_env
from .validation import SecurityValidationResult


def _check(args: argparse.Namespace) -> int:
    if _load_env_file(args.env_file):
        return 2
    url = args.url
    if url == STDIN:
        url = _read_secret_from_stdin("Redis URL: ").strip()
        if not url:
            print("secure-redis: --url -: nothing on stdin (write the Redis URL there)", file=sys.stderr)
            return 2
    elif url is not None and _refuse_credentials_in_argv(
        "check --url", url, args.allow_secret_in_argv,
        "Give the URL without them and set REDIS_PASSWORD (and REDIS_ACL_USERNAME) in the environment or the "
        "--env-file, or pass --url - and write the URL on stdin, or leave --url out to check REDIS_URL.",
    ):
        return 2
    report = _native.validate_environment(url, True if args.allow_plaintext else None, args.connect)
    unreachable = _mark_unreachable(report)
    result = SecurityValidationResult.from_report(report)
    if args.json:
        document = result.to_dict()
        document["secure"] = result.is_valid
        document["verdict"] = "SECURE" if result.is_valid else "UNREACHABLE" if unreachable else "INSECURE"
        document["success_line"] = report["success_line"] if result.is_valid else None
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(result.summary())
        if result.is_valid:
            print(report["success_line"])
        elif unreachable:
            print(f"Verdict: UNREACHABLE. {unreachable}")
    return EXIT_SECURE if result.is_valid else EXIT_UNREACHABLE if unreachable else EXIT_INSECURE


EXIT_SECURE, EXIT_INSECURE, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_CODES = """exit codes:
  0  secure (or done)
  1  insecure
  2  usage error
  3  unreachable: the configuration is secure, but no Redis answered at REDIS_URL
     (usually a stopped server: start it)
"""
# The core's finding for a single server that did not answer (validate/connectivity.rs); a
# server that answered and refused us (TLS, AUTH) is a different finding and stays insecure.
_UNREACHABLE = "Redis is unreachable: "


def _mark_unreachable(report: dict[str, Any]) -> str | None:
    """When the only errors are "no Redis answered", rewrites the report so it says so
    (security level UNREACHABLE, a fix that starts the server) and returns that fix; None otherwise.

    A refused connection means nothing listens at the address REDIS_URL names: the usual cause
    is a stopped server, so the fix is to start it, not to change a URL that may well be right.
    A name that does not resolve or a timeout keeps the core's fix, which is about the URL."""
    errors = [f for f in report.get("findings", []) if f.get("severity") == "error"]
    if len(errors) != 1 or errors[0].get("check") != "connectivity":
        return None
    finding = errors[0]
    message = finding.get("message", "")
    if not message.startswith(_UNREACHABLE):
        return None
    url_info: dict[str, Any] = report.get("url_info") or {}
    address = url_info.get("redis_url") or "the address in REDIS_URL"
    if "refused" in message.lower():
        finding["fix"] = (
            f"nothing listens at {address}: start that Redis server (for the one "
            "scripts/setup-secure-redis.sh set up: run scripts/setup-secure-redis.sh again, which reuses its "
            "certificates and secrets), then run secure-redis check --connect again"
        )
    fix = finding["fix"]
    report["errors"] = [
        f"{message} Fix: {fix}" if line.startswith(_UNREACHABLE) else line for line in report["errors"]
    ]
    report["security_level"] = "UNREACHABLE"
    report["connectivity_status"] = "❌ Unreachable (no answer)"
    return f"The configuration checks passed, but no Redis answered. Fix: {fix}."


def _load_env_file(path_text: str | None) -> int:
    if not path_text:
        return 0
    path = Path(path_text)
    if not path.is_file():
        print(f"secure-redis: --env-file {path}: no such file", file=sys.stderr)
        return 2
    try:
        os.environ.update(parse_env_file(path))
    except ValueError as error:
        print(f"secure-redis: {error}", file=sys.stderr)
        return 2
    return 0


def _status(args: argparse.Namespace) -> int:
    """A short operator report from a full check with a live connection."""
    if _load_env_file(args.env_file):
        return 2
    report = _native.validate_environment(None, None, True)
    unreachable = _mark_unreachable(report)
    if args.save:
        # 0600 like every file we write that may say how the deployment is secured
        write_private_file(args.save, json.dumps(report, indent=2, sort_keys=True))
    live: dict[str, Any] = report.get("connectivity_info") or {}
    cert: dict[str, Any] = report.get("certificate_info") or {}
    auth: dict[str, Any] = report.get("auth_info") or {}
    url_info: dict[str, Any] = report.get("url_info") or {}
    secure = report["is_valid"]
    print("Secure Redis status")
    print(f"  environment         {report['environment']} ({report['environment_signal']})")
    verdict = "SECURE" if secure else "UNREACHABLE" if unreachable else "NOT SECURE"
    print(f"  verdict             {verdict} (security level {report['security_level']})")
    print(f"  redis               {url_info.get('redis_url')}")
    print(f"  TLS                 {live.get('tls_version', '-')} {live.get('cipher_suite', '')}".rstrip())
    print(f"  server certificate  {live.get('server_certificate_days_until_expiry', '-')} days left")
    print(f"  client certificate  {cert.get('days_until_expiry', '-')} days left")
    print(f"  ACL user            {auth.get('username', '-')}")
    print(f"  encryption          {report['encryption_status']}; round trip: "
          f"{live.get('encrypted_round_trip', 'not completed')}")
    for line in report["errors"]:
        print(f"  ERROR  {line}")
    for line in report["warnings"]:
        print(f"  warn   {line}")
    return EXIT_SECURE if secure else EXIT_UNREACHABLE if unreachable else EXIT_INSECURE


# The value that makes --rotate and --url read stdin (a secret in argv is visible to every local
# user in /proc/<pid>/cmdline while the command runs, and stays in the shell's history).
STDIN = "-"
ALLOW_FLAG = "--allow-secret-in-argv"
ROTATE_SAFELY = 'REDIS_ENCRYPTION_KEY="$(secure-redis generate-key --rotate)"'
ACCEPT_EXPOSURE = f"({ALLOW_FLAG} accepts the exposure.)"


def _read_secret_from_stdin(prompt: str) -> str:
    """All of stdin, or one line typed without echo when stdin is a terminal."""
    if sys.stdin is None:
        return ""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.read()


def _refuse_credentials_in_argv(option: str, url: str, allowed: bool, instead: str) -> bool:
    """True (after saying why and what to do instead) when a URL given as an argument carries
    user-info. Any '@' counts: parsers disagree on where user-info ends, and a Redis URL without
    credentials has no use for one. The URL itself is never printed."""
    if "@" not in url or allowed:
        return False
    print(
        f"secure-redis: {option} refused: the URL holds credentials (user-info before '@'), and an argument is "
        f"readable by every local user (/proc/<pid>/cmdline) and by the shell's history. {instead} {ACCEPT_EXPOSURE}",
        file=sys.stderr,
    )
    return True


def _generate_key(args: argparse.Namespace) -> int:
    key = _native.generate_encryption_key()
    if args.rotate is not None:
        if args.rotate == STDIN:
            existing = _read_secret_from_stdin("Current keys (comma-separated): ")
        elif args.rotate:
            if not args.allow_secret_in_argv:
                print(
                    "secure-redis: generate-key --rotate KEYS refused: keys given as an argument are readable by "
                    "every local user (/proc/<pid>/cmdline) and by the shell's history. Leave KEYS out to rotate "
                    f"REDIS_ENCRYPTION_KEY ({ROTATE_SAFELY}), or pass --rotate - and write the keys on stdin. "
                    f"{ACCEPT_EXPOSURE}",
                    file=sys.stderr,
                )
                return 2
            existing = args.rotate
        else:
            existing = _native.env_value("REDIS_ENCRYPTION_KEY") or ""
        # Commas or any whitespace separate keys; a Fernet key holds neither.
        keys = [k for k in re.split(r"[,\s]+", existing) if k]
        if not keys:
            print(
                "secure-redis: --rotate needs the current keys: set REDIS_ENCRYPTION_KEY, or pass --rotate - "
                "and write them on stdin",
                file=sys.stderr,
            )
            return 2
        try:  # a typo here would be written into REDIS_ENCRYPTION_KEY and fail at the next start
            _native.EncryptedCacheLayer(",".join(keys), performance_monitoring=False)
        except Exception as error:  # ConfigurationError naming the key's position, never its value
            print(f"secure-redis: --rotate: {error}", file=sys.stderr)
            return 2
        print(",".join([key, *keys]))
    else:
        print(key)
    return 0


def _generate_env(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if args.validate_only:
        if not output.is_file():
            print(f"secure-redis: {output}: no such file", file=sys.stderr)
            return 2
        try:
            report = check_env_file(output, args.connect)
        except ValueError as error:
            print(f"secure-redis: {error}", file=sys.stderr)
            return 2
        result = SecurityValidationResult.from_report(report)
        print(result.summary())
        if report["upgrade_recommendations"]:
            print("Upgrade recommendations:")
            for line in report["upgrade_recommendations"]:
                print(f"  • {line}")
        return 0 if result.is_valid else 1
    if _refuse_credentials_in_argv(
        "generate-env --redis-url", args.redis_url, args.allow_secret_in_argv,
        "Give the URL without them: the file gets a fresh REDIS_PASSWORD and REDIS_ACL_USERNAME of its own.",
    ):
        return 2
    try:
        previous = write_secure_env(
            output, args.environment, force=args.force, redis_url=args.redis_url, certs_dir=args.certs
        )
    except FileExistsError as error:
        print(f"secure-redis: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # a value the .env syntax cannot carry (``${...}``): a usage error
        print(f"secure-redis: {error}", file=sys.stderr)
        return 2
    if previous:
        print(f"backed up the previous file to {previous}")
    print(f"wrote {output} for {args.environment} (mode 600)")
    _warn_missing_certificates(output, Path(args.certs), args.redis_url)
    return 0


def _warn_missing_certificates(output: Path, certs: Path, redis_url: str) -> None:
    """The file is written either way (the secrets in it are good); when the certificate files it
    names are not there yet, stderr says which and the command that makes them, so that the first
    `check --connect` does not fail on a missing file nobody mentioned."""
    certs = certs.absolute()  # as the file names them (envfile.render_secure_env)
    missing = [str(certs / name) for name in CERTIFICATE_FILES if not (certs / name).is_file()]
    if not missing:
        return
    host = urlsplit(redis_url).hostname or "localhost"
    print(
        f"secure-redis: warning: {output} names certificate files that do not exist yet: {', '.join(missing)}.\n"
        f"  Create them with: scripts/init-redis-tls.sh --out {certs} {host}\n"
        "  (a CA, the server's and a client's certificate), or run scripts/setup-secure-redis.sh, which makes\n"
        "  the certificates, this file and a TLS-only Redis in one go.",
        file=sys.stderr,
    )


# What generate-env's file points REDIS_TLS_CA_PATH, _CERT_PATH and _KEY_PATH at, inside --certs.
CERTIFICATE_FILES = ("ca.crt", "client.crt", "client.key")


def _generate_password(args: argparse.Namespace) -> int:
    try:
        print(_native.generate_secure_password(args.length))
    except Exception as error:  # ValidationError with the allowed range
        print(f"secure-redis: {error}", file=sys.stderr)
        return 2
    return 0


class _NoEchoParser(argparse.ArgumentParser):
    """argparse quotes the offending argument in its errors; ours may be a key or password, so
    the message names what was wrong and leaves the value out."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"unrecognized arguments: .*", "unrecognized arguments (not shown: they may hold a secret)",
                         message, flags=re.DOTALL)
        message = re.sub(r"(invalid (?:choice|[\w ]+ value)): '[^']*'", r"\1 (not shown)", message)
        super().error(message)


def _value_may_start_with_dash(argv: Sequence[str], option: str) -> list[str]:
    """Fernet keys are base64url, so one in 64 starts with '-' and argparse would take it for an
    option. The word after OPTION is its value unless it is --help or --allow-secret-in-argv."""
    words = list(argv)
    for i, word in enumerate(words[:-1]):
        if word == option and words[i + 1].startswith("-") and words[i + 1] not in ("-h", "--help", ALLOW_FLAG):
            words[i : i + 2] = [f"{option}={words[i + 1]}"]
            break
    return words


DESCRIPTION = """\
secure-redis (or python -m secure_redis): check a Redis configuration for TLS,
AUTH and encryption, and make keys, passwords and .env files."""
EPILOG = """\
No secret is taken from an argument: keys come from REDIS_ENCRYPTION_KEY or
stdin, a URL with credentials from REDIS_URL or stdin.

""" + EXIT_CODES


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser: every option has a help text, every help page lists the exit codes."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _NoEchoParser(prog="secure-redis", description=DESCRIPTION, epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_native.__version__}",
                        help="print the package version and exit")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="see secure-redis COMMAND --help"
    )

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary, epilog=EXIT_CODES,
                                   formatter_class=formatter)

    check = command("check", "validate the Redis security configuration in the environment")
    check.add_argument("--env-file", help="read variables from this .env file first")
    check.add_argument(
        "--url", help="the Redis URL without credentials (default: REDIS_URL); '-' reads it from stdin"
    )
    check.add_argument(ALLOW_FLAG, action="store_true", help="accept credentials in --url (visible to local users)")
    check.add_argument("--connect", action="store_true",
                       help="also connect: TLS, AUTH, encrypted round trip (exit 3 when no Redis answers)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="as REDIS_INSECURE_ALLOW_PLAINTEXT=true (a warning, not an error; in production an error unless "
        "REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged is set)",
    )
    check.set_defaults(run=_check)

    status = command("status", "short report from a live check (exit 0 when secure, 3 when no Redis answers)")
    status.add_argument("--env-file", help="read variables from this .env file first")
    status.add_argument("--save", help="also write the full report as JSON to this file (mode 600)")
    status.set_defaults(run=_status)

    key = command("generate-key", "print a new Fernet key")
    key.add_argument(
        "--rotate", nargs="?", const="", metavar="KEYS",
        help="print NEW,KEYS (new key first); KEYS: REDIS_ENCRYPTION_KEY when left out, stdin when '-'",
    )
    key.add_argument(ALLOW_FLAG, action="store_true", help="accept KEYS as an argument (visible to local users)")
    key.set_defaults(run=_generate_key)

    env = command("generate-env", "write (or check) a commented .env with fresh secrets")
    env.add_argument("--environment", choices=ENVIRONMENTS, default="development",
                     help="the deployment it is for (default: %(default)s)")
    env.add_argument("--output", default=".env.secure", help="the file to write or check (default: %(default)s)")
    env.add_argument("--redis-url", default="rediss://localhost:6380/0",
                     help="the Redis URL, without credentials (default: %(default)s)")
    env.add_argument(ALLOW_FLAG, action="store_true", help="accept credentials in --redis-url (visible to local users)")
    env.add_argument("--certs", default="certs",
                     help="folder holding ca.crt, client.crt, client.key (default: %(default)s)")
    env.add_argument("--force", action="store_true", help="replace an existing file (it is backed up first)")
    env.add_argument("--validate-only", action="store_true", help="check --output instead of writing it")
    env.add_argument("--connect", action="store_true", help="with --validate-only: also connect")
    env.set_defaults(run=_generate_env)

    password = command("generate-password", "print a random Redis password")
    password.add_argument("--length", type=int, default=32, help="its length in characters (default: %(default)s)")
    password.set_defaults(run=_generate_password)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(_value_may_start_with_dash(words, "--rotate"))
    logging.basicConfig(level=logging.WARNING, format="secure-redis: %(levelname)s %(message)s")
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
