"""The connections of a :class:`~aiofinaccess.stores.postgres.PostgresStore`: asyncpg's pool,
opened lazily and once (the schema created or migrated on its first connection), every
statement run through :meth:`Connections.call` so that asyncpg's and the socket's errors
become :class:`~aiofinaccess.core.errors.StoreError` (named by type and SQLSTATE, never by a
message that may quote a value or the URL), and the change feed's own connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..core.errors import StoreError
from ..core.tokens import TokenKey
from . import _pg_rows as rows
from ._pg_schema import Statements
from ._pg_urls import Target

try:
    import asyncpg

    MISSING: ImportError | None = None
    _ERRORS: tuple[type[Exception], ...] = (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,  # ssl.SSLError (a certificate refused) among them
        TimeoutError,  # asyncpg's own connect timeout
    )
except ImportError as exc:  # pragma: no cover  (the test extra installs asyncpg)
    MISSING = exc
    _ERRORS = (OSError,)

__all__ = ["MISSING", "Connections"]

_T = TypeVar("_T")


class Connections:
    """One store's pool.

    Args:
        target: Where to connect, and with which TLS.
        sql: The store's statements (the schema's migrations among them).
        pool: ``min_size``, ``max_size`` and ``timeout`` (seconds to connect).
    """

    def __init__(self, target: Target, sql: Statements, pool: dict[str, float]) -> None:
        self._target = target
        self._sql = sql
        self._options = pool
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None
        self.closed = False

    def _connect_options(self) -> dict[str, Any]:
        return {"ssl": self._target.ssl, "server_settings": {"application_name": "aiofinaccess"}}

    async def connect(self) -> Any:
        """A connection of its own (the change feed's), outside the pool."""
        timeout = self._options["timeout"]
        return await asyncpg.connect(self._target.url, timeout=timeout, **self._connect_options())

    async def ready(self) -> Any:
        """The pool, opened (and the schema migrated) on first use.

        Raises:
            StoreError: Closed, unreachable, refused, or a schema newer than this version.
        """
        if self._pool is not None:  # kept while the store's aclose drains lease releases
            return self._pool
        if self.closed:
            raise StoreError("the PostgreSQL store is closed")
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.closed:
                raise StoreError("the PostgreSQL store is closed")
            if self._pool is None:
                try:
                    pool = await asyncpg.create_pool(
                        self._target.url,
                        reset=_keep,  # see _keep
                        **self._options,
                        **self._connect_options(),
                    )
                except _ERRORS as exc:
                    raise StoreError(f"cannot open the PostgreSQL store ({_why(exc)})") from exc
                try:
                    async with pool.acquire() as conn:
                        await self._migrate(conn)
                    if self.closed:  # closed while we connected: close() saw no pool to close
                        raise StoreError("the PostgreSQL store is closed")
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
        return self._pool

    async def _migrate(self, conn: Any) -> None:
        """Create the schema or bring it to this version's, once, under an advisory lock.

        A schema already at this version is only read: the app's login then needs no right
        to create anything (a DBA ran the migration)."""
        sql = self._sql
        try:
            async with conn.transaction():
                if await conn.fetchval(sql.has_version) is not None:
                    found = await conn.fetchval(sql.get_version)
                    if found == len(sql.migrations):
                        return
                await conn.execute(sql.lock)
                await conn.execute(sql.create_schema)
                await conn.execute(sql.create_version)
                found = await conn.fetchval(sql.get_version)
                version = 0 if found is None else rows.integer(found, "schema version")
                if version > len(sql.migrations):
                    raise StoreError(
                        f"the PostgreSQL schema {sql.schema} is at version {version}, newer "
                        f"than this aiofinaccess knows ({len(sql.migrations)}): upgrade it"
                    )
                for step in sql.migrations[version:]:
                    await conn.execute(step)
                if version < len(sql.migrations):
                    await conn.execute(sql.set_version, len(sql.migrations))
        except _ERRORS as exc:
            raise StoreError(f"cannot prepare the PostgreSQL store ({_why(exc)})") from exc

    async def call(self, what: str, key: TokenKey | None, method: str, *args: Any) -> Any:
        """Run one statement through the pool (``fetch``, ``fetchrow``, ``fetchval`` or
        ``execute``)."""
        subject = f" token set {key.hashed}" if key is not None else ""
        pool = await self.ready()
        try:
            return await getattr(pool, method)(*args)
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL {what}{subject} failed ({_why(exc)})") from exc

    async def transact(self, what: str, work: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run ``work(connection)`` in one transaction on a connection of the pool."""
        pool = await self.ready()
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL {what} failed ({_why(exc)})") from exc

    async def call_when_sent(
        self, what: str, key: TokenKey, method: str, query: str, args: Callable[[], list[Any]]
    ) -> Any:
        """:meth:`call` with the arguments made once a connection is ours: values that age
        (a set's age, the writer's clock) are read as the statement leaves, not before a wait
        for the pool."""
        pool = await self.ready()
        try:
            async with pool.acquire() as conn:
                return await getattr(conn, method)(query, *args())
        except _ERRORS as exc:
            failed = f"PostgreSQL {what} token set {key.hashed} failed ({_why(exc)})"
            raise StoreError(failed) from exc

    async def close(self, *, graceful: bool = True) -> None:
        """Close the pool: wait for calls in flight (``graceful``) or cut them off."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if graceful:
            try:
                await pool.close()
            except BaseException:
                pool.terminate()
                raise
        else:
            pool.terminate()


async def _keep(connection: Any) -> None:
    """A pooled connection goes back as it is: no statement of the store leaves session
    state (the feed listens on a connection of its own, migrations lock per transaction),
    so asyncpg's reset query would cost a round trip per call for nothing. asyncpg still
    ends an open transaction before it calls this."""
    del connection


def _why(exc: BaseException) -> str:
    """An error's type and SQLSTATE: never its message, which may quote values or the URL."""
    code = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} {code}" if isinstance(code, str) else type(exc).__name__
