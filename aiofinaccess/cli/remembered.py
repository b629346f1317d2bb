"""The provider settings a successful login remembers beside a local SQLite store.

They fill every setting left to a default, the token endpoint included, so whoever can write
them receives the client secret and every refresh token renewed. They are read only from a
file no one else can change (:mod:`aiofinaccess.cli.files`): opened without following a
symbolic link, a regular file of ours that group and others cannot write, in a directory of
ours (or root's) that they cannot write either. A Redis store has none: a path derived from
its URL would be a relative one, under whatever directory the command runs in.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .files import UntrustedFileError, read_trusted

__all__ = ["UntrustedSettingsError", "read_remembered", "write_remembered"]

#: Far more than any provider's settings; a bound on what a hand-edited file can make us read.
_LIMIT = 1 << 20


class UntrustedSettingsError(UntrustedFileError):
    """Remembered settings that another local user could have written: refused."""


def read_remembered(path: Path) -> str | None:
    """The text of the settings file at ``path``, or ``None`` when there is none.

    Raises:
        UntrustedSettingsError: A symbolic link, not a regular file, another user's, or
            writable by others (the file or its directory).
        OSError: Unreadable for another reason.
    """
    try:
        data = read_trusted(
            path, f"remembered settings {path}", secret=False, limit=_LIMIT, plural=True
        )
    except UntrustedFileError as exc:
        raise UntrustedSettingsError(str(exc)) from None
    return None if data is None else data.decode("utf-8")


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
