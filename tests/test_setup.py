"""The tooling: init-redis-tls.sh, setup-secure-redis.sh (without Docker, as in CI), the env and
key generators, docker-compose.secure.yml, and the docs' links and quickstart commands."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import redis
import yaml
from cryptography import x509
from cryptography.fernet import Fernet

import secure_redis as sr
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
        "ca.crt", "ca.key", "client.crt", "client.key", "healthcheck.crt", "healthcheck.key", "redis.crt", "redis.key"
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
    # The Redis container's healthcheck has a client pair of its own, not the application's.
    health = x509.load_pem_x509_certificate((out / "healthcheck.crt").read_bytes())
    assert health.public_key().public_numbers() not in (
        client.public_key().public_numbers(), server.public_key().public_numbers())
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in health.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    refused = run([SCRIPTS / "init-redis-tls.sh", "--out", out])
    assert refused.returncode == 1 and "--force" in refused.stderr
    run([SCRIPTS / "init-redis-tls.sh", "--out", out, "--force"], check=True)


def test_init_redis_tls_renew_keeps_the_ca(tmp_path) -> None:
    out = tmp_path / "certs"
    run([SCRIPTS / "init-redis-tls.sh", "--out", out, "redis"], check=True)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    renewed = run([SCRIPTS / "init-redis-tls.sh", "--renew", "--out", out, "redis"], check=True)
    assert "reusing the CA" in renewed.stdout and "warning" not in renewed.stderr
    after = {path.name: path.read_bytes() for path in out.iterdir()}
    assert sorted(after) == sorted(before)
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    for name in ("redis.crt", "redis.key", "client.crt", "client.key", "healthcheck.crt", "healthcheck.key"):
        assert after[name] != before[name], name
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), name
    # The new leaves verify against the CA the clients already trust (a saved copy of it).
    old_ca = tmp_path / "old-ca.crt"
    old_ca.write_bytes(before["ca.crt"])
    verified = subprocess.run(["openssl", "verify", "-CAfile", old_ca, out / "redis.crt", out / "client.crt",
                               out / "healthcheck.crt"], capture_output=True, text=True)
    assert verified.returncode == 0 and verified.stdout.count(": OK") == 3, verified.stdout + verified.stderr
    ca = x509.load_pem_x509_certificate(after["ca.crt"])
    leaf = x509.load_pem_x509_certificate(after["redis.crt"])
    assert ca.not_valid_after_utc > leaf.not_valid_after_utc  # the CA outlives what it signs
    assert run([SCRIPTS / "init-redis-tls.sh", "--renew", "--force", "--out", out]).returncode == 2
    (out / "ca.key").unlink()
    refused = run([SCRIPTS / "init-redis-tls.sh", "--renew", "--out", out, "redis"])
    assert refused.returncode == 1 and "ca.key is missing" in refused.stderr
    assert (out / "redis.crt").read_bytes() == after["redis.crt"]  # nothing replaced
    missing = run([SCRIPTS / "init-redis-tls.sh", "--renew", "--out", tmp_path / "empty"])
    assert missing.returncode == 1 and "ca.crt is missing" in missing.stderr


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
    for command in (("CONFIG", "GET", "maxmemory"), ("FLUSHALL",), ("KEYS", "*"), ("ACL", "LIST"), ("SHUTDOWN",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
        app.eval("return redis.call('FLUSHALL')", 0)  # a script runs as the user that sent it
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
    # Stopped is not insecure: its own exit code, and how to start it, with no URL to change.
    down = run([SCRIPTS / "setup-secure-redis.sh", "--status"], env)
    assert down.returncode == 3, down.stdout + down.stderr
    assert "UNREACHABLE" in down.stdout and "NOT SECURE" not in down.stdout
    assert "start it with scripts/setup-secure-redis.sh" in down.stdout and "redis.conf" in down.stdout
    assert "REDIS_URL=rediss://redis.internal" not in down.stdout + down.stderr


# What the setup's application user must still be refused: data types and key commands the
# cache never sends (the old +@write/+@keyspace granted them), Pub/Sub, and everything
# administrative. Checked with ACL DRYRUN, which refuses without counting a NOPERM.
NOT_THE_CACHES = [
    ("HSET", "k", "f", "v"), ("LPUSH", "k", "v"), ("SREM", "k", "v"), ("INCR", "k"), ("APPEND", "k", "v"),
    ("RENAME", "a", "b"), ("PERSIST", "k"), ("COPY", "a", "b"), ("MOVE", "k", "1"),
    ("SORT", "k"), ("DUMP", "k"), ("RESTORE", "k", "0", "x"), ("PUBLISH", "ch", "x"), ("SUBSCRIBE", "ch"),
    ("KEYS", "*"), ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "maxmemory"), ("EVALSHA", "0" * 40, "0"),
    ("SCRIPT", "FLUSH"), ("FUNCTION", "LIST"), ("FCALL", "f", "0"), ("ACL", "LIST"), ("CLIENT", "LIST"), ("CLIENT", "PAUSE", "10"), ("MONITOR",),
    ("DEBUG", "SLEEP", "0"), ("SHUTDOWN",), ("SWAPDB", "0", "1"), ("MIGRATE", "h", "1", "k", "0", "1"),
]
# What it sends that the test below cannot provoke (CLIENT KILL fences a connection given up
# after a timeout): allowed, by the same DRYRUN.
ALSO_THE_CACHES = [("CLIENT", "KILL", "ID", "1", "ADDR", "127.0.0.1:1"), ("CLIENT", "ID"), ("SELECT", "1"),
                   ("SET", "k", "v", "NX", "PX", "100"), ("SADD", "k", "v"), ("SMEMBERS", "k"),
                   ("EXPIRE", "k", "10", "GT"), ("EVAL", "return 1", "0")]


async def test_the_app_user_runs_the_whole_cache_surface_and_nothing_else(setup_home) -> None:
    """The users.acl the setup writes: every operation of GenericRedisCache (with and without a
    namespace, in database 0 and 1), of AIResponseCache and of `check --connect`, L1 coherence
    included, without one NOPERM on the server; and no command the cache does not send."""
    home, env = setup_home
    run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    env_file = home / ".env.secure"
    values = parse_env_file(env_file)
    remember_secret(values["REDIS_PASSWORD"])
    remember_secret(values["REDIS_ENCRYPTION_KEY"])
    admin_values = parse_env_file(home / ".secure-redis" / "admin.env")
    admin = _app_client(home, values, username=admin_values["REDIS_ADMIN_USERNAME"],
                        password=remember_secret(admin_values["REDIS_ADMIN_PASSWORD"]))
    app_user = values["REDIS_ACL_USERNAME"]
    config = sr.SecurityConfig(
        redis_auth=values["REDIS_PASSWORD"], encryption_key=values["REDIS_ENCRYPTION_KEY"],
        tls_ca_path=values["REDIS_TLS_CA_PATH"], tls_cert_path=values["REDIS_TLS_CERT_PATH"],
        tls_key_path=values["REDIS_TLS_KEY_PATH"], acl_username=app_user,
        min_tls_version=values["REDIS_TLS_MIN_VERSION"],
    )
    url = values["REDIS_URL"]
    caches = []
    try:
        cache = sr.GenericRedisCache(url, security_config=config)
        other = sr.GenericRedisCache(url, security_config=config)  # another process's view
        tenant = sr.GenericRedisCache(url.rsplit("/", 1)[0] + "/1", security_config=config, namespace="tenant:")
        ai = sr.AIResponseCache(redis_url=url, security_config=config)
        caches += [cache, other, tenant, ai]
        for each in caches:
            assert await each.connect()
        await cache.set("k", {"v": 1}, ttl=60)
        await cache.set_many({"a:1": 1, "a:2": 2, "b": "x"})
        assert await cache.get("k") == {"v": 1}
        assert await cache.get_many(["k", "a:1", "missing"]) == {"k": {"v": 1}, "a:1": 1}
        assert await cache.exists("b") and 0 < await cache.get_ttl("k") <= 60
        assert await other.get("k") == {"v": 1}
        await cache.set("k", {"v": 2})
        for each in (cache, other):  # L1 kept coherent through the invalidation link
            assert (await each.get_cache_stats())["memory"]["coherent"]
        assert await other.get("k") == {"v": 2}
        assert await cache.invalidate_pattern("a:*") == 2
        assert await cache.delete("b") and not await cache.exists("b")
        assert await cache.ping() and (await cache.validate_security()).is_valid
        await tenant.set("t", 1)
        await tenant.set_many({"u:1": 1, "u:2": 2})
        assert await tenant.get("t") == 1 and await tenant.invalidate_pattern("u:*") == 2
        tenant_stats = await tenant.get_cache_stats()
        assert (await tenant.validate_security()).is_valid
        key = ai.build_key("some document", "summarize", {})
        await ai.set(key, "a summary")
        await ai.set_many({ai.build_key("doc", "qa", {"question": "q"}): "an answer"})
        assert await ai.get(key) == "a summary"
        ai_stats = (await ai.get_cache_stats())["redis"]
        assert ai_stats["status"] == "connected" and ai_stats["keys"] == 2
        assert ai_stats["memory_used_bytes"] is not None and ai_stats["connected_clients"] is not None  # INFO
        assert await ai.invalidate_by_operation("qa") == 1 and await ai.invalidate_pattern("op:summarize") == 1

        async def load() -> str:
            return "loaded"

        # cache-aside: the loader lock (SET NX PX, EVAL compare-and-delete), tags (SADD, EXPIRE,
        # EVAL of SMEMBERS + DEL), an early-refresh envelope
        assert await cache.get_or_set("aside", load, 60, lock=True, tags=["t"], early_refresh=5) == "loaded"
        assert await cache.invalidate_tags(["t"]) == 1 and await cache.get("aside") is None
        # tenant scopes: the key record (GETRANGE, SET NX), scoped entries, tags, forget
        # (DEL of the record, SCAN + UNLINK of the entries), a scoped AI cache
        scoped = cache.scope("acme")
        await scoped.set("s", 1, tags=["t"])
        assert await other.scope("acme").get("s") == 1
        assert await scoped.invalidate_tags(["t"]) == 1
        await scoped.set_many({"s:1": 1, "s:2": 2})
        assert await scoped.invalidate_pattern("s:*") == 2
        await ai.scope("acme").set(ai.scope("acme").build_key("doc", "qa", {}), "scoped answer")
        assert await cache.forget_scope("acme", wait=True) == 1
        await ai.set(key, "again")
        assert await ai.delete(key)
        await ai.set(key, "and again")
        assert await ai.clear() == 1
        assert (await cache.get_cache_stats())["redis"]["keys"] is not None  # DBSIZE
        assert await tenant.clear() == 1 and await cache.clear() >= 1
        assert tenant_stats["redis"]["keys"] == 1  # SCAN counts a namespace's keys
    finally:
        for each in caches:
            await each.disconnect()
    check = run(["secure-redis", "check", "--env-file", env_file, "--connect"], env)
    assert check.returncode == 0, check.stdout
    assert "errorstat_NOPERM" not in admin.info("errorstats"), admin.info("errorstats")

    def dryrun(command) -> str:
        return admin.execute_command("ACL", "DRYRUN", app_user, *command).decode()

    for command in ALSO_THE_CACHES:
        assert dryrun(command) == "OK", command
    # EVAL is granted for the cache-aside scripts; every command a script runs is checked
    # against the same user, so a script can do nothing the user cannot.
    app = _app_client(home, values)
    for script in ("return redis.call('FLUSHALL')", "return redis.call('HSET', 'k', 'f', 'v')",
                   "return redis.call('CONFIG', 'GET', 'maxmemory')", "return redis.call('KEYS', '*')"):
        with pytest.raises(redis.exceptions.ResponseError, match="can't run this command|not allowed from script"):
            app.eval(script, 0)
    app.close()
    for command in NOT_THE_CACHES:
        assert dryrun(command) != "OK", command
    (line,) = [line for line in admin.acl_list() if line.startswith(f"user {app_user} ")]
    assert " resetchannels " in line and "&" not in line  # no Pub/Sub channel
    admin.close()
    # docs/infrastructure/redis-security.md shows the line this test proved, rule for rule.
    written = next(line for line in (home / ".secure-redis" / "users.acl").read_text().splitlines()
                   if line.startswith(f"user {app_user} "))
    documented = re.search(r"^user cache-app on >PASSWORD (.+)$",
                           (ROOT / "docs" / "infrastructure" / "redis-security.md").read_text(), re.M)
    assert documented and written.split(" ", 4)[4] == documented.group(1)


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
    # Certificates in a folder that does not exist: the check below must not find the ones a demo
    # run left in the checkout's certs/.
    run([sys.executable, SCRIPTS / "generate-secure-env.py", "--environment", "staging", "--output", out, "--force",
         "--certs", tmp_path / "no-certs"], check=True)
    assert len(list(tmp_path.glob(".env.production.backup.*"))) == 1
    remember_secret(parse_env_file(out)["REDIS_PASSWORD"])
    # The certificate paths do not exist, so the check fails and says why.
    checked = run([sys.executable, SCRIPTS / "generate-secure-env.py", "--validate-only", "--output", out])
    assert checked.returncode == 1 and "REDIS_TLS_CA_PATH" in checked.stdout
    assert "Upgrade recommendations" in checked.stdout

    key = run([sys.executable, SCRIPTS / "generate-encryption-key.py"], check=True).stdout.strip()
    Fernet(key)
    rotated = run([sys.executable, SCRIPTS / "generate-encryption-key.py", "--rotate"],
                  {"REDIS_ENCRYPTION_KEY": key}, check=True).stdout.strip().split(",")
    assert rotated[1] == key and len(rotated) == 2


COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """What `docker compose` does to the file: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        if op == ":?" and not env.get(name):
            raise KeyError(f"{name}: {arg}")
        if op == ":-":
            return env.get(name) or arg
        return env.get(name, "")

    return COMPOSE_VARIABLE.sub(substitute, value)


COMPOSE_ENV = {  # what setup-secure-redis.sh passes (its compose() and --env-file)
    "REDIS_PASSWORD": "p", "REDIS_ACL_USERNAME": "secure-redis-app", "REDIS_ENCRYPTION_KEY": "k",
    "SECURE_REDIS_UID": "1000", "SECURE_REDIS_GID": "1000",
}


def load_compose(**env: str) -> dict:
    return interpolate(yaml.safe_load((ROOT / "docker-compose.secure.yml").read_text()), {**COMPOSE_ENV, **env})


def test_compose_file_properties() -> None:
    compose = load_compose()
    redis_service = compose["services"]["redis"]
    command = redis_service["command"]
    flag = lambda name: command[command.index(name) + 1]  # noqa: E731
    assert flag("--port") == "0" and flag("--tls-port") == "6380"
    assert flag("--tls-protocols") == "TLSv1.2 TLSv1.3"
    # --production: setup passes SECURE_REDIS_TLS_PROTOCOLS=TLSv1.3 and the server refuses 1.2.
    production = load_compose(SECURE_REDIS_TLS_PROTOCOLS="TLSv1.3")["services"]["redis"]["command"]
    assert production[production.index("--tls-protocols") + 1] == "TLSv1.3"
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
    assert "--tls" in health and "--user secure-redis-health" in health and "grep -qx PONG" in health
    # Its password comes from its own file into REDISCLI_AUTH (never argv), not from the app's.
    assert 'REDISCLI_AUTH="$(cat /run/secrets/healthcheck-password)"' in health
    # The healthcheck is a client with a pair of its own: never the server's (serverAuth only),
    # never the application's.
    assert "--cert /tls/healthcheck.crt --key /tls/healthcheck.key" in health and "/tls/redis.key" not in health
    # The Redis container holds nothing of the application's identity: no password, no user
    # name, no client key.
    app_identity = load_compose(REDIS_PASSWORD="the-app-password-0123456789", REDIS_ACL_USERNAME="the-app-user")
    redis_text = yaml.safe_dump(app_identity["services"]["redis"])
    assert "the-app-password-0123456789" not in redis_text and "the-app-user" not in redis_text
    assert "environment" not in redis_service
    assert not any("client.key" in m or "client.crt" in m for m in redis_service["volumes"])
    # Both containers run as the owner of the 0600 keys, and nobody defaults to root.
    for service in (redis_service, backend):
        assert service["user"] == "1000:1000"
    for variable in ("SECURE_REDIS_UID", "SECURE_REDIS_GID"):
        with pytest.raises(KeyError):
            load_compose(**{variable: ""})
    assert (ROOT / backend["build"]["dockerfile"]).is_file()


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path, from `host:container[:ro]` volume strings."""
    pairs = [volume.split(":")[:2] for volume in service["volumes"]]
    return {container: host for host, container in pairs}


def test_compose_healthcheck_has_its_own_user_certificate_and_password(setup_home, tmp_path) -> None:
    """The compose file's own redis-server flags and healthcheck command, run on this host with
    the files the setup really writes (certificates, users.acl, healthcheck.password)."""
    home, env = setup_home
    run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    certs, state = home / "certs", home / ".secure-redis"
    # Certificates made before the healthcheck had its own pair get one from the same CA.
    ca = (certs / "ca.crt").read_bytes()
    for name in ("healthcheck.crt", "healthcheck.key"):
        (certs / name).unlink()
    upgraded = run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    assert "adding the healthcheck's client pair" in upgraded.stdout and (certs / "ca.crt").read_bytes() == ca
    assert stat.S_IMODE((certs / "healthcheck.key").stat().st_mode) == 0o600
    run([SCRIPTS / "setup-secure-redis.sh", "--stop"], env, check=True)  # the compose command runs it next
    values, admin = parse_env_file(home / ".env.secure"), parse_env_file(state / "admin.env")
    remember_secret(values["REDIS_PASSWORD"])
    remember_secret(admin["REDIS_ADMIN_PASSWORD"])
    password_file = state / "healthcheck.password"
    health_password = remember_secret(password_file.read_text())
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600 and len(health_password) == 48
    assert health_password not in (state / "users.acl").read_text() + (home / ".env.secure").read_text()
    health_cert = x509.load_pem_x509_certificate((certs / "healthcheck.crt").read_bytes())
    server_cert = x509.load_pem_x509_certificate((certs / "redis.crt").read_bytes())
    client_auth = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    assert client_auth in health_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert client_auth not in server_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    (state / "redis-data").mkdir(exist_ok=True)

    service = load_compose(SECURE_REDIS_CERTS=str(certs), SECURE_REDIS_STATE=str(state))["services"]["redis"]
    mounts = _mounts(service)
    port = free_port()
    command = [mounts.get(arg, arg) for arg in service["command"]]
    command[command.index("--tls-port") + 1] = str(port)
    assert "--tls-auth-clients" in command and command[command.index("--tls-auth-clients") + 1] == "yes"
    command += ["--bind", "127.0.0.1", "--logfile", str(tmp_path / "redis.log")]
    assert command[0] == "redis-server"
    health = service["healthcheck"]["test"][1]
    for container, host in mounts.items():
        health = health.replace(container, host)
    assert "-p 6380" in health and str(password_file) in health
    health = health.replace("-p 6380", f"-p {port}")
    # The same check with another password file: a wrong password, and none at all.
    wrong, empty = tmp_path / "wrong.password", tmp_path / "empty.password"
    wrong.write_text("Wrong-password-0123456789-abcdef")
    empty.write_text("")

    def healthy(probe: str = health) -> bool:
        # No REDIS_* variable reaches it: the healthcheck needs nothing but its mounted files.
        env = {"PATH": os.environ["PATH"]}
        return subprocess.run(["sh", "-c", probe], env=env, capture_output=True, timeout=30).returncode == 0

    def client(**options) -> redis.Redis:
        defaults = dict(username="secure-redis-health", password=health_password,
                        ssl_certfile=str(certs / "healthcheck.crt"), ssl_keyfile=str(certs / "healthcheck.key"))
        return _app_client(home, {**values, "REDIS_URL": f"rediss://localhost:{port}/0"}, **{**defaults, **options})

    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not healthy() and time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "redis.log").read_text()
            time.sleep(0.2)
        assert healthy()
        assert not healthy(health.replace(str(password_file), str(wrong)))
        assert not healthy(health.replace(str(password_file), str(empty)))  # NOAUTH must fail too
        # The server's pair (serverAuth only) could never pass.
        with_server_pair = health.replace(str(certs / "healthcheck."), str(certs / "redis."))
        assert with_server_pair != health and not healthy(with_server_pair)

        # The healthcheck user may PING and nothing else: no key, no channel, no server command.
        health_client = client()
        assert health_client.ping()
        for refused in (("GET", "probe"), ("SET", "probe", "1"), ("EXISTS", "probe"), ("SCAN", "0"),
                        ("DBSIZE",), ("INFO",), ("CLIENT", "LIST"), ("PUBLISH", "ch", "x"), ("ACL", "LIST"),
                        ("CONFIG", "GET", "maxmemory")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                health_client.execute_command(*refused)
        health_client.close()
        admin_client = client(username=admin["REDIS_ADMIN_USERNAME"], password=admin["REDIS_ADMIN_PASSWORD"])
        (line,) = [line for line in admin_client.acl_list() if line.startswith("user secure-redis-health ")]
        assert line.endswith(" resetchannels -@all +ping") and not re.search(r" [~%&]", line), line
        admin_client.close()
        # And the app's password is not the healthcheck's: the two identities are apart.
        with pytest.raises(redis.exceptions.AuthenticationError):
            client(password=values["REDIS_PASSWORD"]).ping()
    finally:
        server.terminate()
        server.wait(10)


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / "examples" / "Dockerfile.dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch(prefix, pattern) or (pattern.startswith("**/") and fnmatch(parts[i], pattern[3:]))
        for pattern in patterns
        for i, prefix in enumerate(prefixes)
    )


def test_dockerfile_copies_what_the_build_needs() -> None:
    """`maturin build` in the image needs every file the workspace's manifests and pyproject.toml refer to."""
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"Cargo.toml", "Cargo.lock", "pyproject.toml"}
    defaults = {"bench": "benches", "test": "tests", "example": "examples", "bin": "src/bin"}
    for member in workspace["workspace"]["members"]:
        cargo = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        package = cargo["package"]
        member_files = {"Cargo.toml", cargo.get("lib", {}).get("path", "src/lib.rs")}
        for kind, folder in defaults.items():
            for target in cargo.get(kind, []):
                member_files.add(target.get("path", f"{folder}/{target['name']}.rs"))
        if isinstance(package.get("build"), str) or (ROOT / member / "build.rs").exists():
            member_files.add(package.get("build", "build.rs"))
        for key in ("readme", "license-file"):
            if isinstance(package.get(key), str):
                member_files.add(package[key])
        needed |= {f"{member}/{path}" for path in member_files}
    assert pyproject["tool"]["maturin"]["manifest-path"] in needed
    readme = pyproject["project"].get("readme")
    needed.add(readme if isinstance(readme, str) else readme["file"])
    python_source = pyproject["tool"]["maturin"]["python-source"]
    needed.add(f"{python_source}/secure_redis/__init__.py")
    assert "crates/core/benches/codec.rs" in needed  # the [[bench]] the old image forgot

    dockerfile = (ROOT / "examples" / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    build = next(stage for stage in stages if "maturin build" in stage)
    workdir = re.search(r"^WORKDIR (\S+)", build, re.M).group(1)
    placed: dict[str, str] = {}  # image path -> project path, for every copied file
    for line in re.findall(r"^COPY (?!--from)(.+)$", build, re.M):
        *sources, dest = line.split()
        base = Path(workdir, dest) if not dest.startswith("/") else Path(dest)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            origin = ROOT / source
            files = [origin] if origin.is_file() else [p for p in origin.rglob("*") if p.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                target = base / file.name if origin.is_file() else base / file.relative_to(origin)
                placed[target.as_posix()] = relative
    patterns = _dockerignore_patterns()
    for path in sorted(needed):
        assert (ROOT / path).is_file(), path
        assert placed.get(f"{workdir}/{path}") == path, f"the Dockerfile does not copy {path} to {workdir}/{path}"
        assert not _ignored(path, patterns), f"{path} is excluded from the build context"
    # Secrets and build output stay out of the context.
    for path in ("certs/ca.key", ".env.secure", ".secure-redis/admin.env", ".venv/bin/python", "target/release"):
        assert _ignored(path, patterns), path
    # The runtime stage runs the app the compose file expects, with the pinned versions.
    runtime = stages[-1]
    assert "COPY examples /app/examples" in runtime and (ROOT / "examples" / "app.py").is_file()
    assert '"examples.app:app"' in runtime
    pins = dict(
        line.split("==") for line in (ROOT / "requirements-dev.txt").read_text().splitlines() if "==" in line
    )
    for name, version in re.findall(r"([A-Za-z_-]+)==([0-9][^\s]*)", dockerfile):
        assert pins[name] == version, f"{name}=={version} in the Dockerfile, {pins[name]} in requirements-dev.txt"


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


OWN_PROJECT = "## Using the wheel in your own project"


def test_quickstart_commands_run(tmp_path) -> None:
    # The own-project section works in another folder and serves an app: its own test below.
    text = (ROOT / "docs" / "quickstart.md").read_text().split(OWN_PROJECT)[0]
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


def test_quickstart_own_project_section(tmp_path) -> None:
    """The "own project" section, run as written in a fresh folder: the setup line, its app.py
    under its uvicorn line, its curl lines (answers as their comments say) and its redis-cli
    block, which must show a Fernet token. Building and installing the wheel are left out: the
    suite runs against a build already, and scripts/build-wheel.sh checks the wheel itself."""
    if shutil.which("curl") is None or shutil.which("redis-cli") is None:
        pytest.skip("needs curl and redis-cli")
    text = (ROOT / "docs" / "quickstart.md").read_text()
    section = text.split(OWN_PROJECT)[1].split("\n## ")[0]
    (tmp_path / "app.py").write_text(re.findall(r"```python\n(.*?)```", section, re.S)[0])
    build, install, setup, serve, requests, cli = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert "scripts/build-wheel.sh" in build and "[fastapi]" in install
    port = free_port()
    env = {"SECURE_REDIS_SRC": str(ROOT), "SECURE_REDIS_PORT": str(free_port())}
    server = None
    try:
        done = run(["bash", "-c", setup], env, cwd=tmp_path, timeout=180)
        assert done.returncode == 0, f"{setup}\n{done.stdout}\n{done.stderr}"
        remember_secret(parse_env_file(tmp_path / ".env.secure")["REDIS_PASSWORD"])
        assert serve.strip() == "uvicorn app:app --env-file .env.secure"
        server_env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SECURE_REDIS_", "ENVIRONMENT"))}
        server_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{server_env.get('PATH', '')}"
        server = subprocess.Popen(
            ["bash", "-c", f"exec {serve.strip()} --port {port}"], cwd=tmp_path, env=server_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        for line in requests.strip().splitlines():
            command, _, expected = line.partition("#")
            done = run(["bash", "-c", command.replace(":8000/", f":{port}/")], cwd=tmp_path, timeout=30)
            assert done.stdout.strip() == expected.strip(), f"{command}: {done.stdout} {done.stderr}"
        done = run(["bash", "-c", cli], cwd=tmp_path, timeout=30)
        token = done.stdout.strip()
        assert done.returncode == 0 and token.startswith("gAAAAA"), f"{done.stdout}\n{done.stderr}"
        key = parse_env_file(tmp_path / ".env.secure")["REDIS_ENCRYPTION_KEY"].split(",")[0]
        Fernet(key.encode()).decrypt(token.encode())  # a Fernet token under the app's key
        assert "launch" not in token
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        run(["bash", "-c", "scripts/setup-secure-redis.sh --stop"],
            {"SECURE_REDIS_HOME": str(tmp_path), "SECURE_REDIS_NO_DOCKER": "1"}, cwd=ROOT)


@pytest.mark.parametrize(
    "tool, hint",
    [("openssl", "apt-get install openssl"), ("python3", "apt-get install python3"),
     ("sha256sum", "apt-get install coreutils")],
)
def test_missing_dependency_is_named_with_its_fix(tmp_path, tool, hint) -> None:
    """A PATH with everything this machine has except one tool."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in [Path(sys.executable).parent, *map(Path, os.environ["PATH"].split(os.pathsep))]:
        if not folder.is_dir():
            continue
        for program in folder.iterdir():
            link = bin_dir / program.name
            if program.name != tool and not link.exists() and os.access(program, os.X_OK) and program.is_file():
                link.symlink_to(program)
    done = run([SCRIPTS / "setup-secure-redis.sh"],
               {"PATH": str(bin_dir), "SECURE_REDIS_HOME": str(tmp_path / "home"), "SECURE_REDIS_NO_DOCKER": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{tool} is missing" in done.stderr and hint in done.stderr
    assert not (tmp_path / "home" / ".env.secure").exists()


def test_admin_user_rotates_the_app_password_as_documented(setup_home) -> None:
    """docs/operations.md, "Password rotation": add the new password, deploy, remove the old one,
    rewrite users.acl; the app user itself may not touch ACLs."""
    home, env = setup_home
    run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    env_file, admin_env = home / ".env.secure", home / ".secure-redis" / "admin.env"
    values, admin = parse_env_file(env_file), parse_env_file(admin_env)
    old = remember_secret(values["REDIS_PASSWORD"])
    remember_secret(admin["REDIS_ADMIN_PASSWORD"])
    assert stat.S_IMODE(admin_env.stat().st_mode) == 0o600
    assert admin["REDIS_ADMIN_PASSWORD"] != old and "REDIS_ADMIN" not in env_file.read_text()
    acl_text = (home / ".secure-redis" / "users.acl").read_text()
    assert admin["REDIS_ADMIN_PASSWORD"] not in acl_text and "user secure-redis-admin on #" in acl_text

    # The admin user manages ACLs and reads no data.
    admin_client = _app_client(home, values, username=admin["REDIS_ADMIN_USERNAME"],
                               password=admin["REDIS_ADMIN_PASSWORD"])
    assert admin_client.ping()
    with pytest.raises(redis.exceptions.NoPermissionError):
        admin_client.get("probe")
    with pytest.raises(redis.exceptions.NoPermissionError):
        admin_client.execute_command("FLUSHALL")
    admin_client.close()

    new = remember_secret(run(["secure-redis", "generate-password", "--length", "32"], check=True).stdout.strip())
    digest = lambda secret: hashlib.sha256(secret.encode()).hexdigest()  # noqa: E731
    added = run([SCRIPTS / "setup-secure-redis.sh", "--admin", "ACL", "SETUSER", "secure-redis-app", f"#{digest(new)}"],
                env)
    assert added.returncode == 0 and added.stdout.strip() == "OK", added.stdout + added.stderr
    for secret in (old, new):  # both work during the deploy
        client = _app_client(home, values, password=secret)
        assert client.ping()
        client.close()
    env_file.write_text(env_file.read_text().replace(f"REDIS_PASSWORD={old}", f"REDIS_PASSWORD={new}"))
    removed = run([SCRIPTS / "setup-secure-redis.sh", "--admin", "ACL", "SETUSER", "secure-redis-app",
                   f"!{digest(old)}"], env)
    assert removed.returncode == 0 and removed.stdout.strip() == "OK", removed.stdout + removed.stderr
    with pytest.raises(redis.exceptions.AuthenticationError):
        _app_client(home, values, password=old).ping()
    assert run([SCRIPTS / "setup-secure-redis.sh", "--check"], env).returncode == 0

    # Re-running setup writes users.acl from .env.secure: a restart keeps only the new password.
    run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    acl_text = (home / ".secure-redis" / "users.acl").read_text()
    assert digest(new) in acl_text and digest(old) not in acl_text
    run([SCRIPTS / "setup-secure-redis.sh", "--stop"], env, check=True)
    run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    client = _app_client(home, values, password=new)
    assert client.ping()
    client.close()
    with pytest.raises(redis.exceptions.AuthenticationError):
        _app_client(home, values, password=old).ping()
    # ACL LOAD after editing the file is the other documented way; the app user may not.
    loaded = run([SCRIPTS / "setup-secure-redis.sh", "--admin", "ACL", "LOAD"], env)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "OK", loaded.stdout + loaded.stderr
    app = _app_client(home, values, password=new)
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.execute_command("ACL", "SETUSER", "secure-redis-app", "+@all")
    app.close()
    demo = run([SCRIPTS / "setup-secure-redis.sh", "--demo"], env, timeout=120)
    assert demo.returncode == 0 and "from cache" in demo.stdout, demo.stdout + demo.stderr
    assert new not in demo.stdout + demo.stderr


def test_certificate_renewal_as_documented(setup_home) -> None:
    """docs/operations.md, "Certificate renewal": --renew, restart through the setup, --check."""
    home, env = setup_home
    run([SCRIPTS / "setup-secure-redis.sh"], env, check=True, timeout=180)
    certs = home / "certs"
    ca_before = (certs / "ca.crt").read_bytes()
    server_before = (certs / "redis.crt").read_bytes()
    run([SCRIPTS / "init-redis-tls.sh", "--renew", "--out", certs, "localhost"], env, check=True)
    run([SCRIPTS / "setup-secure-redis.sh", "--stop"], env, check=True)
    restarted = run([SCRIPTS / "setup-secure-redis.sh"], env, timeout=180)
    assert restarted.returncode == 0 and "verdict             SECURE" in restarted.stdout, restarted.stdout
    assert run([SCRIPTS / "setup-secure-redis.sh", "--check"], env).returncode == 0
    assert (certs / "ca.crt").read_bytes() == ca_before
    values = parse_env_file(home / ".env.secure")
    remember_secret(values["REDIS_PASSWORD"])
    context = ssl.create_default_context(cafile=values["REDIS_TLS_CA_PATH"])
    context.load_cert_chain(values["REDIS_TLS_CERT_PATH"], values["REDIS_TLS_KEY_PATH"])
    port = int(values["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            served = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)).encode()
    new_server = x509.load_pem_x509_certificate((certs / "redis.crt").read_bytes())
    assert x509.load_pem_x509_certificate(served) == new_server
    assert new_server != x509.load_pem_x509_certificate(server_before)


FAKE_DOCKER = """#!/usr/bin/env bash
# Stands in for the docker client (no engine here): records each call and the variables compose
# would interpolate, answers `info` and `compose version` as a working engine with the plugin.
printf '%s|uid=%s gid=%s tls=%s certs=%s\\n' "$*" "${SECURE_REDIS_UID:-}" "${SECURE_REDIS_GID:-}" \\
    "${SECURE_REDIS_TLS_PROTOCOLS:-}" "${SECURE_REDIS_CERTS:-}" >> "$FAKE_DOCKER_LOG"
if [ "$1 $2" = "compose version" ] && [ -n "${FAKE_DOCKER_NO_COMPOSE:-}" ]; then exit 1; fi
exit 0
"""


def test_docker_mode_runs_everything_inside_the_compose_network(tmp_path) -> None:
    """The Docker branch, with a recording docker client: what it asks compose to do."""
    bin_dir, log, home = tmp_path / "bin", tmp_path / "docker.log", tmp_path / "home"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SECURE_REDIS_HOME": str(home), "FAKE_DOCKER_LOG": str(log)}
    done = run([SCRIPTS / "setup-secure-redis.sh", "--production"], env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mode: docker" in done.stdout and (home / ".secure-redis" / "mode").read_text().strip() == "docker"
    values = parse_env_file(home / ".env.secure")
    remember_secret(values["REDIS_PASSWORD"])
    assert values["REDIS_URL"] == "rediss://redis:6380/0"
    server = x509.load_pem_x509_certificate((home / "certs" / "redis.crt").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "redis" in sans.get_values_for_type(x509.DNSName)

    compose = f"compose -f {ROOT / 'docker-compose.secure.yml'} --env-file {home / '.env.secure'}"
    calls = log.read_text().splitlines()
    ids = f"uid={os.getuid()} gid={os.getgid()} tls=TLSv1.3 certs={home / 'certs'}"
    compose_calls = [c for c in calls if c.startswith("compose -f")]
    assert compose_calls and all(c.endswith(ids) for c in compose_calls), compose_calls
    commands = [c.split("|")[0].removeprefix(compose + " ") for c in compose_calls]
    assert commands[0] == "up -d --wait redis" and "build backend" in commands
    assert "run --rm -T backend secure-redis check --connect" in commands  # not from the host
    status = f"run --rm -T -v {home / '.secure-redis' / 'status'}:/status backend secure-redis status"
    assert commands[-1] == status + " --save /status/last-check.json"  # the report, in both modes

    log.write_text("")
    for flag, expected in (
        ("--status", status + " --save /status/last-check.json"),
        ("--check", "run --rm -T backend secure-redis check --connect"),
        ("--demo", "run --rm -T backend python examples/demo.py --no-env-file"),
    ):
        assert run([SCRIPTS / "setup-secure-redis.sh", flag], env).returncode == 0
        assert log.read_text().splitlines()[-1].split("|")[0] == f"{compose} {expected}", flag
    assert run([SCRIPTS / "setup-secure-redis.sh", "--admin", "ACL", "LIST"], env).returncode == 0
    admin_call = log.read_text().splitlines()[-1].split("|")[0]
    assert admin_call.startswith(f"{compose} exec -T -e REDISCLI_AUTH redis redis-cli")
    assert admin_call.endswith("--user secure-redis-admin ACL LIST")
    # Inside the Redis container the only client pair is the healthcheck's: never the app's.
    assert "--cert /tls/healthcheck.crt --key /tls/healthcheck.key" in admin_call and "client." not in admin_call
    admin_secret = remember_secret(parse_env_file(home / ".secure-redis" / "admin.env")["REDIS_ADMIN_PASSWORD"])
    assert admin_secret not in log.read_text() and values["REDIS_PASSWORD"] not in log.read_text()

    # The compose file those calls use interpolates with exactly these variables.
    rendered = load_compose(SECURE_REDIS_CERTS=str(home / "certs"), SECURE_REDIS_TLS_PROTOCOLS="TLSv1.3",
                            SECURE_REDIS_UID=str(os.getuid()), SECURE_REDIS_GID=str(os.getgid()))
    assert rendered["services"]["backend"]["user"] == f"{os.getuid()}:{os.getgid()}"
    redis_mounts = _mounts(rendered["services"]["redis"])
    for name in ("healthcheck.crt", "healthcheck.key"):  # what `--admin` and the healthcheck present
        assert redis_mounts[f"/tls/{name}"] == str(home / "certs" / name) and (home / "certs" / name).is_file()
    assert redis_mounts["/run/secrets/healthcheck-password"].endswith("/.secure-redis/healthcheck.password")

    no_plugin = run([SCRIPTS / "setup-secure-redis.sh", "--status"], {**env, "FAKE_DOCKER_NO_COMPOSE": "1"})
    assert no_plugin.returncode == 1 and "docker compose plugin is missing" in no_plugin.stderr
    assert "apt-get install docker-compose-plugin" in no_plugin.stderr
