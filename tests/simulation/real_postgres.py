"""PostgreSQL inside a simulated world: :class:`aiofinaccess.stores.postgres.PostgresStore`'s own
statements, leases and duty, run on a real PostgreSQL server, one statement at a time.

The server (``tests/support/postgres_server.py``'s, one per interpreter, stopped at exit) and
its one connection live on a thread of their own; a world's loop hands each statement over and
waits for its answer, so every statement takes effect at one virtual instant, in the order the
world's seed gives, and nothing of the server's reaches the world's loop. The database's clock
is the world's: the store's statements read ``current_setting('aiofinaccess.now')`` where they
read ``clock_timestamp()``, and each call sets it to the world's wall clock first. Each world
has a schema of its own, migrated by the store's own migration, the previous world's dropped.
No change feed (``LISTEN`` arrives on the server's own schedule, not the world's): the
PostgreSQL worlds' processes poll, as on SQLite.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import multiprocessing.util
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import asyncpg

from aiofinaccess.core.clock import Clock
from aiofinaccess.core.errors import StoreError
from aiofinaccess.stores import _pg_schema
from aiofinaccess.stores._pg_lease import Leases
from aiofinaccess.stores._pg_pool import Connections
from aiofinaccess.stores._pg_urls import target
from aiofinaccess.stores.postgres import PostgresStore
from tests.support.postgres_server import running_postgres

_T = TypeVar("_T")
#: Where the store's statements read the world's clock instead of the server's.
WORLD_NOW = "current_setting('aiofinaccess.now')::float8"
_SET_NOW = "SELECT set_config('aiofinaccess.now', $1, false)"


class Server:
    """The interpreter's PostgreSQL and its one connection, on a thread of their own."""

    _running: Server | None = None

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._stack = contextlib.ExitStack()
        self.url = self._stack.enter_context(running_postgres()).url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn: Any = self.wait(asyncpg.connect(self.url))
        self._worlds = 0
        self._schema: str | None = None

    @classmethod
    def get(cls) -> Server:
        """The running server, started on first use."""
        # A forked process (the simulation's pool) inherits the parent's Server but not its
        # thread: waiting on it would hang, so a process starts its own.
        if cls._running is None or cls._running._pid != os.getpid():
            cls._running = cls()
            atexit.register(cls._running.stop)
            # A worker of ``--jobs`` ends with os._exit: atexit does not run there, this does.
            multiprocessing.util.Finalize(None, cls._running.stop, exitpriority=10)
        return cls._running

    def wait(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` on the server's thread; block until it is done."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def new_schema(self) -> str:
        """A fresh, migrated schema for a new world (the last world's dropped)."""
        self._worlds += 1
        old, self._schema = self._schema, f"sim_world_{self._worlds}"
        self.wait(self._migrate(old, self._schema))
        return self._schema

    async def _migrate(self, old: str | None, schema: str) -> None:
        if old is not None:
            await self._conn.execute(f'DROP SCHEMA "{old}" CASCADE')
        sql = _pg_schema.Statements(schema)
        await Connections(target(self.url), sql, {})._migrate(self._conn)
        for table in ("token_sets", "leases", "pending_authorizations"):
            # No vacuum between two statements of a world: a scan's order is the world's.
            await self._conn.execute(
                f'ALTER TABLE "{schema}".{table} SET (autovacuum_enabled = false)'
            )

    def run(self, now: float, method: str, *args: Any) -> Any:
        """One statement (``fetch``, ``fetchrow``, ``fetchval``, ``execute``) at ``now``."""
        return self.wait(self._run(now, method, *args))

    async def _run(self, now: float, method: str, *args: Any) -> Any:
        await self._conn.execute(_SET_NOW, repr(now))
        try:
            return await getattr(self._conn, method)(*args)
        except asyncpg.PostgresError as exc:
            raise StoreError(f"PostgreSQL failed ({type(exc).__name__} {exc.sqlstate})") from exc

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.wait(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._stack.close()


class InlineConnections:
    """A store's connections: each statement run at once on :class:`Server`, on the world's
    clock, by a caller that can still reach the server."""

    def __init__(
        self, server: Server, now: Callable[[], float], reachable: Callable[[], bool]
    ) -> None:
        self._server = server
        self._now = now
        self._reachable = reachable
        self.closed = False

    async def call(self, what: str, key: object, method: str, *args: Any) -> Any:
        return await self._send(method, lambda: list(args))

    async def call_when_sent(
        self, what: str, key: object, method: str, query: str, args: Callable[[], list[Any]]
    ) -> Any:
        return await self._send(method, lambda: [query, *args()])

    async def _send(self, method: str, args: Callable[[], list[Any]]) -> Any:
        """Run one statement, its arguments made as it leaves (as the pool's connection)."""
        if self.closed:
            raise StoreError("the PostgreSQL store is closed")
        # A statement is a step of its own, as on the pool: other tasks may run statements
        # between two of one operation's (still at the same virtual instant).
        await asyncio.sleep(0)
        if not self._reachable():
            raise StoreError("simulated: the process is gone")
        return self._server.run(self._now(), method, *args())

    async def connect(self) -> Any:
        raise StoreError("no change feed in a simulated world")

    async def close(self, *, graceful: bool = True) -> None:
        del graceful


class InlinePostgresStore(PostgresStore):
    """PostgresStore's own code on the world's schema, its statements run by
    :class:`InlineConnections`."""

    def __init__(
        self,
        server: Server,
        schema: str,
        *,
        now: Callable[[], float],
        reachable: Callable[[], bool],
        lease_poll: float,
        clock: Clock,
    ) -> None:
        super().__init__(server.url, schema=schema, lease_poll=lease_poll, clock=clock)
        for name, value in vars(self._sql).items():
            if isinstance(value, str) and _pg_schema.NOW in value:
                setattr(self._sql, name, value.replace(_pg_schema.NOW, WORLD_NOW))
        self._connections = InlineConnections(server, now, reachable)  # type: ignore[assignment]
        self._call = self._connections.call
        self._leases = Leases(
            self._sql,
            self._call,
            poll=lease_poll,
            closed=lambda: self._connections.closed,
            clock=self._clock.monotonic,
        )


def snapshot(server: Server, schema: str) -> list[Any]:
    """Every stored set's row: ``key, version, data, due_at``."""
    sql = f'SELECT key, version, data, due_at FROM "{schema}".token_sets ORDER BY key'  # noqa: S608
    rows: list[Any] = server.run(0.0, "fetch", sql)
    return rows
