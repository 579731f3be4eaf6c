"""``secure-redis`` (or ``python -m secure_redis``): check a configuration, make keys and passwords.

Exit codes: 0 secure / done, 1 insecure, 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from . import _native
from .validation import SecurityValidationResult


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored; optional `export ` and quotes."""
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


def _check(args: argparse.Namespace) -> int:
    if args.env_file:
        path = Path(args.env_file)
        if not path.is_file():
            print(f"secure-redis: --env-file {path}: no such file", file=sys.stderr)
            return 2
        try:
            os.environ.update(parse_env_file(path))
        except ValueError as error:
            print(f"secure-redis: {error}", file=sys.stderr)
            return 2
    report = _native.validate_environment(args.url, True if args.allow_plaintext else None, args.connect)
    result = SecurityValidationResult.from_report(report)
    if args.json:
        document = result.to_dict()
        document["secure"] = result.is_valid
        document["success_line"] = report["success_line"] if result.is_valid else None
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(result.summary())
        if result.is_valid:
            print(report["success_line"])
    return 0 if result.is_valid else 1


def _generate_key(args: argparse.Namespace) -> int:
    key = _native.generate_encryption_key()
    if args.rotate is not None:
        existing = [k.strip() for k in args.rotate.split(",") if k.strip()]
        print(",".join([key, *existing]))
    else:
        print(key)
    return 0


def _generate_password(args: argparse.Namespace) -> int:
    try:
        print(_native.generate_secure_password(args.length))
    except Exception as error:  # ValidationError with the allowed range
        print(f"secure-redis: {error}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secure-redis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="validate the Redis security configuration in the environment")
    check.add_argument("--env-file", help="read variables from this .env file first")
    check.add_argument("--url", help="the Redis URL (default: REDIS_URL)")
    check.add_argument("--connect", action="store_true", help="also connect: TLS, AUTH, encrypted round trip")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--allow-plaintext", action="store_true", help="as REDIS_INSECURE_ALLOW_PLAINTEXT=true (a warning, not an error)"
    )
    check.set_defaults(run=_check)

    key = commands.add_parser("generate-key", help="print a new Fernet key")
    key.add_argument("--rotate", metavar="KEYS", help="existing key list: print NEW,KEYS (new key first)")
    key.set_defaults(run=_generate_key)

    password = commands.add_parser("generate-password", help="print a random Redis password")
    password.add_argument("--length", type=int, default=32)
    password.set_defaults(run=_generate_password)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
