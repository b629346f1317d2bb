"""Reading a file no one else can have written (and, for a secret, read): remembered settings,
the Redis password file.

The rules of the SQLite store's own files (:mod:`aiofinaccess.stores._files`): opened without
following a symbolic link and without waiting on a FIFO, a regular file of ours that group and
others cannot write, in a directory of ours (or root's) that they cannot write either (sticky
or not: they could swap the file). A secret must also be unreadable by group and others, as
ssh asks of a key. Reads are capped: a device or a huge file is refused, not slurped.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..core.errors import AiofinaccessError

__all__ = ["UntrustedFileError", "loose_directory", "read_bounded", "read_trusted"]

_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # no wait on a FIFO
#: A secret file the operator names (a mounted secret): links followed (Kubernetes mounts
#: secrets as links), still no wait on a FIFO.
_OPEN_NAMED = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


class UntrustedFileError(AiofinaccessError):
    """A file another local user could have written (or reads, for a secret): refused."""


def loose_directory(directory: Path, what: str) -> str | None:
    """Why others could swap ``what`` (files) in ``directory``, and what to do; ``None`` when
    they cannot. A sticky directory everyone writes (``/tmp``) is meant to be shared: it gets
    no chmod, a private directory of its own does (another user can create our file, or
    SQLite's ``-wal``, there first and read what we write).
    """
    info = os.stat(directory)
    if not info.st_mode & 0o022:
        return None
    if info.st_mode & stat.S_ISVTX and info.st_mode & 0o002:
        return (
            f"directory {directory} is shared (sticky, writable by everyone): another user "
            f"could create {what} there first: use a private directory (mkdir -m 700 "
            f"{directory / 'NAME'})"
        )
    fix = f"chmod go-w {directory}" if info.st_uid == os.geteuid() else "use a private directory"
    return f"directory {directory} is writable by others, who could swap {what}: {fix}"


def check(name: str, path: Path, info: os.stat_result, *, secret: bool, plural: bool) -> None:
    """Refuse ``info`` (the open file's) unless it is ours and private; ``name`` says what
    the file is, in the message ("remembered settings PATH" is ``plural``).
    """
    be, belong = ("are", "belong") if plural else ("is", "belongs")
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedFileError(f"{name} {be} not a regular file: refused")
    if info.st_uid != os.geteuid():
        raise UntrustedFileError(
            f"{name} {belong} to uid {info.st_uid}, not to us: refused (delete the file)"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise UntrustedFileError(f"{name} {be} writable by others: refused (chmod go-w {path})")
    if secret and mode & 0o044:
        raise UntrustedFileError(f"{name} {be} readable by others: refused (chmod 600 {path})")
    if problem := loose_directory(path.parent, "the file"):
        raise UntrustedFileError(f"{name}: refused: {problem}")
    directory = os.stat(path.parent)
    if directory.st_uid not in (os.geteuid(), 0):
        raise UntrustedFileError(
            f"{name}: directory {path.parent} belongs to uid {directory.st_uid}: refused"
        )


def read_trusted(
    path: Path, name: str, *, secret: bool, limit: int, plural: bool = False
) -> bytes | None:
    """The bytes of the file at ``path`` (at most ``limit``), or ``None`` when there is none.

    Raises:
        UntrustedFileError: A symbolic link, not a regular file, another user's, writable
            (or, with ``secret``, readable) by others, in a directory others can write, or
            longer than ``limit`` bytes.
        OSError: Unreadable for another reason.
    """
    be = "are" if plural else "is"
    try:
        descriptor = os.open(path, _OPEN)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedFileError(f"{name} {be} a symbolic link: refused") from None
        raise
    with os.fdopen(descriptor, "rb") as file:
        check(name, path, os.fstat(file.fileno()), secret=secret, plural=plural)
        data = file.read(limit + 1)
    if len(data) > limit:
        raise UntrustedFileError(f"{name} {be} longer than {limit} bytes: refused")
    return data


def read_bounded(path: Path, name: str, *, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` the operator named (a mounted client secret:
    root's, readable by all, behind links), at most ``limit``; a FIFO, device or directory is
    refused without waiting.

    Raises:
        UntrustedFileError: Not a regular file, or longer than ``limit`` bytes.
        OSError: Missing or unreadable.
    """
    with os.fdopen(os.open(path, _OPEN_NAMED), "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise UntrustedFileError(f"{name} {path} is not a regular file: refused")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise UntrustedFileError(f"{name} {path} is longer than {limit} bytes: refused")
    return data
