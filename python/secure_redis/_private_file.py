"""Writing files that hold secrets (.env files, private keys, ACL files, server configs, reports).

``write_private_file(path, data)`` is the one way the package writes such a file. Invariants a
change must keep:

- The bytes are never observable under a mode other than 0600: the file is created with mode
  0600 by ``os.open`` itself and ``fchmod``-ed before the first byte, whatever the umask, and
  never created first and chmod-ed later.
- It never follows a symbolic link: the data goes to a fresh temporary file in the same
  directory, made with ``O_CREAT | O_EXCL | O_NOFOLLOW``, and is then renamed onto ``path``.
  A rename replaces a link at ``path`` itself; the link's target is never opened. With
  ``replace=False`` an existing ``path`` (a dangling link included) is left alone and
  ``FileExistsError`` is raised, without a window in which it could be overwritten.
- A reader sees the old file or the whole new one, never a half-written one; the temporary
  file is removed on any failure.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600

# Bounded: a name collision among 16 random hex characters is a planted file, not bad luck.
_TEMP_ATTEMPTS = 8


def _create_temporary(directory: Path, name: str) -> tuple[int, Path]:
    for _ in range(_TEMP_ATTEMPTS):
        temporary = directory / f".{name}.tmp-{secrets.token_hex(8)}"
        try:
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                PRIVATE_MODE,
            )
        except FileExistsError:
            continue
        return fd, temporary
    raise FileExistsError(errno.EEXIST, f"could not create a temporary file beside {name}", str(directory))


def write_private_file(path: str | os.PathLike[str], data: str | bytes, *, replace: bool = True) -> Path:
    """Writes ``data`` to ``path`` as a 0600 file without following links (see the module doc).

    ``replace=False`` raises ``FileExistsError`` when anything, a link included, is at ``path``.
    Returns the path written."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    fd, temporary = _create_temporary(path.parent, path.name)
    try:
        # The umask may have taken bits off 0600 (0400 under umask 0277); set exactly 0600
        # before any secret is written.
        os.fchmod(fd, PRIVATE_MODE)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if replace:
            os.replace(temporary, path)
        else:
            _link_without_replacing(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # after os.replace it is gone already
    return path


def _link_without_replacing(temporary: Path, path: Path) -> None:
    # link() fails with EEXIST when anything is at `path` (a dangling link too) and never
    # follows it: an atomic "create only if absent", which rename() cannot give.
    try:
        os.link(temporary, path, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, f"{path} exists", str(path)) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A file system without hard links: check, then rename. The window between the two is
        # the best such a file system allows; the rename still never follows a link.
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, f"{path} exists", str(path)) from None
        os.replace(temporary, path)
