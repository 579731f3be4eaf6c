"""The tooling: init-redis-tls.sh, setup-secure-redis.sh (without Docker, as in CI), the env and
key generators, docker-compose.secure.yml, and the docs' links and quickstart commands."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml
from cryptography import x509
from cryptography.fernet import Fernet

from conftest import remember_secret
from secure_redis.envfile import parse_env_file
from secure_redis.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def run(args, env_extra=None, cwd=ROOT, check=False, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SECURE_REDIS_", "ENVIRONMENT"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(env_extra or {})
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def test_init_redis_tls(tmp_path) -> None:
    out = tmp_path / "certs"
    run([SCRIPTS / "init-redis-tls.sh", "--out", out, "cache.internal"], check=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "ca.crt", "ca.key", "client.crt", "client.key", "redis.crt", "redis.key"
    ]  # no CSR, serial or extension files left
    for path in out.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.suffix == ".key" else 0o644), path
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert ca.public_key().key_size == 4096
    server = x509.load_pem_x509_certificate((out / "redis.crt").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"cache.internal", "localhost"} <= set(sans.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    client = x509.load_pem_x509_certificate((out / "client.crt").read_bytes())
    assert client.public_key().public_numbers() != server.public_key().public_numbers()
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
    refused = run([SCRIPTS / "init-redis-tls.sh", "--out", out])
    assert refused.returncode == 1 and "--force" in refused.stderr
    run([SCRIPTS / "init-redis-tls.sh", "--out", out, "--force"], check=True)


@pytest.fixture
def setup_home(tmp_path):
    home = tmp_path / "home"
    env = {"SECURE_REDIS_HOME": str(home), "SECURE_REDIS_PORT": str(free_port()), "SECURE_REDIS_NO_DOCKER": "1"}
    yield home, env
    run([SCRIPTS / "setup-secure-redis.sh", "--stop"], env)


def _app_client(home: Path, values: dict[str, str], **overrides) -> redis.Redis:
    port = int(values["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    options = dict(
        host="127.0.0.1", port=port, username=values["REDIS_ACL_USERNAME"], password=values["REDIS_PASSWORD"],
        ssl=True, ssl_ca_certs=values["REDIS_TLS_CA_PATH"], ssl_certfile=values["REDIS_TLS_CERT_PATH"],
        ssl_keyfile=values["REDIS_TLS_KEY_PATH"], ssl_cert_reqs=ssl.CERT_REQUIRED, socket_timeout=5,
    )
    options.update(overrides)
    return redis.Redis(**options)


def test_setup_script_without_docker(setup_home) -> None:
    home, env = setup_home
    first = run([SCRIPTS / "setup-secure-redis.sh"], env, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "mode: system" in first.stdout and "verdict             SECURE" in first.stdout
    assert "TLSv1.3" in first.stdout and "write, read and delete succeeded" in first.stdout
    env_file = home / ".env.secure"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = parse_env_file(env_file)
    remember_secret(values["REDIS_PASSWORD"])
    remember_secret(values["REDIS_ENCRYPTION_KEY"])
    assert values["REDIS_PASSWORD"] not in (home / ".secure-redis" / "users.acl").read_text()
    assert values["REDIS_PASSWORD"] not in first.stdout + first.stderr

    check = run(["secure-redis", "check", "--env-file", env_file, "--connect"], env)
    assert check.returncode == 0, check.stdout

    # TLS only: a plaintext client gets nowhere on that port.
    with pytest.raises(redis.exceptions.ConnectionError):
        _app_client(home, values, ssl=False).ping()
    # Least privilege: the application user can cache, and nothing more.
    app = _app_client(home, values)
    app.set("probe", "1")
    assert app.get("probe") == b"1" and app.unlink("probe") == 1
    for command in (("CONFIG", "GET", "maxmemory"), ("FLUSHALL",), ("EVAL", "return 1", "0"), ("KEYS", "*"),
                    ("ACL", "LIST"), ("SHUTDOWN",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    with pytest.raises(redis.exceptions.AuthenticationError):
        _app_client(home, values, username="default", password="").ping()
    app.close()

    pid = (home / ".secure-redis" / "redis" / "redis.pid").read_text().strip()
    again = run([SCRIPTS / "setup-secure-redis.sh"], env, timeout=180)
    assert again.returncode == 0 and "reusing" in again.stdout and f"already running (pid {pid})" in again.stdout
    assert parse_env_file(env_file)["REDIS_PASSWORD"] == values["REDIS_PASSWORD"]

    assert run([SCRIPTS / "setup-secure-redis.sh", "--status"], env).returncode == 0
    stopped = run([SCRIPTS / "setup-secure-redis.sh", "--stop"], env)
    assert stopped.returncode == 0 and "stopped redis-server" in stopped.stdout
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(env["SECURE_REDIS_PORT"])), timeout=1).close()
    assert run([SCRIPTS / "setup-secure-redis.sh", "--status"], env).returncode == 1


def test_setup_regenerate_backs_up_and_production_uses_tls13(setup_home) -> None:
    home, env = setup_home
    run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    old = parse_env_file(home / ".env.secure")
    remember_secret(old["REDIS_PASSWORD"])
    done = run([SCRIPTS / "setup-secure-redis.sh", "--regenerate", "--production"], env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    new = parse_env_file(home / ".env.secure")
    remember_secret(new["REDIS_PASSWORD"])
    assert new["ENVIRONMENT"] == "production" and len(new["REDIS_PASSWORD"]) == 48
    assert new["REDIS_TLS_MIN_VERSION"] == "1.3" and new["REDIS_PASSWORD"] != old["REDIS_PASSWORD"]
    backups = list(home.glob(".env.secure.backup.*"))
    assert len(backups) == 1 and parse_env_file(backups[0]) == old
    assert "production" in done.stdout and "TLSv1.3" in done.stdout
    # The server itself now refuses TLS 1.2.
    port = int(new["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    context = ssl.create_default_context(cafile=new["REDIS_TLS_CA_PATH"])
    context.load_cert_chain(new["REDIS_TLS_CERT_PATH"], new["REDIS_TLS_KEY_PATH"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            context.wrap_socket(raw, server_hostname="localhost").close()
    client = _app_client(home, new)
    assert client.ping()
    client.close()


def test_help_and_unknown_flags() -> None:
    assert run([SCRIPTS / "setup-secure-redis.sh", "--help"]).returncode == 0
    assert run([SCRIPTS / "setup-secure-redis.sh", "--bogus"]).returncode == 2
    assert "Usage" in run([SCRIPTS / "init-redis-tls.sh", "--help"]).stdout


def test_generate_secure_env_and_key(tmp_path) -> None:
    out = tmp_path / ".env.production"
    run([sys.executable, SCRIPTS / "generate-secure-env.py", "--environment", "production", "--output", out],
        check=True)
    values = parse_env_file(out)
    remember_secret(values["REDIS_PASSWORD"])
    assert len(values["REDIS_PASSWORD"]) == 48 and values["REDIS_TLS_MIN_VERSION"] == "1.3"
    Fernet(values["REDIS_ENCRYPTION_KEY"])
    assert "# " in out.read_text()  # commented
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    refused = run([sys.executable, SCRIPTS / "generate-secure-env.py", "--environment", "staging", "--output", out])
    assert refused.returncode == 1 and parse_env_file(out) == values
    run([sys.executable, SCRIPTS / "generate-secure-env.py", "--environment", "staging", "--output", out, "--force"],
        check=True)
    assert len(list(tmp_path.glob(".env.production.backup.*"))) == 1
    remember_secret(parse_env_file(out)["REDIS_PASSWORD"])
    # The certificate paths do not exist here, so the check fails and says why.
    checked = run([sys.executable, SCRIPTS / "generate-secure-env.py", "--validate-only", "--output", out])
    assert checked.returncode == 1 and "REDIS_TLS_CA_PATH" in checked.stdout
    assert "Upgrade recommendations" in checked.stdout

    key = run([sys.executable, SCRIPTS / "generate-encryption-key.py"], check=True).stdout.strip()
    Fernet(key)
    rotated = run([sys.executable, SCRIPTS / "generate-encryption-key.py", "--rotate"],
                  {"REDIS_ENCRYPTION_KEY": key}, check=True).stdout.strip().split(",")
    assert rotated[1] == key and len(rotated) == 2


def test_compose_file_properties() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.secure.yml").read_text())
    redis_service = compose["services"]["redis"]
    command = redis_service["command"]
    flag = lambda name: command[command.index(name) + 1]  # noqa: E731
    assert flag("--port") == "0" and flag("--tls-port") == "6380"
    assert flag("--tls-protocols") == "TLSv1.2 TLSv1.3"
    assert flag("--protected-mode") == "yes" and flag("--appendonly") == "yes"
    assert flag("--tls-auth-clients") == "yes" and "--aclfile" in command
    assert "--requirepass" not in command
    assert "ports" not in redis_service  # no published Redis port
    assert redis_service["networks"] == ["redis_internal"]
    assert compose["networks"]["redis_internal"]["internal"] is True
    backend = compose["services"]["backend"]
    assert set(backend["networks"]) == {"redis_internal", "app_external"}
    mounts = redis_service["volumes"] + backend["volumes"]
    tls_mounts = [m for m in mounts if ":/tls/" in m]
    assert tls_mounts and all(m.endswith(":ro") for m in tls_mounts)
    assert not any("ca.key" in m for m in mounts)
    assert any(m.endswith(":/data") for m in redis_service["volumes"])
    text = (ROOT / "docker-compose.secure.yml").read_text()
    assert "secure_default_password" not in text and ":-" not in re.sub(r"\$\{[A-Z_]+:-[^}]*\}", "", text)
    for variable in ("REDIS_PASSWORD", "REDIS_ENCRYPTION_KEY"):
        assert re.search(r"\$\{" + variable + r":\?", text), variable  # required, never defaulted
    health = " ".join(redis_service["healthcheck"]["test"])
    assert "--tls" in health and "--user" in health and "grep -qx PONG" in health
    assert "REDISCLI_AUTH" in redis_service["environment"]


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _anchors(path: Path) -> set[str]:
    return {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in path.read_text().splitlines()
        if line.startswith("#")
    }


def test_every_doc_link_and_anchor_exists() -> None:
    checked = 0
    for doc in _doc_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            path = (doc.parent / file_part).resolve() if file_part else doc
            assert path.exists(), f"{doc.name}: broken link {target}"
            if anchor:
                assert anchor in _anchors(path), f"{doc.name}: missing anchor {target}"
            checked += 1
    assert checked >= 10


QUICKSTART_SKIPPED = {
    "scripts/demo.sh",  # builds a release wheel: the suite already runs what it runs
    "source scripts/_env.sh && maturin develop --release",  # the suite runs against a build already
}


def test_quickstart_commands_run(tmp_path) -> None:
    text = (ROOT / "docs" / "quickstart.md").read_text()
    commands = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(commands) >= 5
    # A project-shaped folder: the scripts, and state (certs, .env.secure) kept in it.
    (tmp_path / "scripts").symlink_to(SCRIPTS)
    shutil.copy(ROOT / "docker-compose.secure.yml", tmp_path)
    env = {"SECURE_REDIS_HOME": str(tmp_path), "SECURE_REDIS_PORT": str(free_port()), "SECURE_REDIS_NO_DOCKER": "1"}
    try:
        ran = 0
        for command in commands:
            if command in QUICKSTART_SKIPPED:
                continue
            done = run(["bash", "-c", command], env, cwd=tmp_path, timeout=180)
            assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
            ran += 1
        assert ran >= 4
        values = parse_env_file(tmp_path / ".env.secure")
        remember_secret(values["REDIS_PASSWORD"])
    finally:
        run(["bash", "-c", "scripts/setup-secure-redis.sh --stop"], env, cwd=tmp_path)
