"""The store's file checks never cost SQLite its locks.

POSIX record locks belong to a process and an inode: closing *any* descriptor of a file drops
every lock the process holds on it. SQLite keeps a shared lock on byte 128 of the ``-shm``
file (the "DMS" lock) for as long as a connection is open; another process that can take that
byte exclusively believes it is the first user of the database and re-initialises the
shared-memory index under the connection's feet, whose next access to the mapped file is a
SIGBUS (worker processes died with returncode -7). The trust checks of :mod:`._files` used to
open and close the database's files with ``os.open``; they must only ``lstat`` them.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from aiofinaccess import SQLiteStore, TokenKey, TokenSet
from aiofinaccess.stores._files import check_companions

# UNIX_SHM_DMS in SQLite's os_unix.c: (22 + SQLITE_SHM_NLOCK) * 4 + SQLITE_SHM_NLOCK.
_DMS_BYTE = 128

_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))
except OSError:
    print("held")
else:
    print("free")
"""


def _dms_lock(shm: Path) -> str:
    """Whether another process could take the DMS byte exclusively ("free") or not."""
    out = subprocess.run(  # noqa: S603  (our interpreter, our probe)
        [sys.executable, "-c", _PROBE, str(shm), str(_DMS_BYTE)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def test_checking_the_files_keeps_sqlites_shared_memory_lock(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    path = tmp_path / "tokens.db"
    store = SQLiteStore(path)
    try:
        await store.put(TokenKey("p", "u"), TokenSet(access_token="a"), expected_version=None)
        shm = Path(f"{path}-shm")
        assert _dms_lock(shm) == "held"  # the open connection holds it
        check_companions(str(path))
        assert _dms_lock(shm) == "held"
        second = SQLiteStore(path)  # a second store on the same file in this process
        try:
            assert await second.get(TokenKey("p", "u")) is not None
        finally:
            await second.aclose()
        assert _dms_lock(shm) == "held"
    finally:
        await store.aclose()


def test_the_probe_sees_a_lock_taken_and_dropped(tmp_path: Path) -> None:
    """The probe can fail: a lock this process takes is seen, and seen gone after close."""
    shm = tmp_path / "file"
    shm.write_bytes(b"\0" * 256)
    fd = os.open(shm, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_SH, 1, _DMS_BYTE)
    assert _dms_lock(shm) == "held"
    other = os.open(shm, os.O_RDONLY)
    os.close(other)  # closing another descriptor of the file drops this process's lock
    assert _dms_lock(shm) == "free"
    os.close(fd)
