"""A token store in PostgreSQL, shared by every worker on every machine that can reach it.

Each compare-and-swap, claim, take and lease step is one SQL statement (its own transaction)
on a connection of asyncpg's pool; ages, claims and expiries are on the database's clock;
changes go out as ``NOTIFY`` in the statement that writes. The SQL is :mod:`._pg_schema`'s.
See docs/guides/deployment.md.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import ConfigurationError, StoreConflictError, StoreError
from ..core.tokens import TokenKey, TokenSet
from . import _pg_rows as rows
from ._pg_connections import PgConnections
from ._pg_feed import Listener
from ._pg_lease import Leases
from ._pg_pool import MISSING, Connections
from ._pg_schema import DUE_TOLERANCE, SCHEMA_NAME, Statements
from ._pg_urls import describe, target
from ._records import parse_key, read_record
from ._sql_payments import POSTGRES, PaymentRows
from .codec import JsonCodec, TokenCodec
from .payment_records import Delegated
from .protocol import (
    Claimed,
    HeldLease,
    StoreStats,
    Versioned,
    check_claim,
    check_due,
    check_scope,
    check_ttl,
    check_uses,
    open_pending,
    seal_pending,
    sort_claimed,
    writer_age,
)

__all__ = ["PostgresStore"]

#: Keys read per statement while listing, and sets per statement in ``get_many``.
BATCH: Final = 500
#: A ``NOTIFY`` payload is at most 8,000 bytes; a longer change is not announced.
_PAYLOAD_LIMIT: Final = 7_900


class PostgresStore(PgConnections, Delegated):
    """Token sets in PostgreSQL, with compare-and-swap, a lease, a change feed
    (``LISTEN``/``NOTIFY``), the refresh duty (``FOR UPDATE SKIP LOCKED`` claims) and
    pending authorizations; one pool of connections per store.

    Args:
        url: ``postgresql://user:password@host:port/database``. TLS: ``sslmode=verify-full``
            (the default for any host but a Unix socket or loopback) checks the server's
            certificate against ``sslrootcert`` (the system's CAs without it) and its name;
            ``sslmode=disable`` turns TLS off; the modes that skip a check are refused
            (:mod:`._pg_urls`).
        schema: The PostgreSQL schema that holds the store's tables (created, and migrated,
            on first use); one per application.
        codec: Token set <-> bytes; :class:`~aiofinaccess.stores.codec.JsonCodec` by default,
            :class:`~aiofinaccess.stores.codec.FernetCodec` to encrypt at rest.
        lease_poll: Seconds between attempts to take a held lease (plus up to as much jitter).
        min_connections: Connections the pool keeps open.
        max_connections: Connections the pool opens at most; more calls wait for one.
        connect_timeout: Seconds to open one connection (TLS handshake included).
        clock: The clocks ``put`` measures a set's age on and leases are judged on, and
            ``put``'s distance from the database's clock: the system's by default.

    Raises:
        ConfigurationError: A bad ``url``, ``schema`` or setting, or asyncpg is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = "aiofinaccess",
        codec: TokenCodec | None = None,
        lease_poll: float = 0.02,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if MISSING is not None:  # pragma: no cover
            raise ConfigurationError(
                "PostgresStore needs asyncpg: pip install aiofinaccess[postgres]"
            )
        if not isinstance(schema, str) or not SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(
                "schema must be a lower-case identifier of at most 40 letters, digits and _"
            )
        if not (isinstance(lease_poll, int | float) and math.isfinite(lease_poll)) or not (
            lease_poll > 0
        ):
            raise ConfigurationError("lease_poll must be a positive number of seconds")
        if not (
            isinstance(min_connections, int)
            and isinstance(max_connections, int)
            and 0 <= min_connections <= max_connections
            and max_connections >= 1
        ):
            raise ConfigurationError("need 0 <= min_connections <= max_connections, max >= 1")
        if not (isinstance(connect_timeout, int | float) and connect_timeout > 0):
            raise ConfigurationError("connect_timeout must be a positive number of seconds")
        self._target = target(url)
        self._where = describe(url)
        self._schema = schema
        self._sql = Statements(schema)
        self._channel = f"aiofinaccess_{schema}"
        self._codec: TokenCodec = JsonCodec() if codec is None else codec
        table = f"{self._sql.schema}.payment_records"
        self._payment_rows = PaymentRows(POSTGRES.on(table), self._rows, self._codec)
        self._clock: Clock = SYSTEM_CLOCK if clock is None else clock
        options = {"min_size": min_connections, "max_size": max_connections}
        self._connections = Connections(
            self._target, self._sql, {**options, "timeout": connect_timeout}
        )
        self._call = self._connections.call
        #: Rows skipped while listing or reading in bulk.
        self.stats = StoreStats()
        self._leases = Leases(
            self._sql,
            self._call,
            poll=lease_poll,
            closed=lambda: self._connections.closed,
            clock=self._clock.monotonic,  # waiters judge a lease on their own monotonic clock
        )
        self._feed = Listener(
            self._connections.connect, self._channel, lambda: self._connections.closed
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self._where}, schema={self._schema!r})"

    async def open(self) -> PostgresStore:
        """Open the pool and create or migrate the schema; other methods open lazily.

        Raises:
            StoreError: The database cannot be reached, refused the certificate or the login,
                or holds a schema newer than this version knows.
        """
        await self._connections.ready()
        return self

    async def __aenter__(self) -> PostgresStore:
        """Open the store (see :meth:`open`)."""
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the store (see :meth:`aclose`)."""
        await self.aclose()

    # -- token sets ------------------------------------------------------------------------

    async def get(self, key: TokenKey) -> Versioned | None:
        """Return the stored token set for ``key`` and its version (and age), or ``None``.

        Raises:
            StoreError: The read failed or the stored bytes cannot be decoded.
        """
        row = await self._call("get", key, "fetchrow", self._sql.get, str(key))
        if row is None:
            return None
        version = rows.integer(row[0], "version")
        data = rows.blob(row[1], "record")
        token_set = self._codec.decode(data, kind="token_set", key=str(key))
        age, transit = rows.number(row[2], "age"), rows.number(row[3], "transit")
        return Versioned(token_set, version, age=age, transit=transit)

    async def put(
        self,
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        """Compare-and-swap ``token_set`` in at ``expected_version``, set its due time
        (``None``: not scheduled) and announce it, in one statement.

        Raises:
            StoreConflictError: The stored version is not ``expected_version``.
            StoreError: The database failed.
        """
        due = check_due(due_at)
        data = self._codec.encode(token_set, kind="token_set", key=str(key))
        version = secrets.randbits(62)
        while version == expected_version:  # pragma: no cover  (one chance in 2**62)
            version = secrets.randbits(62)
        payload = _payload(key, version)
        expected = [] if expected_version is None else [expected_version]
        query = self._sql.insert if expected_version is None else self._sql.update

        def args() -> list[Any]:  # read as the statement leaves (a pool wait ages the set too)
            age = writer_age(token_set, self._clock)
            wall = self._clock.wall()
            return [str(key), key.provider, version, data, age, due, wall, DUE_TOLERANCE, *rest]

        rest = [self._channel, payload, *expected]
        done = await self._connections.call_when_sent("put", key, "fetch", query, args)
        if not done:
            raise StoreConflictError(f"token set {key.hashed} is not at the expected version")
        return version

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        """Delete ``key`` and its due time (only at ``expected_version`` when given) and
        announce it.

        Raises:
            StoreConflictError: The key exists at another version than ``expected_version``.
            StoreError: The database failed.
        """
        payload = _payload(key, None)
        sql = self._sql.delete
        done = await self._call(
            "delete", key, "fetch", sql, str(key), expected_version, self._channel, payload
        )
        if done or expected_version is None:
            return bool(done)
        # Gone or at another version: either answer is true at some instant of this call.
        if await self._call("delete", key, "fetchval", self._sql.exists, str(key)) is not None:
            raise StoreConflictError(f"token set {key.hashed} is not at the expected version")
        return False

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        """The stored sets of ``keys`` that exist, :data:`BATCH` keys per statement.

        A record that does not decode is logged by key hash, counted
        (``stats.unreadable_records``) and left out.
        """
        wanted = {str(key): key for key in keys}
        names = list(wanted)
        found: dict[TokenKey, Versioned] = {}
        for start in range(0, len(names), BATCH):
            batch = names[start : start + BATCH]
            for row in await self._call("get many", None, "fetch", self._sql.get_many, batch):
                key = wanted.get(rows.text(row[0], "key"))
                if key is None:  # pragma: no cover  (we asked for these keys only)
                    continue
                version = rows.integer(row[1], "version")
                age, transit = rows.number(row[3], "age"), rows.number(row[4], "transit")
                data = rows.blob(row[2], "record")
                stored = read_record(
                    self._codec, self.stats, key, version, data, age=age, transit=transit
                )
                if stored:
                    found[key] = stored
        return found

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        """Iterate over stored keys, optionally of one provider: :data:`BATCH` at a time, in
        key order, each page its own statement (no transaction stays open while the caller
        works). A key written meanwhile may or may not be listed.

        Raises:
            StoreError: The read failed. A malformed stored key is logged and skipped.
        """
        last = ""
        while True:
            if provider is None:
                args: tuple[Any, ...] = (self._sql.keys, last, BATCH)
            else:
                args = (self._sql.provider_keys, last, BATCH, provider)
            page = await self._call("keys", None, "fetch", *args)
            for row in page:
                last = rows.text(row[0], "key")
                # One bad row must not stop every later start: skipped, logged, counted.
                if (key := parse_key(self.stats, last, "PostgreSQL")) is not None:
                    yield key
            if len(page) < BATCH:
                return

    # -- refresh duty ----------------------------------------------------------------------

    async def claim_due(
        self, *, limit: int, claim_for: float, owner: str, clients: Collection[TokenKey]
    ) -> Claimed:
        """Take up to ``limit`` sets in ``clients``' scope that are due on the database's
        clock, most overdue first, in one statement (``FOR UPDATE SKIP LOCKED``: concurrent
        claimants pass each other's rows by); each falls due again ``claim_for`` seconds
        later unless its claimant writes it first. A row whose key does not parse leaves the
        duty and is counted in ``dropped``.

        Raises:
            UsageError: A bad ``limit``, ``claim_for`` or ``clients``.
            StoreError: The database failed.
        """
        del owner  # the deadline alone makes a claim exclusive
        check_claim(limit, claim_for)
        scope = check_scope(clients) or {}
        if not scope:
            return Claimed()
        own = [str(key) for key in scope.values()]
        found = await self._call(
            "claim", None, "fetch", self._sql.claim, list(scope), own, limit, float(claim_for)
        )
        claimed, junk = sort_claimed(
            ((rows.text(row[0], "key"), rows.text(row[1], "provider")) for row in found), scope
        )
        if junk:  # malformed: no claim could ever renew it
            await self._call("claim", None, "execute", self._sql.unschedule, junk)
            claimed.dropped = len(junk)
        return claimed

    async def reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        """Set (or clear) ``key``'s due time (moved onto the database's clock as ``put``'s);
        nothing for an absent key or, with ``expected_version``, one at another version."""
        due = check_due(due_at)
        args = (str(key), due, expected_version, self._clock.wall(), DUE_TOLERANCE)
        await self._call("reschedule", key, "execute", self._sql.reschedule, *args)

    async def next_due(self, *, clients: Collection[TokenKey] | None = None) -> float | None:
        """The earliest due time (claims included) in ``clients``' scope (everything:
        ``None``), or ``None``: an index probe per provider."""
        scope = check_scope(clients)
        if scope is None:
            found = await self._call("next due", None, "fetchval", self._sql.next_due)
        elif not scope:
            return None
        else:
            own = [str(key) for key in scope.values()]
            sql = self._sql.next_due_in_scope
            found = await self._call("next due", None, "fetchval", sql, list(scope), own)
        return None if found is None else rows.number(found, "due time")

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now`` (an index range count)."""
        found = await self._call("due count", None, "fetchval", self._sql.due_count, now)
        return rows.integer(found, "count")

    # -- last use --------------------------------------------------------------------------

    async def mark_used(self, uses: Mapping[TokenKey, float]) -> None:
        """Stamp each stored key's last use (``uses[key]`` seconds ago) on the database's
        clock, :data:`BATCH` keys per statement; an unscheduled key falls due now.

        Raises:
            UsageError: A bad age.
            StoreError: The database failed (earlier batches may be written).
        """
        checked = check_uses(uses)
        for start in range(0, len(checked), BATCH):
            batch = checked[start : start + BATCH]
            names, ages = [str(key) for key, _ in batch], [age for _, age in batch]
            await self._call("mark used", None, "execute", self._sql.mark_used, names, ages)

    async def idle_for(self, keys: Collection[TokenKey]) -> dict[TokenKey, float | None]:
        """Seconds since each stored key's last stamped use, on the database's clock
        (``None``: never stamped), :data:`BATCH` keys per statement."""
        wanted = {str(key): key for key in keys}
        names = list(wanted)
        found: dict[TokenKey, float | None] = {}
        for start in range(0, len(names), BATCH):
            batch = names[start : start + BATCH]
            for row in await self._call("idle for", None, "fetch", self._sql.idle_for, batch):
                key = wanted[rows.text(row[0], "key")]
                found[key] = None if row[1] is None else rows.number(row[1], "idle time")
        return found

    # -- leases ----------------------------------------------------------------------------

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[HeldLease]:
        """Hold ``key`` for ``ttl`` seconds unless extended, across every user of this
        schema (a row with an owner token: :mod:`._pg_lease`).

        Waits at most ``ttl`` seconds for a held lease.

        Raises:
            LeaseBusyError: The lease stayed taken for ``ttl`` seconds.
            StoreError: The database failed.
        """
        return self._leases.hold(key, ttl=ttl)

    # -- pending authorizations ------------------------------------------------------------

    async def put_pending(self, state: str, data: bytes, *, ttl: float) -> None:
        """Keep ``data`` (through the codec) under ``state`` for ``ttl`` seconds of the
        database's clock; also deletes expired records.

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            StoreError: The database failed.
        """
        seconds = check_ttl(ttl)
        sealed = seal_pending(self._codec, state, data)
        await self._call(
            "put pending", None, "execute", self._sql.put_pending, state, sealed, seconds
        )
        await self._call("put pending", None, "execute", self._sql.prune_pending)

    async def get_pending(self, state: str) -> bytes | None:
        """The live record under ``state``, or ``None``."""
        found = await self._call("get pending", None, "fetchval", self._sql.get_pending, state)
        return (
            None if found is None else open_pending(self._codec, state, rows.blob(found, "record"))
        )

    async def take_pending(self, state: str) -> bytes | None:
        """Delete the record and return it, in one statement: one taker wins."""
        row = await self._call("take pending", None, "fetchrow", self._sql.take_pending, state)
        if row is None or row[1] is not True:
            return None  # an expired row is deleted all the same
        return open_pending(self._codec, state, rows.blob(row[0], "record"))

    async def _rows(self, statement: str, parameters: Sequence[Any]) -> list[Any]:
        return list(await self._call("payment record", None, "fetch", statement, *parameters))

    # -- the change feed -------------------------------------------------------------------

    def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        """Yield ``(key, version or None if deleted)`` for every committed write by anyone,
        this store too.

        Call it in a running event loop. Each iterator gets every change announced after the
        ``LISTEN`` stands (:meth:`wait_subscribed`), and ends when the store closes.
        """
        return self._feed.iterator()

    async def wait_subscribed(self, timeout: float = 5.0) -> None:
        """Start the change feed if needed; return once its ``LISTEN`` stands.

        Raises:
            StoreError: Not listening within ``timeout`` seconds, or the store is closed.
        """
        if self._connections.closed:
            raise StoreError("cannot listen: the PostgreSQL store is closed")
        self._feed.start()
        try:
            async with asyncio.timeout(timeout):
                await self._feed.subscribed.wait()
        except TimeoutError:
            raise StoreError("timed out listening to the PostgreSQL change feed") from None

    async def aclose(self) -> None:
        """Finish lease releases, end the change feed and close the pool. Idempotent.

        Cancelled meanwhile (a session manager bounds its close), it abandons the releases
        and cuts off the pool's connections."""
        if self._connections.closed:
            return
        self._connections.closed = True
        try:
            await self._leases.drain()  # already on the wire: a next holder is waiting
            await self._feed.stop()
            await self._connections.close()
        except BaseException:
            await self._leases.abandon()
            await self._feed.stop()
            await self._connections.close(graceful=False)
            raise


def _payload(key: TokenKey, version: int | None) -> str:
    """The change's ``NOTIFY`` payload (``''``: too long to send; the feed is best effort)."""
    payload = f"{key}\n{'' if version is None else version}"
    return payload if len(payload.encode()) <= _PAYLOAD_LIMIT else ""
