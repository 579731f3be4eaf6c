"""No key or password on a command line: the documented commands keep secrets out of argv.

A poller thread reads /proc/<pid>/cmdline of every process (as any local user could) while the
commands run, and the tests assert that no registered secret was ever in one. Covers the key
rotation the docs show (extracted from docs/operations.md and redis-security.md, so a document
that goes back to passing keys as arguments fails here), `generate-key --rotate -` (stdin),
`check --url` without credentials (password from the environment) and `check --url -` (stdin),
and the refusals of key material and user-info given as arguments.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import secure_redis as sr
from conftest import find_secrets, remember_secret, stdout_prints_secrets

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "operations.md", ROOT / "docs" / "infrastructure" / "redis-security.md")
CLI = [sys.executable, "-m", "secure_redis"]


class CmdlinePoller:
    """Collects every distinct /proc/<pid>/cmdline seen until stopped (at most `limit` seconds,
    1 ms between sweeps). Any process counts: a secret in any argv is readable by anyone."""

    def __init__(self, limit: float = 120.0) -> None:
        self.cmdlines: set[str] = set()
        self.sweeps = 0
        self._limit = limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cmdline-poller", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self._limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        raw = handle.read()
                except OSError:  # the process ended meanwhile
                    continue
                if raw:
                    self.cmdlines.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            self.sweeps += 1
            self._stop.wait(0.001)

    def __enter__(self) -> "CmdlinePoller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def saw(self, fragment: str) -> bool:
        return any(fragment in line for line in self.cmdlines)

    def leaks(self) -> list[str]:
        return [line[:60] + "..." for line in self.cmdlines if find_secrets(line)]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "ENVIRONMENT", "ENFORCE_AUTH"))}
    env.update(extra)
    return env


def run(args: list[str], *, env: dict[str, str], stdin: str | None = None, prints_secret: bool = False):
    """Runs a command; the conftest wrapper checks its output for secrets (stdout exempt when
    it prints keys on purpose)."""
    with stdout_prints_secrets() if prints_secret else contextlib.nullcontext():
        return subprocess.run(args, input=stdin, env=env, capture_output=True, text=True, timeout=60)


def new_key() -> str:
    return remember_secret(sr.generate_encryption_key())


def documented_rotations() -> list[str]:
    """Every `REDIS_ENCRYPTION_KEY=...$(secure-redis generate-key --rotate ...)` in the docs."""
    found = []
    for doc in DOCS:
        found += re.findall(r'REDIS_ENCRYPTION_KEY="?\$\(secure-redis generate-key --rotate[^)]*\)"?', doc.read_text())
    return found


def test_the_documented_key_rotation_keeps_keys_out_of_argv() -> None:
    commands = documented_rotations()
    assert len(commands) >= 2, "docs/operations.md and redis-security.md each show the rotation"
    for command in commands:
        old, older = new_key(), new_key()
        # As an operator's shell runs it, with the CLI first on PATH.
        script = f'{command}\nprintf "%s" "$REDIS_ENCRYPTION_KEY"'
        env = clean_env(REDIS_ENCRYPTION_KEY=f"{old},{older}", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        with CmdlinePoller() as poller:
            done = run(["bash", "-c", script], env=env, prints_secret=True)
        # The CLI's own process (bash's cmdline holds the script text, so that would prove nothing).
        assert poller.saw("bin/secure-redis generate-key --rotate"), f"the poller never saw the CLI ({poller.sweeps} sweeps)"
        assert not poller.leaks(), f"{command!r} put a key on a command line: {poller.leaks()}"
        assert done.returncode == 0, done.stderr
        rotated = done.stdout.strip().split(",")
        remember_secret(rotated[0])
        assert rotated[1:] == [old, older] and rotated[0] not in (old, older), command


def test_rotate_reads_the_keys_from_stdin() -> None:
    old, older = new_key(), new_key()
    for stdin in (f"{old},{older}\n", f"{old}\n{older}\n"):
        with CmdlinePoller() as poller:
            done = run([*CLI, "generate-key", "--rotate", "-"], env=clean_env(), stdin=stdin, prints_secret=True)
        assert poller.saw("generate-key --rotate -")
        assert not poller.leaks()
        assert done.returncode == 0, done.stderr
        rotated = done.stdout.strip().split(",")
        remember_secret(rotated[0])
        assert rotated[1:] == [old, older]
    empty = run([*CLI, "generate-key", "--rotate", "-"], env=clean_env(), stdin="")
    assert empty.returncode == 2 and "needs the current keys" in empty.stderr


def test_keys_given_as_an_argument_are_refused_unless_the_exposure_is_accepted() -> None:
    key = new_key()
    # Plain locals: pytest's report of a failed assert would print the CompletedProcess, key and all.
    done = run([*CLI, "generate-key", "--rotate", key], env=clean_env())
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 2 and out == ""
    assert "refused" in err and "/proc/<pid>/cmdline" in err
    # The message names the safe forms.
    assert 'REDIS_ENCRYPTION_KEY="$(secure-redis generate-key --rotate)"' in err
    assert "--rotate -" in err and "--allow-secret-in-argv" in err
    assert not find_secrets(err)

    for args in (["--rotate", key, "--allow-secret-in-argv"], ["--allow-secret-in-argv", f"--rotate={key}"]):
        accepted = run([*CLI, "generate-key", *args], env=clean_env(), prints_secret=True)
        assert accepted.returncode == 0, accepted.stderr
        assert accepted.stdout.strip().split(",")[1] == key
        remember_secret(accepted.stdout.strip().split(",")[0])


def test_check_url_takes_credentials_from_the_environment_or_stdin(redis_server, pki, encryption_key) -> None:
    password = redis_server.password
    bare_url = redis_server.url
    assert "@" not in bare_url
    base = clean_env(REDIS_ENCRYPTION_KEY=encryption_key, REDIS_TLS_CA_PATH=str(pki.ca_cert))
    with CmdlinePoller() as poller:
        # The URL as an argument, the password in the environment.
        from_env = run([*CLI, "check", "--url", bare_url, "--connect"], env={**base, "REDIS_PASSWORD": password})
        # The whole URL, credentials included, on stdin.
        with_user_info = bare_url.replace("rediss://", f"rediss://:{password}@", 1)
        from_stdin = run([*CLI, "check", "--url", "-", "--connect"], env=base, stdin=with_user_info + "\n")
    assert poller.saw("check --url -") and poller.saw(f"check --url {bare_url}")
    assert not poller.leaks(), poller.leaks()
    assert from_env.returncode == 0, from_env.stdout + from_env.stderr
    assert from_stdin.returncode == 0, from_stdin.stdout + from_stdin.stderr
    assert "carries a password" in from_stdin.stdout  # the validator's warning about user-info still applies


def test_check_url_with_user_info_as_an_argument_is_refused() -> None:
    password = remember_secret("Vq7#mZ2!pL9$xR4@kT8&wN3^bH6*" + os.urandom(6).hex())
    for url in (f"rediss://:{password}@localhost:6380/0", f"rediss://app:{password}@localhost:6380/0"):
        done = run([*CLI, "check", "--url", url], env=clean_env())
        code, out, err = done.returncode, done.stdout, done.stderr  # as above: no CompletedProcess in a report
        assert code == 2 and out == ""
        assert "refused" in err and "REDIS_PASSWORD" in err and "--url -" in err
        assert "--allow-secret-in-argv" in err and not find_secrets(err)
    done = run([*CLI, "generate-env", "--redis-url", f"rediss://:{password}@h:6380/0", "--output", os.devnull],
               env=clean_env())
    code, err = done.returncode, done.stderr
    assert code == 2 and "refused" in err and not find_secrets(err)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_never_show_secrets_as_arguments(doc: Path) -> None:
    text = doc.read_text()
    assert '--rotate "$REDIS_ENCRYPTION_KEY"' not in text
    assert not re.search(r"secure-redis check --url \S*://[^\s/]*@", text)
