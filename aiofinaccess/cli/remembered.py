"""The provider settings a successful login remembers beside a local SQLite store.

They fill every setting left to a default, the token endpoint included, so whoever can write
them receives the client secret and every refresh token renewed. They are read only from a
file no one else can change (the rules of the SQLite store's own files,
:mod:`aiofinaccess.stores._files`): opened without following a symbolic link, a regular file
of ours that group and others cannot write, in a directory of ours (or root's) that they
cannot write either. A Redis store has none: a path derived from its URL would be a relative
one, under whatever directory the command runs in.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import AiofinaccessError

__all__ = ["UntrustedSettingsError", "read_remembered", "write_remembered"]

_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # no wait on a FIFO


class UntrustedSettingsError(AiofinaccessError):
    """Remembered settings that another local user could have written: refused."""


def _check(path: Path, info: os.stat_result) -> None:
    name = f"remembered settings {path}"
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedSettingsError(f"{name} are not a regular file: refused")
    if info.st_uid != os.geteuid():
        raise UntrustedSettingsError(
            f"{name} belong to uid {info.st_uid}, not to us: refused (delete the file)"
        )
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise UntrustedSettingsError(
            f"{name} are writable by others: refused (chmod go-w {path}, or delete it)"
        )
    directory = os.stat(path.parent)
    if directory.st_mode & 0o022:
        raise UntrustedSettingsError(
            f"{name}: directory {path.parent} is writable by others, who could swap the "
            "file: refused (chmod go-w, or choose a private directory)"
        )
    if directory.st_uid not in (os.geteuid(), 0):
        raise UntrustedSettingsError(
            f"{name}: directory {path.parent} belongs to uid {directory.st_uid}: refused"
        )


def read_remembered(path: Path) -> str | None:
    """The text of the settings file at ``path``, or ``None`` when there is none.

    Raises:
        UntrustedSettingsError: A symbolic link, not a regular file, another user's, or
            writable by others (the file or its directory).
        OSError: Unreadable for another reason.
    """
    try:
        descriptor = os.open(path, _OPEN)
    except (FileNotFoundError, NotADirectoryError):  # none yet (or no store: said later)
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedSettingsError(
                f"remembered settings {path} are a symbolic link: refused"
            ) from None
        raise
    with os.fdopen(descriptor, "rb") as file:
        _check(path, os.fstat(file.fileno()))
        return file.read().decode("utf-8")


def write_remembered(path: Path, data: dict[str, Any]) -> None:
    """Replace the settings file at ``path`` with ``data``, mode 0600, atomically.

    The new text goes to a fresh file (``O_EXCL``, never through a planted link) renamed over
    the old one.
    """
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    descriptor, partial = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
