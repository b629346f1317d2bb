"""Trusting a store's files only when no other local user can read, replace or redirect them.

Used by :class:`~aiofinaccess.stores.sqlite.SQLiteStore` before SQLite opens the database and
again after it has created its ``-wal`` and ``-shm`` files (SQLite gives those the database's
mode, so a database left 0666 leaked through them too). The rules:

* the directory is not writable by group or others (sticky or not: in a shared ``/tmp``
  another user can create ``tokens.db-wal`` before SQLite does, and read every page written
  to it), and is owned by us or root;
* no file is opened through a symbolic link (``O_NOFOLLOW``), nor is anything but a regular
  file accepted (``O_NONBLOCK``: a planted FIFO cannot hang the open);
* every file is owned by the current user, and loses any group/other permission bits.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import Final

from ..core.errors import ConfigurationError, StoreError

__all__ = ["COMPANIONS", "check_companions", "open_private", "store_path"]

logger = logging.getLogger("aiofinaccess")

#: The files SQLite keeps next to a database.
COMPANIONS: Final = ("-wal", "-shm", "-journal")

_FLAGS: Final = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _check_directory(directory: str) -> None:
    info = os.stat(directory)
    if info.st_mode & 0o022:
        raise StoreError(
            f"store directory {directory} is writable by others: they could swap the "
            "store's files (chmod go-w, or choose a private directory)"
        )
    if info.st_uid not in (os.geteuid(), 0):
        raise StoreError(f"store directory {directory} is owned by uid {info.st_uid}, not us")


def _trust(fd: int, path: str) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"store file {path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise StoreError(f"store file {path} is owned by uid {info.st_uid}, not by us")
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if loose:
        os.fchmod(fd, stat.S_IMODE(info.st_mode) & ~0o077)
        logger.warning("store file %s was accessible to others (mode %o): tightened", path, loose)


def _open(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"store file {path} is a symbolic link: refused") from None
        raise


def _trust_path(path: str, flags: int) -> None:
    fd = _open(path, flags)
    if fd is not None:
        try:
            _trust(fd, path)
        finally:
            os.close(fd)


def check_companions(path: str) -> None:
    """Check (and tighten) whichever of the database's companion files exist."""
    for suffix in COMPANIONS:
        _trust_path(path + suffix, _FLAGS)


def open_private(path: str) -> None:
    """Create the database file if needed (0600), and check it, its directory and companions.

    Raises:
        StoreError: A symbolic link, a file of another user, a directory others can write.
        OSError: The file system refused (no such directory, no permission...).
    """
    _check_directory(os.path.dirname(path))
    _trust_path(path, _FLAGS | os.O_CREAT)
    check_companions(path)


def store_path(path: str | os.PathLike[str]) -> str:
    """The absolute path of a store's database, checked for what a constructor can tell.

    Raises:
        ConfigurationError: No file name, a missing directory (or a file on the way), a
            directory that is not writable, or a directory where the file should be.
    """
    absolute = os.path.abspath(os.fspath(path))
    if os.fspath(path) in ("", ":memory:"):
        raise ConfigurationError("store path must name a file (use MemoryStore in memory)")
    parent = os.path.dirname(absolute)
    if not os.path.isdir(parent):
        raise ConfigurationError(f"store path {absolute}: {_missing_directory(parent)}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigurationError(f"store path {absolute}: directory is not writable")
    if os.path.isdir(absolute):
        raise ConfigurationError(f"store path {absolute} is a directory")
    return absolute


def _missing_directory(parent: str) -> str:
    """Why ``parent`` is not a usable directory: a file on the way, or a missing directory."""
    ancestor = parent
    while not os.path.exists(ancestor) and os.path.dirname(ancestor) != ancestor:
        ancestor = os.path.dirname(ancestor)
    if os.path.exists(ancestor) and not os.path.isdir(ancestor):
        return f"{ancestor} is a file, not a directory"
    return "directory does not exist"
