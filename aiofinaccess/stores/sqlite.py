"""A durable token store in one SQLite file: the embedded default for one machine.

Theory of operation
-------------------
* **One statement per operation.** Every write is a single SQL statement, which SQLite runs as
  its own write transaction: it takes the database's write lock before reading, exactly like
  ``BEGIN IMMEDIATE`` ... ``COMMIT``. A compare-and-swap is ``UPDATE ... WHERE version = ?``
  (or ``INSERT ... ON CONFLICT DO NOTHING`` for a new key), so a cancelled task can never
  leave a transaction half-open on the shared connection.
* **Random versions.** Versions are drawn with :func:`secrets.randbits`, not counted, so a key
  deleted and created again never repeats a version a reader may still hold.
* **A lease table.** The refresh lease must exclude other *processes* as well as other tasks,
  and must not outlive a holder that crashed. A row ``(key, owner, expires_at)`` does both:
  it is taken by an insert that may replace only an expired row, extended and released only
  where the owner is still ours, and simply expires if its holder was killed. Its times are
  on the machine's monotonic clock (shared by every process of one boot; an NTP step cannot
  free a live lease); a row from an earlier boot reads as expired, since its end lies further
  ahead than any lease may last.
* **Pending authorizations** (:class:`~aiofinaccess.stores.PendingAuthorizations`) are rows
  ``(state, data, expires_at)``; a take is one ``DELETE ... RETURNING`` statement (SQLite
  >= 3.35), so of two processes taking one state exactly one gets the row. Their data goes
  through the codec like token sets: a :class:`~.codec.FernetCodec` encrypts PKCE verifiers.
* **Refresh duty** (:class:`~aiofinaccess.stores.RefreshDuty`): each row has a ``due_at``
  column (epoch seconds, ``NULL`` = not scheduled) with a partial index. ``put`` writes it in
  the same statement as the set; a claim is one statement, ``UPDATE ... SET due_at = deadline
  WHERE rowid IN (SELECT rowid ... WHERE due_at <= now ORDER BY due_at LIMIT n) RETURNING key``,
  so of any number of processes claiming at once each row goes to one of them. A database
  written before the column existed gets it on first open (one ``ALTER TABLE`` under the write
  lock), with every existing set due at once: the first claimant reschedules each from the set
  itself. Until every process runs this version, sets created by an older one stay unscheduled.
* **Streaming listing.** :meth:`SQLiteStore.keys` reads one ``SELECT`` in batches on a
  connection of its own (WAL readers never block the writers), so a million keys are never
  one list.
* **Crash safety.** WAL journal with ``synchronous=NORMAL``: a committed write survives any
  crash of the process; only an OS crash or power loss can lose the last commits (never
  corrupt the file). The file is created with mode 0600; SQLite gives its ``-wal`` and
  ``-shm`` files the same mode. An existing file is trusted only if it is no symbolic link,
  is ours, and sits in a directory others cannot write; group/other bits on it and on its
  companions are removed (:mod:`._files`).

aiosqlite runs the one connection of a store on its own thread, so no call blocks the event
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import aiosqlite

from ..core.errors import ConfigurationError, LeaseBusyError, StoreConflictError, StoreError
from ..core.tokens import TokenKey, TokenSet
from . import (
    HeldLease,
    Versioned,
    check_claim,
    check_due,
    check_ttl,
    open_pending,
    seal_pending,
)
from ._files import check_companions, open_private
from .codec import JsonCodec, TokenCodec

__all__ = ["SQLiteStore"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS token_sets (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, version INTEGER NOT NULL,
    data BLOB NOT NULL, updated_at REAL, due_at REAL
);
CREATE INDEX IF NOT EXISTS token_sets_provider ON token_sets (provider);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_authorizations (
    state TEXT PRIMARY KEY, data BLOB NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_authorizations_expiry ON pending_authorizations (expires_at);
"""

# Run once per connection, under the write lock, after _SCHEMA: databases written before the
# refresh duty lack the column, and get it with every existing set due at once.
_DUE_INDEX: Final = """
CREATE INDEX IF NOT EXISTS token_sets_due ON token_sets (due_at) WHERE due_at IS NOT NULL
"""
_CLAIM: Final = """
UPDATE token_sets SET due_at = ? WHERE rowid IN (
    SELECT rowid FROM token_sets WHERE due_at <= ? ORDER BY due_at LIMIT ?
) RETURNING key
"""
#: Rows fetched per step while listing keys.
_KEYS_BATCH: Final = 500

_PUT_PENDING: Final = """
INSERT INTO pending_authorizations (state, data, expires_at) VALUES (?, ?, ?)
ON CONFLICT (state) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at
"""
# RETURNING arrived in SQLite 3.35 (2021); Debian 12 ships 3.40.
_HAS_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35)
_SQLITE: Final = sqlite3.sqlite_version

# Take the lease if nobody holds it, or if the holder's lease expired (it crashed or overran),
# or if the row comes from an earlier boot (the monotonic clock restarted below its end).
_ACQUIRE: Final = """
INSERT INTO leases (key, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE leases.expires_at < ? OR leases.expires_at > ?
"""
# Never shortens: the heartbeat and the fence before a send may both extend.
_EXTEND: Final = "UPDATE leases SET expires_at = max(expires_at, ?) WHERE key = ? AND owner = ?"
#: No lease lasts longer than this; a row ending further ahead predates a reboot.
_LONGEST_LEASE: Final = 86_400.0

_jitter: Final = random.SystemRandom()


def _conflict(key: TokenKey, expected_version: int | None) -> StoreConflictError:
    state = "already exists" if expected_version is None else f"is not at {expected_version}"
    return StoreConflictError(f"token set {key.hashed} {state}")


def _missing_directory(parent: str) -> str:
    """Why ``parent`` is not a usable directory: a file on the way, or a missing directory."""
    ancestor = parent
    while not os.path.exists(ancestor) and os.path.dirname(ancestor) != ancestor:
        ancestor = os.path.dirname(ancestor)
    if os.path.exists(ancestor) and not os.path.isdir(ancestor):
        return f"{ancestor} is a file, not a directory"
    return "directory does not exist"


class SQLiteStore:
    """Token sets in a SQLite file, shared safely by every process on the machine.

    Args:
        path: The database file. Its directory must exist and be writable; the file is
            created (mode 0600) on first use.
        codec: Turns token sets into stored bytes; :class:`~.codec.JsonCodec` by default.
            Use :class:`~.codec.FernetCodec` to encrypt the tokens at rest.
        lease_poll: Seconds between attempts to take a lease someone else holds (jittered).
        busy_timeout: Seconds a statement waits for another process's write lock.

    Raises:
        ConfigurationError: A setting is unusable; the message names it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        codec: TokenCodec | None = None,
        lease_poll: float = 0.02,
        busy_timeout: float = 10.0,
    ) -> None:
        self._path = os.path.abspath(os.fspath(path))
        if os.fspath(path) in ("", ":memory:"):
            raise ConfigurationError("store path must name a file (use MemoryStore in memory)")
        parent = os.path.dirname(self._path)
        if not os.path.isdir(parent):
            raise ConfigurationError(f"store path {self._path}: {_missing_directory(parent)}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigurationError(f"store path {self._path}: directory is not writable")
        if os.path.isdir(self._path):
            raise ConfigurationError(f"store path {self._path} is a directory")
        if not lease_poll > 0:
            raise ConfigurationError("lease_poll must be a positive number of seconds")
        if not busy_timeout >= 0:
            raise ConfigurationError("busy_timeout must be a non-negative number of seconds")
        self._codec: TokenCodec = JsonCodec() if codec is None else codec
        self._lease_poll = lease_poll
        self._busy_timeout = busy_timeout
        self._conn: aiosqlite.Connection | None = None
        self._closed = False
        self._open_lock = asyncio.Lock()
        # One statement at a time on the shared connection: aiosqlite queues execute and fetch
        # separately, and a write slipped between another task's execute and fetch would have to
        # upgrade that task's open read snapshot, which SQLite refuses at once (SQLITE_BUSY).
        self._statement_lock = asyncio.Lock()
        self._releases: set[asyncio.Task[tuple[int, list[Any]]]] = set()

    def __repr__(self) -> str:
        return f"SQLiteStore(path={self._path!r})"

    async def open(self) -> SQLiteStore:
        """Connect, switch to WAL and create the tables; other methods open lazily.

        Returns:
            The store itself. Raises :class:`StoreError` if the file cannot be opened.
        """
        await self._connection()
        return self

    async def __aenter__(self) -> SQLiteStore:
        """Open the store (see :meth:`open`)."""
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the store (see :meth:`aclose`)."""
        await self.aclose()

    async def get(self, key: TokenKey) -> Versioned | None:
        """Return the stored token set for ``key`` and its version, or ``None``.

        Raises:
            StoreError: The read failed or the stored bytes cannot be decoded.
        """
        _, rows = await self._execute(
            "SELECT version, data FROM token_sets WHERE key = ?", (str(key),)
        )
        if not rows:
            return None
        version, data = rows[0]
        return Versioned(
            self._codec.decode(bytes(data), kind="token_set", key=str(key)), int(version)
        )

    async def put(
        self,
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        """Write ``token_set`` if the stored version equals ``expected_version`` (atomically).

        ``expected_version`` is the version read before; ``None`` means "must not exist yet".
        ``due_at`` becomes the set's due time (``None``: not scheduled) in the same statement.

        Returns:
            The new version (an opaque random integer).

        Raises:
            StoreConflictError: The stored version is not ``expected_version``.
            StoreError: The write failed.
        """
        due = check_due(due_at)
        data = self._codec.encode(token_set, kind="token_set", key=str(key))
        version = secrets.randbits(62)
        while version == expected_version:  # pragma: no cover  (one chance in 2**62)
            version = secrets.randbits(62)
        if expected_version is None:
            sql = "INSERT INTO token_sets (key, provider, version, data, updated_at, due_at)"
            sql += " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
            parameters: tuple[Any, ...] = (str(key), key.provider, version, data, time.time(), due)
        else:
            sql = "UPDATE token_sets SET version = ?, data = ?, updated_at = ?, due_at = ?"
            sql += " WHERE key = ? AND version = ?"
            parameters = (version, data, time.time(), due, str(key), expected_version)
        changed, _ = await self._execute(sql, parameters)
        if not changed:
            raise _conflict(key, expected_version)
        return version

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        """Delete ``key`` (and with it its due time); with ``expected_version``, only while it
        is at that version.

        Returns:
            True if a token set was deleted, False if there was none.

        Raises:
            StoreConflictError: The key exists at another version than ``expected_version``.
            StoreError: The delete failed.
        """
        sql = "DELETE FROM token_sets WHERE key = ? AND coalesce(?, version) = version"
        changed, _ = await self._execute(sql, (str(key), expected_version))
        if changed or expected_version is None:
            return bool(changed)
        # Gone or at another version: either answer is true at some instant of this call.
        _, rows = await self._execute("SELECT 1 FROM token_sets WHERE key = ?", (str(key),))
        if rows:
            raise _conflict(key, expected_version)
        return False

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        """Iterate over the stored keys, optionally only those of ``provider``.

        One ``SELECT``, fetched :data:`_KEYS_BATCH` rows at a time on a connection of its own
        (it sees the store as of the first fetch; writers are not held up meanwhile).

        Raises:
            StoreError: The read failed. A malformed stored key is logged and skipped.
        """
        await self._connection()  # the file is checked and the schema exists
        sql = "SELECT key FROM token_sets"
        parameters: tuple[str, ...] = ()
        if provider is not None:  # uses the index on provider
            sql, parameters = f"{sql} WHERE provider = ?", (provider,)
        try:
            reader = await aiosqlite.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreError(f"the SQLite store failed ({type(exc).__name__}: {exc})") from exc
        try:
            cursor = await self._guard(reader.execute(sql, parameters))
            while rows := await self._guard(cursor.fetchmany(_KEYS_BATCH)):
                for (text,) in rows:
                    try:
                        key = TokenKey.parse(text)
                    except ValueError:
                        # One bad row must not stop every later start: skip it, say so.
                        logger.warning("the SQLite store holds a malformed token key; skipping it")
                        continue
                    yield key
        finally:
            await reader.close()

    @staticmethod
    async def _guard(step: Awaitable[_T]) -> _T:
        try:
            return await step
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"the SQLite store failed ({type(exc).__name__}: {exc})") from exc

    # -- refresh duty ------------------------------------------------------------------------

    async def claim_due(
        self, *, now: float, limit: int, claim_for: float, owner: str
    ) -> list[TokenKey]:
        """Take up to ``limit`` sets due at ``now`` (most overdue first) in one statement;
        each falls due again at ``now + claim_for`` unless its claimant writes it first.

        Raises:
            UsageError: A bad ``limit`` or ``claim_for``.
            StoreError: The store failed, or SQLite is older than 3.35 (no ``RETURNING``).
        """
        check_claim(limit, claim_for)
        del owner  # the deadline alone makes a claim exclusive
        if not _HAS_RETURNING:  # pragma: no cover  (every supported platform has 3.35+)
            raise StoreError(f"the refresh duty needs SQLite >= 3.35, not {_SQLITE}")
        _, rows = await self._execute(_CLAIM, (now + claim_for, now, limit))
        claimed = []
        for (text,) in rows:
            try:
                claimed.append(TokenKey.parse(text))
            except ValueError:
                logger.warning("the SQLite store holds a malformed token key; skipping it")
        return claimed

    async def reschedule(self, key: TokenKey, due_at: float | None) -> None:
        """Set (or clear) ``key``'s due time; nothing for an absent key."""
        due = check_due(due_at)
        await self._execute("UPDATE token_sets SET due_at = ? WHERE key = ?", (due, str(key)))

    async def next_due(self) -> float | None:
        """The earliest due time (claims included), or ``None``; one index lookup."""
        sql = "SELECT due_at FROM token_sets WHERE due_at IS NOT NULL ORDER BY due_at LIMIT 1"
        _, rows = await self._execute(sql)
        return float(rows[0][0]) if rows else None

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now`` (an index range count)."""
        _, rows = await self._execute("SELECT count(*) FROM token_sets WHERE due_at <= ?", (now,))
        return int(rows[0][0])

    async def put_pending(self, state: str, data: bytes, *, ttl: float) -> None:
        """Keep ``data`` (through the codec) under ``state`` for ``ttl`` seconds.

        Also deletes expired records, so abandoned flows do not pile up.

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            StoreError: The write failed.
        """
        now = time.time()
        sealed = seal_pending(self._codec, state, data)
        await self._execute(_PUT_PENDING, (state, sealed, now + check_ttl(ttl)))
        await self._execute("DELETE FROM pending_authorizations WHERE expires_at <= ?", (now,))

    async def get_pending(self, state: str) -> bytes | None:
        """The live record under ``state``, or ``None``."""
        sql = "SELECT data FROM pending_authorizations WHERE state = ? AND expires_at > ?"
        _, rows = await self._execute(sql, (state, time.time()))
        return open_pending(self._codec, state, bytes(rows[0][0])) if rows else None

    async def take_pending(self, state: str) -> bytes | None:
        """Delete the record and return it, in one statement: one taker wins, across processes.

        Raises:
            StoreError: The store failed, or SQLite is older than 3.35 (no ``RETURNING``).
        """
        if not _HAS_RETURNING:  # pragma: no cover  (every supported platform has 3.35+)
            raise StoreError(f"pending authorizations need SQLite >= 3.35, not {_SQLITE}")
        sql = "DELETE FROM pending_authorizations WHERE state = ? RETURNING data, expires_at"
        _, rows = await self._execute(sql, (state,))
        if not rows or rows[0][1] <= time.time():
            return None  # an expired row is deleted all the same
        return open_pending(self._codec, state, bytes(rows[0][0]))

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        """The stored sets of ``keys`` that exist, read in batches of 500 keys per statement.

        Raises:
            StoreError: The read failed or stored bytes cannot be decoded.
        """
        wanted = {str(key): key for key in keys}
        names = list(wanted)
        found: dict[TokenKey, Versioned] = {}
        for start in range(0, len(names), 500):
            batch = names[start : start + 500]
            marks = ",".join("?" * len(batch))
            sql = f"SELECT key, version, data FROM token_sets WHERE key IN ({marks})"  # noqa: S608
            _, rows = await self._execute(sql, batch)
            for name, version, data in rows:
                token_set = self._codec.decode(bytes(data), kind="token_set", key=name)
                found[wanted[name]] = Versioned(token_set, int(version))
        return found

    @asynccontextmanager
    async def lease(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:
        """Hold ``key`` exclusively, across tasks and processes, for ``ttl`` seconds unless
        extended (see :class:`~aiofinaccess.stores.Lease`).

        Waits (polling every ``lease_poll`` seconds) while another holder has it. The lease
        is released on exit, even when the body raises or is cancelled; a holder that dies
        loses it once it runs out.

        Args:
            key: The token set to hold.
            ttl: Seconds the lease lasts, and also the longest wait for it.

        Raises:
            LeaseBusyError: Not acquired within ``ttl`` seconds.
            StoreError: The store failed.
        """
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + ttl
        try:
            # Inside the try: if we are cancelled while our insert is in flight, the release
            # below still deletes it (it is queued after the insert on the connection thread).
            while True:
                now = time.monotonic()
                changed, _ = await self._execute(
                    _ACQUIRE, (str(key), owner, now + ttl, now, now + _LONGEST_LEASE)
                )
                if changed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LeaseBusyError(
                        f"timed out waiting for the lease on token set {key.hashed}"
                    )
                await asyncio.sleep(min(remaining, self._lease_poll * _jitter.uniform(0.5, 1.5)))
            yield HeldLease(now + ttl, functools.partial(self._extend_lease, str(key), owner))
        except BaseException:
            with contextlib.suppress(StoreError):  # the first error is the one to report
                await self._release(key, owner)
            raise
        await self._release(key, owner)

    async def _extend_lease(self, name: str, owner: str, asked: float, ttl: float) -> bool:
        changed, _ = await self._execute(_EXTEND, (asked + ttl, name, owner))
        return bool(changed)

    async def _release(self, key: TokenKey, owner: str) -> None:
        """Delete our lease row, shielded: a cancelled holder must still let go of the lease."""
        task = asyncio.create_task(
            self._execute("DELETE FROM leases WHERE key = ? AND owner = ?", (str(key), owner))
        )
        self._releases.add(task)
        task.add_done_callback(self._release_done)
        await asyncio.shield(task)

    def _release_done(self, task: asyncio.Task[tuple[int, list[Any]]]) -> None:
        self._releases.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here, so that a release nobody awaits is not logged

    async def aclose(self) -> None:
        """Finish pending lease releases and close the connection. Idempotent."""
        self._closed = True
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        async with self._open_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except (sqlite3.Error, ValueError) as exc:
                raise StoreError(f"closing the store failed ({type(exc).__name__})") from exc

    async def _connection(self) -> aiosqlite.Connection:
        if self._closed:
            raise StoreError("store is closed")
        if self._conn is None:
            async with self._open_lock:
                if self._closed:
                    raise StoreError("store is closed")
                if self._conn is None:
                    self._conn = await self._connect()
        return self._conn

    async def _connect(self) -> aiosqlite.Connection:
        conn = None
        try:
            await asyncio.to_thread(self._create_file)
            conn = await aiosqlite.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None
            )
            async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise StoreError("the store's file system does not support SQLite's WAL mode")
            # WAL + NORMAL syncs at checkpoints, not at every commit: a committed write
            # survives a crash of the process; only an OS crash can lose the last commits.
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.executescript(_SCHEMA)
            await self._migrate(conn)
            # SQLite has created -wal and -shm by now: check them as well.
            await asyncio.to_thread(check_companions, self._path)
        except BaseException as exc:
            if conn is not None:
                await conn.close()
            if isinstance(exc, OSError | sqlite3.Error):
                raise StoreError(f"cannot open the store ({type(exc).__name__}: {exc})") from exc
            raise
        return conn

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        """Add ``due_at`` to a database written before the refresh duty (once, atomically)."""
        # Another process may be migrating right now; on failure the caller closes the
        # connection, which rolls the transaction back.
        await conn.execute("BEGIN IMMEDIATE")
        async with conn.execute("PRAGMA table_info(token_sets)") as cursor:
            columns = {str(row[1]) for row in await cursor.fetchall()}
        if "due_at" not in columns:
            await conn.execute("ALTER TABLE token_sets ADD COLUMN due_at REAL")
            await conn.execute("UPDATE token_sets SET due_at = 0")
        await conn.execute(_DUE_INDEX)
        await conn.execute("COMMIT")

    def _create_file(self) -> None:
        # Create the file ourselves so that it is never readable by others, not even briefly;
        # and trust an existing one only if it is ours, private and not a link (see _files).
        open_private(self._path)

    async def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> tuple[int, list[Any]]:
        """Run one statement; return the number of changed rows and the result rows."""
        conn = await self._connection()
        try:
            async with self._statement_lock, conn.execute(sql, parameters) as cursor:
                rows = list(await cursor.fetchall())
                return cursor.rowcount, rows
        except (sqlite3.Error, ValueError) as exc:
            # SQLite's messages name tables and constraints, never the bound values.
            raise StoreError(f"the SQLite store failed ({type(exc).__name__}: {exc})") from exc
