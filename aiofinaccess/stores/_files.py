"""Trusting a store's files only when no other local user can read, replace or redirect them.

Used by :class:`~aiofinaccess.stores.sqlite.SQLiteStore` before SQLite opens the database and
again after it has created its ``-wal`` and ``-shm`` files (SQLite gives those the database's
mode, so a database left 0666 leaked through them too). The rules:

* the directory is not writable by group or others (sticky or not: in a shared ``/tmp``
  another user can create ``tokens.db-wal`` before SQLite does, and read every page written
  to it), and is owned by us or root;
* no symbolic link is followed, nor is anything but a regular file accepted (checked with
  ``lstat``; an existing file is never opened, since closing a descriptor of a database would
  drop SQLite's locks on it in this process; a new database is created ``O_EXCL|O_NOFOLLOW``);
* every file is owned by the current user, and loses any group/other permission bits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from typing import Final

from ..core.errors import ConfigurationError, StoreError

__all__ = ["COMPANIONS", "check_companions", "open_private", "store_path"]

logger = logging.getLogger("aiofinaccess")

#: The files SQLite keeps next to a database.
COMPANIONS: Final = ("-wal", "-shm", "-journal")

# A new database file is created by us, private from its first instant, never through a link.
_CREATE: Final = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _check_directory(directory: str) -> None:
    info = os.stat(directory)
    if info.st_mode & 0o022:
        raise StoreError(
            f"store directory {directory} is writable by others: they could swap the "
            "store's files (chmod go-w, or choose a private directory)"
        )
    if info.st_uid not in (os.geteuid(), 0):
        raise StoreError(f"store directory {directory} is owned by uid {info.st_uid}, not us")


def _trust_path(path: str, *, create: bool) -> None:
    """Check one file by ``lstat`` (creating it private when asked and absent).

    An existing file is never opened: POSIX record locks belong to a process and an inode,
    so closing any descriptor of a database file would drop every lock SQLite holds on it in
    this process (its shared-memory "DMS" lock included: another process would then
    re-initialise the WAL index, and this one die of SIGBUS on its next access). ``lstat``
    sees a link as a link; the directory check above means nobody else can swap the file
    between the check and the ``chmod``.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return
        # Created meanwhile by another process: check it like any other.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, _CREATE, 0o600))
        info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise StoreError(f"store file {path} is a symbolic link: refused")
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"store file {path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise StoreError(f"store file {path} is owned by uid {info.st_uid}, not by us")
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if loose:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
        logger.warning("store file %s was accessible to others (mode %o): tightened", path, loose)


def check_companions(path: str) -> None:
    """Check (and tighten) whichever of the database's companion files exist."""
    for suffix in COMPANIONS:
        _trust_path(path + suffix, create=False)


def open_private(path: str) -> None:
    """Create the database file if needed (0600), and check it, its directory and companions.

    Raises:
        StoreError: A symbolic link, a file of another user, a directory others can write.
        OSError: The file system refused (no such directory, no permission...).
    """
    _check_directory(os.path.dirname(path))
    _trust_path(path, create=True)
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
