"""A durable token store in one SQLite file: the embedded default for one machine.

Every operation is one SQL statement (its own write transaction), so a cancelled task never
leaves a transaction open on the shared connection, which aiosqlite runs on its own thread.
See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.errors import ConfigurationError, StoreConflictError, StoreError
from ..core.tokens import TokenKey, TokenSet
from . import _sqlite_schema as sql
from ._files import check_companions, open_private, store_path
from ._records import parse_key, read_record
from ._sql_payments import SQLITE, PaymentRows
from ._sqlite_budgets import SQLiteBudgets
from ._sqlite_connections import SQLiteConnections
from ._sqlite_duty import DueRows
from ._sqlite_lease import Leases
from .codec import JsonCodec, TokenCodec
from .payment_records import Delegated
from .protocol import (
    Claimed,
    HeldLease,
    StoreStats,
    Versioned,
    check_due,
    check_ttl,
    check_uses,
    open_pending,
    seal_pending,
)

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["SQLiteStore"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")


def _conflict(key: TokenKey, expected_version: int | None) -> StoreConflictError:
    state = "already exists" if expected_version is None else f"is not at {expected_version}"
    return StoreConflictError(f"token set {key.hashed} {state}")


class SQLiteStore(SQLiteConnections, SQLiteBudgets, Delegated):
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
        self._path = store_path(path)
        if not lease_poll > 0:
            raise ConfigurationError("lease_poll must be a positive number of seconds")
        if not busy_timeout >= 0:
            raise ConfigurationError("busy_timeout must be a non-negative number of seconds")
        self._codec: TokenCodec = JsonCodec() if codec is None else codec
        self._busy_timeout = busy_timeout
        self._conn: aiosqlite.Connection | None = None
        self._closed = False
        #: Rows skipped while listing or reading in bulk.
        self.stats = StoreStats()
        self._open_lock = asyncio.Lock()
        # One statement at a time on the shared connection: aiosqlite queues execute and fetch
        # separately, and a write slipped between another task's execute and fetch would have to
        # upgrade that task's open read snapshot, which SQLite refuses at once (SQLITE_BUSY).
        self._statement_lock = asyncio.Lock()
        self._leases = Leases(self._execute, poll=lease_poll)
        self._due = DueRows(self._execute)
        self._payment_rows = PaymentRows(SQLITE, self._rows, self._codec)

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
        _, rows = await self._execute(sql.GET_SET, (str(key),))
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
            statement = sql.INSERT_SET
            parameters: tuple[Any, ...] = (str(key), key.provider, version, data, time.time(), due)
        else:
            statement = sql.UPDATE_SET
            parameters = (version, data, time.time(), due, str(key), expected_version)
        changed, _ = await self._execute(statement, parameters)
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
        changed, _ = await self._execute(sql.DELETE_SET, (str(key), expected_version))
        if changed or expected_version is None:
            return bool(changed)
        # Gone or at another version: either answer is true at some instant of this call.
        _, rows = await self._execute(sql.HAS_SET, (str(key),))
        if rows:
            raise _conflict(key, expected_version)
        return False

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        """Iterate over the stored keys, optionally only those of ``provider``.

        One ``SELECT``, fetched :data:`._sqlite_schema.KEYS_BATCH` rows at a time on a
        connection of its own (it sees the store as of the first fetch; writers are not held
        up meanwhile).

        Raises:
            StoreError: The read failed. A malformed stored key is logged and skipped.
        """
        await self._connection()  # the file is checked and the schema exists
        statement = sql.KEYS
        parameters: tuple[str, ...] = ()
        if provider is not None:  # uses the index on provider
            statement, parameters = f"{sql.KEYS} WHERE provider = ?", (provider,)
        import aiosqlite  # noqa: PLC0415  (the driver loads with the first connection)

        try:
            reader = await aiosqlite.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreError(f"the SQLite store failed ({type(exc).__name__}: {exc})") from exc
        try:
            cursor = await self._guard(reader.execute(statement, parameters))
            while rows := await self._guard(cursor.fetchmany(sql.KEYS_BATCH)):
                for (text,) in rows:
                    # One bad row must not stop every later start: skipped, logged, counted.
                    if (key := parse_key(self.stats, text, "SQLite")) is not None:
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
        self, *, limit: int, claim_for: float, owner: str, clients: Collection[TokenKey]
    ) -> Claimed:
        """Take up to ``limit`` sets in ``clients``' scope due now (this machine's clock), most
        overdue first, in one statement; each falls due again ``claim_for`` seconds later
        unless its claimant writes it first. A row whose key does not parse leaves the duty
        (:mod:`._sqlite_duty`).

        Raises:
            UsageError: A bad ``limit``, ``claim_for`` or ``clients``.
            StoreError: The store failed, or SQLite is older than 3.35 (no ``RETURNING``).
        """
        del owner  # the deadline alone makes a claim exclusive
        return await self._due.claim(limit=limit, claim_for=claim_for, clients=clients)

    async def reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        """Set (or clear) ``key``'s due time; nothing for an absent key, or one at another
        version than ``expected_version``."""
        await self._due.reschedule(key, due_at, expected_version)

    async def next_due(self, *, clients: Collection[TokenKey] | None = None) -> float | None:
        """The earliest due time (claims included) in ``clients``' scope (everything:
        ``None``), or ``None``; an index lookup per provider."""
        return await self._due.next_due(clients)

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now`` (an index range count)."""
        return await self._due.count(now)

    async def mark_used(self, uses: Mapping[TokenKey, float]) -> None:
        """Stamp each stored key's last use (``uses[key]`` seconds ago, on this machine's
        clock, which every process sharing the file reads); an unscheduled key falls due now.

        Raises:
            UsageError: A bad age.
            StoreError: SQLite failed (earlier batches may be written).
        """
        checked = check_uses(uses)
        for start in range(0, len(checked), sql.STAMP_BATCH):
            batch = checked[start : start + sql.STAMP_BATCH]
            now = time.time()
            parameters: list[Any] = [value for key, age in batch for value in (str(key), now - age)]
            await self._execute(sql.mark_used(len(batch)), [*parameters, now])

    async def idle_for(self, keys: Collection[TokenKey]) -> dict[TokenKey, float | None]:
        """Seconds since each stored key's last stamped use (``None``: never stamped)."""
        wanted = {str(key): key for key in keys}
        names = list(wanted)
        found: dict[TokenKey, float | None] = {}
        for start in range(0, len(names), sql.STAMP_BATCH):
            batch = names[start : start + sql.STAMP_BATCH]
            _, rows = await self._execute(sql.idle_for(len(batch)), batch)
            now = time.time()
            for name, used_at in rows:
                found[wanted[name]] = None if used_at is None else max(0.0, now - used_at)
        return found

    async def put_pending(self, state: str, data: bytes, *, ttl: float) -> None:
        """Keep ``data`` (through the codec) under ``state`` for ``ttl`` seconds.

        Also deletes expired records, so abandoned flows do not pile up.

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            StoreError: The write failed.
        """
        now = time.time()
        sealed = seal_pending(self._codec, state, data)
        await self._execute(sql.PUT_PENDING, (state, sealed, now + check_ttl(ttl)))
        await self._execute(sql.PRUNE_PENDING, (now,))

    async def get_pending(self, state: str) -> bytes | None:
        """The live record under ``state``, or ``None``."""
        _, rows = await self._execute(sql.GET_PENDING, (state, time.time()))
        return open_pending(self._codec, state, bytes(rows[0][0])) if rows else None

    async def take_pending(self, state: str) -> bytes | None:
        """Delete the record and return it, in one statement: one taker wins, across processes.

        Raises:
            StoreError: The store failed, or SQLite is older than 3.35 (no ``RETURNING``).
        """
        if not sql.HAS_RETURNING:  # pragma: no cover  (every supported platform has 3.35+)
            raise StoreError(
                f"pending authorizations need SQLite >= 3.35, not {sql.SQLITE_VERSION}"
            )
        _, rows = await self._execute(sql.TAKE_PENDING, (state,))
        if not rows or rows[0][1] <= time.time():
            return None  # an expired row is deleted all the same
        return open_pending(self._codec, state, bytes(rows[0][0]))

    async def _rows(self, statement: str, parameters: Sequence[Any]) -> list[Any]:
        return (await self._execute(statement, parameters))[1]

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        """The stored sets of ``keys`` that exist, read in batches of 500 keys per statement.

        Raises:
            StoreError: The read failed. A record that does not decode is logged by key hash,
                counted (``stats.unreadable_records``) and left out.
        """
        wanted = {str(key): key for key in keys}
        names = list(wanted)
        found: dict[TokenKey, Versioned] = {}
        for start in range(0, len(names), 500):
            batch = names[start : start + 500]
            _, rows = await self._execute(sql.get_many(len(batch)), batch)
            for name, version, data in rows:
                key = wanted[name]
                if stored := read_record(self._codec, self.stats, key, version, bytes(data)):
                    found[key] = stored
        return found

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[HeldLease]:
        """Hold ``key`` exclusively, across tasks and processes, for ``ttl`` seconds unless
        extended (see :class:`~aiofinaccess.stores.Lease`; a row: :mod:`._sqlite_lease`).

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
        return self._leases.hold(key, ttl=ttl)

    async def aclose(self) -> None:
        """Finish pending lease releases and close the connection. Idempotent."""
        self._closed = True
        try:
            await self._leases.drain()
        finally:  # cancelled (a manager bounds its close): the connection still closes
            await self._close_connection()

    async def _close_connection(self) -> None:
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
        import aiosqlite  # noqa: PLC0415  (the driver loads with the first connection)

        conn = None
        try:
            await asyncio.to_thread(self._create_file)
            conn = await aiosqlite.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None
            )
            await sql.prepare(conn)
            # SQLite has created -wal and -shm by now: check them as well.
            await asyncio.to_thread(check_companions, self._path)
        except BaseException as exc:
            if conn is not None:
                await conn.close()
            if isinstance(exc, OSError | sqlite3.Error):
                raise StoreError(f"cannot open the store ({type(exc).__name__}: {exc})") from exc
            raise
        return conn

    def _create_file(self) -> None:
        # Create the file ourselves so that it is never readable by others, not even briefly;
        # and trust an existing one only if it is ours, private and not a link (see _files).
        open_private(self._path)

    async def _execute(
        self, statement: str, parameters: Sequence[Any] = ()
    ) -> tuple[int, list[Any]]:
        """Run one statement; return the number of changed rows and the result rows."""
        conn = await self._connection()
        try:
            async with self._statement_lock, conn.execute(statement, parameters) as cursor:
                rows = list(await cursor.fetchall())
                return cursor.rowcount, rows
        except (sqlite3.Error, ValueError) as exc:
            # SQLite's messages name tables and constraints, never the bound values.
            raise StoreError(f"the SQLite store failed ({type(exc).__name__}: {exc})") from exc
