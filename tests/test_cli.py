"""`secure-redis` / `python -m secure_redis`: exit codes, human and JSON reports, generators."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from secure_redis.cli import build_parser

from conftest import find_secrets, remember_secret, stdout_prints_secrets

STRONG = remember_secret("Vq7#mZ2!pL9$xR4@kT8&wN3^bH6*cJ5%")


def installed_script() -> str:
    """The console script pip generated from [project.scripts], in this interpreter's environment."""
    bin_dir = Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin")
    script = shutil.which("secure-redis", path=str(bin_dir))
    assert script, f"the secure-redis console script is not installed in {bin_dir}"
    return script


def run_cli(
    command: list[str], *args: str, env_extra: dict[str, str] | None = None, prints_secret: bool = False,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs the CLI and checks that no registered secret appears in what it printed.

    Only the generators print a secret on purpose (stdout, which the test registers); stderr
    never may."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "ENVIRONMENT", "ENFORCE_AUTH"))}
    env.update(env_extra or {})
    with stdout_prints_secrets() if prints_secret else contextlib.nullcontext():
        done = subprocess.run([*command, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60)
    assert not find_secrets(done.stderr), f"a secret appeared on stderr of {args}"
    if not prints_secret:
        assert not find_secrets(done.stdout), f"a secret appeared on stdout of {args}"
    return done


@pytest.fixture(params=["python -m secure_redis", "secure-redis"])
def cli(request):
    """Each test runs through `python -m secure_redis` and through the installed console script."""
    command = [sys.executable, "-m", "secure_redis"] if request.param.startswith("python") else [installed_script()]
    return lambda *args, **kwargs: run_cli(command, *args, **kwargs)


def write_env(path, **values: str) -> str:
    path.write_text("# written by the test\n" + "".join(f'export {k}="{v}"\n' for k, v in values.items()))
    return str(path)


def test_check_secure_configuration_with_connect_and_json(cli, tmp_path, redis_server, pki, encryption_key) -> None:
    env_file = write_env(
        tmp_path / ".env.secure",
        ENVIRONMENT="staging",
        REDIS_URL=redis_server.url,
        REDIS_PASSWORD=redis_server.password,
        REDIS_ENCRYPTION_KEY=encryption_key,
        REDIS_TLS_CA_PATH=str(pki.ca_cert),
    )
    done = cli("check", "--env-file", env_file, "--connect", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["secure"] is True and report["environment"] == "staging"
    assert report["connectivity_info"]["tls_version"].startswith("TLSv1.")
    assert not find_secrets(done.stdout + done.stderr)

    human = cli("check", "--env-file", env_file)
    assert human.returncode == 0
    assert "Overall Status: PASSED" in human.stdout and "validation passed" in human.stdout


def test_check_insecure_configuration_exits_1(cli, tmp_path) -> None:
    env_file = write_env(tmp_path / ".env", REDIS_URL="redis://localhost:6379/0")
    done = cli("check", "--env-file", env_file, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["secure"] is False and report["errors"]
    human = cli("check", "--env-file", env_file)
    assert human.returncode == 1 and "FAILED" in human.stdout


def test_plaintext_override_flag_turns_the_url_error_into_a_warning(cli, tmp_path, encryption_key) -> None:
    env_file = write_env(
        tmp_path / ".env",
        REDIS_URL="redis://localhost:6379/0",
        REDIS_PASSWORD=STRONG,
        REDIS_ENCRYPTION_KEY=encryption_key,
    )
    done = cli("check", "--env-file", env_file, "--allow-plaintext", "--json")
    assert done.returncode == 0, done.stdout
    assert any("INSECURE TRANSPORT" in w for w in json.loads(done.stdout)["warnings"])


def test_usage_errors_exit_2(cli, tmp_path) -> None:
    assert cli("check", "--env-file", str(tmp_path / "missing.env")).returncode == 2
    assert cli("no-such-command").returncode == 2
    assert cli().returncode == 2
    bad = tmp_path / "bad.env"
    bad.write_text("this is not an assignment\n")
    assert cli("check", "--env-file", str(bad)).returncode == 2
    assert cli("generate-password", "--length", "4").returncode == 2


def test_generators(cli) -> None:
    key = remember_secret(cli("generate-key", prints_secret=True).stdout.strip())
    Fernet(key)  # a valid key for cryptography
    rotated = cli("generate-key", "--rotate", "-", stdin=key, prints_secret=True).stdout.strip().split(",")
    remember_secret(rotated[0])
    assert len(rotated) == 2 and rotated[1] == key and rotated[0] != key
    password = remember_secret(cli("generate-password", "--length", "40", prints_secret=True).stdout.strip())
    assert len(password) == 40


def test_rotate_takes_a_key_that_starts_with_a_dash(cli) -> None:
    # One Fernet key in 64 starts with '-' (base64url); argparse alone took it for an option and
    # echoed it on stderr. Keys as arguments need --allow-secret-in-argv now
    # (tests/test_secrets_outside_argv.py); the parsing must still hold when it is given.
    key = remember_secret(base64.urlsafe_b64encode(b"\xf8" + os.urandom(31)).decode())
    assert key.startswith("-")
    Fernet(key)
    for args in (
        ("--rotate", key, "--allow-secret-in-argv"),
        ("--allow-secret-in-argv", "--rotate", key),
        (f"--rotate={key}", "--allow-secret-in-argv"),
    ):
        done = cli("generate-key", *args, prints_secret=True)
        assert done.returncode == 0, done.stderr
        new, old = done.stdout.strip().split(",")
        remember_secret(new)
        assert old == key and new != key
    env_default = cli("generate-key", "--rotate", env_extra={"REDIS_ENCRYPTION_KEY": key}, prints_secret=True)
    assert env_default.returncode == 0 and env_default.stdout.strip().split(",")[1] == key
    from_stdin = cli("generate-key", "--rotate", "-", stdin=key, prints_secret=True)
    assert from_stdin.returncode == 0 and from_stdin.stdout.strip().split(",")[1] == key
    # The flag right after a bare --rotate is the flag, not a key.
    flag_next = cli("generate-key", "--rotate", "--allow-secret-in-argv", env_extra={"REDIS_ENCRYPTION_KEY": key},
                    prints_secret=True)
    assert flag_next.returncode == 0 and flag_next.stdout.strip().split(",")[1] == key


def test_rotate_refuses_a_key_that_is_not_a_fernet_key(cli) -> None:
    not_a_key = remember_secret("-" + "x" * 20)
    for done in (cli("generate-key", "--rotate", "-", stdin=not_a_key),
                 cli("generate-key", "--rotate", not_a_key, "--allow-secret-in-argv")):
        assert done.returncode == 2 and "not a valid Fernet key" in done.stderr and done.stdout == ""


def test_usage_errors_never_echo_the_offending_value(cli) -> None:
    # run_cli fails the test if a registered secret reaches stderr.
    secret = remember_secret("-Sup3rSecretPassw0rd-" + os.urandom(8).hex())
    done = cli("generate-password", secret)
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    value = remember_secret(secret.lstrip("-"))
    done = cli("generate-password", "--length", value)
    assert done.returncode == 2 and "--length: invalid int value (not shown)" in done.stderr
    done = cli("generate-env", "--environment", value)
    assert done.returncode == 2 and "invalid choice (not shown)" in done.stderr


def test_the_installed_script_is_the_cli() -> None:
    script = installed_script()
    assert os.access(script, os.X_OK)
    done = run_cli([script], "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: secure-redis")
    assert "check" in done.stdout and "generate-key" in done.stdout


def test_version_names_the_package_version(cli) -> None:
    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"secure-redis {sr_version()}"


def sr_version() -> str:
    import secure_redis

    return secure_redis.__version__


def test_a_stopped_server_is_unreachable_not_insecure(cli, tmp_path, make_server, pki, password, encryption_key) -> None:
    # The same secure configuration against a running and then a stopped TLS server: the
    # stopped one is UNREACHABLE (exit 3) with the advice to start it, never INSECURE (exit 1)
    # with the advice to change a REDIS_URL that is right.
    server = make_server("stopped")
    env_file = write_env(
        tmp_path / ".env.secure",
        ENVIRONMENT="staging",
        REDIS_URL=server.url,
        REDIS_PASSWORD=password,
        REDIS_ENCRYPTION_KEY=encryption_key,
        REDIS_TLS_CA_PATH=str(pki.ca_cert),
    )
    running = cli("check", "--env-file", env_file, "--connect", "--json")
    assert running.returncode == 0, running.stdout + running.stderr
    assert json.loads(running.stdout)["verdict"] == "SECURE"
    server.stop()

    stopped = cli("check", "--env-file", env_file, "--connect", "--json")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    report = json.loads(stopped.stdout)
    assert report["verdict"] == "UNREACHABLE" and report["security_level"] == "UNREACHABLE"
    assert "start that Redis server" in report["errors"][0]
    human = cli("check", "--env-file", env_file, "--connect")
    assert human.returncode == 3
    assert "Verdict: UNREACHABLE" in human.stdout and "INSECURE" not in human.stdout
    assert "REDIS_URL=rediss://redis.internal" not in human.stdout  # no URL change suggested
    status = cli("status", "--env-file", env_file)
    assert status.returncode == 3 and "UNREACHABLE" in status.stdout and "NOT SECURE" not in status.stdout

    # Insecure stays insecure (exit 1) even when Redis is also unreachable.
    plaintext = write_env(tmp_path / ".env.plain", REDIS_URL="redis://127.0.0.1:1/0")
    insecure = cli("check", "--env-file", plaintext, "--connect", "--json")
    assert insecure.returncode == 1 and json.loads(insecure.stdout)["verdict"] == "INSECURE"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def test_every_help_page_is_plain_text_with_every_option_explained_and_the_exit_codes(cli) -> None:
    parser = build_parser()
    pages = {"": parser, **{name: sub for name, sub in _subparsers(parser).items()}}
    assert set(pages) == {"", "check", "status", "generate-key", "generate-env", "generate-password"}
    for name, page in pages.items():
        for action in page._actions:
            assert action.help and action.help != argparse.SUPPRESS, f"{name or 'secure-redis'}: {action.dest}"
        done = cli(*([name] if name else []), "--help")
        assert done.returncode == 0, done.stderr
        assert "``" not in done.stdout and "`" not in done.stdout, done.stdout
        for code, meaning in (("0", "secure"), ("1", "insecure"), ("2", "usage error"), ("3", "unreachable")):
            assert f"  {code}  {meaning}" in done.stdout, f"{name}: exit code {code} missing"


def test_generate_env_says_which_certificate_files_are_missing_and_how_to_make_them(cli, tmp_path) -> None:
    # The file is still written (exit 0); stderr names each missing file it points at and the
    # command that creates them, and says nothing when they are all there.
    certs = tmp_path / "certs"
    output = tmp_path / ".env.secure"
    done = cli("generate-env", "--output", str(output), "--certs", str(certs))
    assert done.returncode == 0, done.stderr
    assert output.is_file() and f"wrote {output}" in done.stdout
    for name in ("ca.crt", "client.crt", "client.key"):
        assert str(certs / name) in done.stderr
    assert f"scripts/init-redis-tls.sh --out {certs} localhost" in done.stderr
    assert "scripts/setup-secure-redis.sh" in done.stderr

    certs.mkdir()
    (certs / "ca.crt").write_text("placeholder\n")
    partial = cli("generate-env", "--output", str(output), "--certs", str(certs), "--force",
                  "--redis-url", "rediss://cache.internal:6380/0")
    assert partial.returncode == 0, partial.stderr
    assert str(certs / "ca.crt") not in partial.stderr and str(certs / "client.key") in partial.stderr
    assert f"--out {certs} cache.internal" in partial.stderr

    for name in ("client.crt", "client.key"):
        (certs / name).write_text("placeholder\n")
    complete = cli("generate-env", "--output", str(output), "--certs", str(certs), "--force")
    assert complete.returncode == 0 and complete.stderr == ""


def test_generate_env_refuses_a_value_the_env_syntax_would_expand(cli, tmp_path) -> None:
    done = cli("generate-env", "--output", str(tmp_path / ".env"), "--certs", str(tmp_path / "${HOME}"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "secure-redis:" in done.stderr
    assert not (tmp_path / ".env").exists()
