"""`secure-redis` / `python -m secure_redis`: exit codes, human and JSON reports, generators."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cryptography.fernet import Fernet

from conftest import find_secrets


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "ENVIRONMENT", "ENFORCE_AUTH"))}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "secure_redis", *args], env=env, capture_output=True, text=True, timeout=60
    )


def write_env(path, **values: str) -> str:
    path.write_text("# written by the test\n" + "".join(f'export {k}="{v}"\n' for k, v in values.items()))
    return str(path)


def test_check_secure_configuration_with_connect_and_json(tmp_path, redis_server, pki, encryption_key) -> None:
    env_file = write_env(
        tmp_path / ".env.secure",
        ENVIRONMENT="staging",
        REDIS_URL=redis_server.url,
        REDIS_PASSWORD=redis_server.password,
        REDIS_ENCRYPTION_KEY=encryption_key,
        REDIS_TLS_CA_PATH=str(pki.ca_cert),
    )
    done = run_cli("check", "--env-file", env_file, "--connect", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["secure"] is True and report["environment"] == "staging"
    assert report["connectivity_info"]["tls_version"].startswith("TLSv1.")
    assert not find_secrets(done.stdout + done.stderr)

    human = run_cli("check", "--env-file", env_file)
    assert human.returncode == 0
    assert "Overall Status: PASSED" in human.stdout and "validation passed" in human.stdout


def test_check_insecure_configuration_exits_1(tmp_path) -> None:
    env_file = write_env(tmp_path / ".env", REDIS_URL="redis://localhost:6379/0")
    done = run_cli("check", "--env-file", env_file, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["secure"] is False and report["errors"]
    human = run_cli("check", "--env-file", env_file)
    assert human.returncode == 1 and "FAILED" in human.stdout


def test_plaintext_override_flag_turns_the_url_error_into_a_warning(tmp_path, encryption_key) -> None:
    env_file = write_env(
        tmp_path / ".env",
        REDIS_URL="redis://localhost:6379/0",
        REDIS_PASSWORD="Vq7#mZ2!pL9$xR4@kT8&wN3^bH6*cJ5%",
        REDIS_ENCRYPTION_KEY=encryption_key,
    )
    done = run_cli("check", "--env-file", env_file, "--allow-plaintext", "--json")
    assert done.returncode == 0, done.stdout
    assert any("INSECURE TRANSPORT" in w for w in json.loads(done.stdout)["warnings"])


def test_usage_errors_exit_2(tmp_path) -> None:
    assert run_cli("check", "--env-file", str(tmp_path / "missing.env")).returncode == 2
    assert run_cli("no-such-command").returncode == 2
    assert run_cli().returncode == 2
    bad = tmp_path / "bad.env"
    bad.write_text("this is not an assignment\n")
    assert run_cli("check", "--env-file", str(bad)).returncode == 2
    assert run_cli("generate-password", "--length", "4").returncode == 2


def test_generators() -> None:
    key = run_cli("generate-key").stdout.strip()
    Fernet(key)  # a valid key for cryptography
    rotated = run_cli("generate-key", "--rotate", key).stdout.strip().split(",")
    assert len(rotated) == 2 and rotated[1] == key and rotated[0] != key
    password = run_cli("generate-password", "--length", "40").stdout.strip()
    assert len(password) == 40
