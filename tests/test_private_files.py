"""Files that hold secrets are 0600 from the moment they exist and never written through a link.

Covers `secure_redis._private_file` through its users: the .env writer (`generate-env`), the
test harness's private keys, ACL files and server configs, and `status --save`. A file created
with the umask's mode and chmod-ed afterwards is caught by an audit hook that looks at the
folder at every auditing event (a `chmod` is one, raised before the chmod happens), with the
umask at 0 so a wrong creation mode shows as 0666.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from conftest import find_secrets, remember_secret
from secure_redis.envfile import parse_env_file, write_secure_env
from secure_redis.testing import RedisServer, _tls_cli, issue_certificate, make_test_pki, random_password

PRIVATE = 0o600
# Names in a harness folder that hold a secret; certificates are public (0644) on purpose.
PRIVATE_SUFFIXES = (".key", ".acl", ".conf")


class _ModeWatch:
    """While active, every auditing event of this process looks at one folder and records each
    non-empty private file (or temporary file) whose mode is not 0600. sys.addaudithook cannot be
    undone, so the hook is installed once and does nothing while no folder is watched."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.seen: list[str] = []
        # name -> (inode, mtime, size) of a file redis itself left with another mode, not
        # flagged while it stays exactly that file: only what we write is judged here.
        self.left_by_redis: dict[str, tuple[int, int, int]] = {}
        self.scans = 0
        self._busy = threading.local()  # our own scandir raises events too

    def hook(self, event: str, args: tuple) -> None:
        folder = self.folder
        if folder is None or getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            self.scans += 1
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not (entry.name.endswith(PRIVATE_SUFFIXES) or ".tmp-" in entry.name):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # renamed or removed meanwhile
                        continue
                    mode = stat.S_IMODE(info.st_mode)
                    if self.left_by_redis.get(entry.name) == (info.st_ino, info.st_mtime_ns, info.st_size):
                        continue
                    if stat.S_ISREG(info.st_mode) and info.st_size > 0 and mode != PRIVATE:
                        self.seen.append(f"{entry.name} {mode:o} at {event}")
        except FileNotFoundError:
            pass
        finally:
            self._busy.on = False


_WATCH = _ModeWatch()
sys.addaudithook(_WATCH.hook)


@contextlib.contextmanager
def watched_with_umask_0(folder: Path) -> Iterator[_ModeWatch]:
    """Umask 0 (so only the mode given at creation protects a file) and the audit watch on."""
    folder.mkdir(parents=True, exist_ok=True)
    _WATCH.seen, _WATCH.scans, _WATCH.left_by_redis = [], 0, {}
    previous = os.umask(0)
    _WATCH.folder = folder
    try:
        yield _WATCH
    finally:
        _WATCH.folder = None
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_harness_writes_keys_acl_and_config_0600_from_creation(tmp_path) -> None:
    folder = tmp_path / "harness"
    admin, app = remember_secret(random_password(40)), remember_secret(random_password(40))
    with watched_with_umask_0(folder) as watch:
        pki = make_test_pki(folder)
        issue_certificate(pki, "extra-client", sans=(), client=True)
        server = RedisServer(
            folder, password=admin, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert,
            acl_lines=[f"user default on >{admin} ~* &* +@all", f"user app on >{app} ~app:* +@read"],
        )
        try:
            server.start()
            server.stop()
            server.start()  # a restart rewrites the config and the ACL file
        finally:
            server.stop()
    assert watch.scans > 0, "the audit hook never ran"
    assert not watch.seen, f"secret files were visible with another mode than 600: {watch.seen[:5]}"
    private = sorted(p.name for p in folder.iterdir() if p.name.endswith(PRIVATE_SUFFIXES))
    assert {"users.acl", "redis.conf", "client.key", "server.key", "ca.key", "extra-client.key"} <= set(private)
    assert {p: f"{mode_of(folder / p):o}" for p in private} == {p: "600" for p in private}
    assert not [p.name for p in folder.iterdir() if ".tmp-" in p.name], "a temporary file was left behind"


def test_a_config_redis_rewrote_is_replaced_not_written_into(tmp_path) -> None:
    # redis-server's CONFIG REWRITE (sentinels do it at every failover) leaves the config 0644
    # minus the umask with requirepass inside. The harness keeps the server folder 0700, and a
    # restart must not write the next config into that 0644 file before a chmod.
    password = remember_secret(random_password(40))
    pki = make_test_pki(tmp_path / "pki")
    folder = tmp_path / "server"
    server = RedisServer(folder, password=password, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert)
    assert mode_of(folder) == 0o700
    try:
        server.start()
        assert _tls_cli(server, password, "CONFIG", "REWRITE").strip() == "OK"
        server.stop()
        config = folder / "redis.conf"
        rewritten = os.lstat(config)
        assert stat.S_IMODE(rewritten.st_mode) != PRIVATE, "redis kept 0600: this test shows nothing any more"
        with watched_with_umask_0(folder) as watch:
            watch.left_by_redis["redis.conf"] = (rewritten.st_ino, rewritten.st_mtime_ns, rewritten.st_size)
            server.start()
        assert watch.scans > 0
        assert not watch.seen, f"the restart wrote the config into redis's 0644 file: {watch.seen[:3]}"
        assert mode_of(config) == PRIVATE and mode_of(folder) == 0o700
    finally:
        server.stop()


def test_env_file_is_0600_under_any_umask(tmp_path) -> None:
    path = tmp_path / "env" / ".env.secure"
    with watched_with_umask_0(path.parent) as watch:
        write_secure_env(path, "staging")
    assert not watch.seen and mode_of(path) == PRIVATE
    remember_secret(parse_env_file(path)["REDIS_PASSWORD"])
    remember_secret(parse_env_file(path)["REDIS_ENCRYPTION_KEY"])
    # A umask stricter than 0600 must not leave the owner unable to read it either.
    other = tmp_path / "env" / ".env.strict"
    previous = os.umask(0o277)
    try:
        write_secure_env(other, "development")
    finally:
        os.umask(previous)
    assert mode_of(other) == PRIVATE
    remember_secret(parse_env_file(other)["REDIS_PASSWORD"])


def test_env_writer_does_not_follow_a_dangling_symlink(tmp_path) -> None:
    # The link's target does not exist: the old writer saw "no file", opened the link and
    # created the target, with the secrets, wherever the link pointed.
    elsewhere = tmp_path / "elsewhere" / "stolen.env"
    elsewhere.parent.mkdir()
    path = tmp_path / ".env.secure"
    path.symlink_to(elsewhere)

    with pytest.raises(FileExistsError, match="exists; pass --force"):
        write_secure_env(path, "development")
    assert not elsewhere.exists() and path.is_symlink()

    previous = write_secure_env(path, "development", force=True)
    assert not elsewhere.exists(), "the secrets were written through the link"
    assert not path.is_symlink() and path.is_file() and mode_of(path) == PRIVATE
    assert previous is not None and previous.is_symlink()  # the link was moved aside, as a link
    remember_secret(parse_env_file(path)["REDIS_PASSWORD"])
    remember_secret(parse_env_file(path)["REDIS_ENCRYPTION_KEY"])


def test_env_writer_with_force_leaves_a_links_target_alone(tmp_path) -> None:
    # With --force the old writer chmod-ed the file it backed up through the link: someone
    # else's file changed mode.
    target = tmp_path / "shared.conf"
    target.write_text("not ours\n")
    target.chmod(0o640)
    path = tmp_path / ".env.secure"
    path.symlink_to(target)

    previous = write_secure_env(path, "production", force=True)
    assert target.read_text() == "not ours\n" and mode_of(target) == 0o640
    assert previous is not None and previous.is_symlink() and os.readlink(previous) == str(target)
    assert path.is_file() and not path.is_symlink() and mode_of(path) == PRIVATE
    remember_secret(parse_env_file(path)["REDIS_PASSWORD"])
    remember_secret(parse_env_file(path)["REDIS_ENCRYPTION_KEY"])


def test_generate_env_cli_refuses_a_planted_link(tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere.env"
    path = tmp_path / ".env.secure"
    path.symlink_to(elsewhere)
    done = subprocess.run(
        [sys.executable, "-m", "secure_redis", "generate-env", "--output", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1 and "exists; pass --force" in done.stderr
    assert not elsewhere.exists() and path.is_symlink()


def test_status_save_is_0600_and_does_not_follow_a_link(tmp_path, redis_server, pki, encryption_key) -> None:
    env_file = tmp_path / "status.env"
    env_file.write_text(
        f"REDIS_URL={redis_server.url}\nREDIS_PASSWORD={redis_server.password}\n"
        f"REDIS_ENCRYPTION_KEY={encryption_key}\nREDIS_TLS_CA_PATH={pki.ca_cert}\n"
    )
    env_file.chmod(PRIVATE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "ENVIRONMENT"))}

    def status(save: Path) -> subprocess.CompletedProcess[str]:
        # The ordinary umask (022): the old code saved the report 0644.
        return subprocess.run(
            [sys.executable, "-m", "secure_redis", "status", "--env-file", str(env_file), "--save", str(save)],
            capture_output=True, text=True, timeout=60, env=env,
            preexec_fn=lambda: os.umask(0o022),
        )

    saved = tmp_path / "last-check.json"
    done = status(saved)
    assert done.returncode == 0, done.stdout + done.stderr
    assert mode_of(saved) == PRIVATE and '"is_valid": true' in saved.read_text()
    assert not find_secrets(saved.read_text())

    target = tmp_path / "someone-elses.json"
    target.write_text("{}\n")
    target.chmod(0o644)
    linked = tmp_path / "linked.json"
    linked.symlink_to(target)
    assert status(linked).returncode == 0
    assert target.read_text() == "{}\n" and mode_of(target) == 0o644, "the report was written through the link"
    assert linked.is_file() and not linked.is_symlink() and mode_of(linked) == PRIVATE
