"""The real stores inside a simulated world, on virtual time and without a socket or a thread.

* **SQLite**: :class:`aiofinaccess.stores.sqlite.SQLiteStore`'s own statements, leases and
  duty, run inline on one in-memory ``sqlite3`` connection shared by every simulated process
  (one machine's file) instead of on aiosqlite's thread.
* **Redis**: :class:`aiofinaccess.stores.redis.RedisStore` unchanged, its Lua scripts run by
  fakeredis (with lupa) in this process, one client per simulated process on one server; its
  change feed (pub/sub) too.
* **PostgreSQL**: :class:`aiofinaccess.stores.postgres.PostgresStore`'s own statements, leases
  and duty on a real PostgreSQL server, one statement at a time, on the world's clock
  (:mod:`.real_postgres`).

Time and chance: the stores' ``time``, ``secrets`` and ``random`` (versions, lease owners, poll
jitter) and fakeredis's clock (``PX`` expiry) are replaced by stand-ins that, inside a world's
loop, read its virtual clock and draw from its seeded generator, so a seed replays exactly and
every TTL runs out in virtual time; outside a simulated loop they are the real ones.

Faults: the world's latency, failing calls, lost answers and outages wrap each store call
(:class:`RealStoreClient`), as around the simulated store; every call that took effect is
recorded (:mod:`.linearizability`) and the history is checked when the world ends.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sqlite3
import tempfile
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import fakeredis
import fakeredis._socket._base as fakeredis_socket
import fakeredis.commands_mixins.server_mixin as fakeredis_server
from redis.exceptions import ConnectionError as RedisConnectionError

from aiofinaccess.core.errors import StoreError
from aiofinaccess.core.tokens import TokenKey
from aiofinaccess.stores import (
    _pg_lease,
    _redis_duty,
    _redis_lease,
    _sqlite_budgets,
    _sqlite_connections,
    _sqlite_duty,
    _sqlite_lease,
    postgres,
)
from aiofinaccess.stores import _sqlite_schema as sql
from aiofinaccess.stores import protocol as store_protocol
from aiofinaccess.stores import redis as redis_store
from aiofinaccess.stores import sqlite as sqlite_store
from aiofinaccess.stores._redis_layout import Layout
from aiofinaccess.stores.postgres import PostgresStore
from aiofinaccess.stores.redis import RedisStore
from aiofinaccess.stores.sqlite import SQLiteStore
from tests.simulation import real_postgres
from tests.simulation.linearizability import History
from tests.simulation.real_client import (
    RealDutyStoreClient,
    RealFeedDutyStoreClient,
    RealFeedStoreClient,
    RealStoreClient,
)
from tests.simulation.store import SharedStore

if TYPE_CHECKING:
    from tests.simulation.world import Process, World

_T = TypeVar("_T")
#: The machine's monotonic clock reads this much more than the loop's (any origin will do).
_BOOT = 1000.0
#: Few shards: the merged claim script reads every one of them each poll.
REDIS_SHARDS = 2
#: Seconds between a waiter's attempts to take a held lease (the stores' default is 0.02: a
#: waiter's polls are most of a world's store commands, and a tenth of a second keeps the
#: real-store worlds within the CI budget).
LEASE_POLL = 0.1
_BACKENDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RealSharedStore] = (
    weakref.WeakKeyDictionary()
)


def _world() -> RealSharedStore | None:
    """The real-store world whose loop runs this code, if any."""
    try:
        return _BACKENDS.get(asyncio.get_running_loop())
    except RuntimeError:  # no running loop (or another thread): the real module serves
        return None


class _Time:
    """``time`` for the stores and fakeredis: virtual inside a world, real elsewhere."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time(self) -> float:
        shared = _world()
        return time.time() if shared is None else shared.world.wall()

    def monotonic(self) -> float:
        shared = _world()
        return time.monotonic() if shared is None else shared.monotonic()


class _Chance:
    """``secrets`` and ``random`` for the stores: the world's seeded generator inside it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(random, name)

    def randbits(self, k: int) -> int:
        shared = _world()
        return secrets.randbits(k) if shared is None else shared.chance.getrandbits(k)

    def token_hex(self, nbytes: int = 32) -> str:
        shared = _world()
        return (
            secrets.token_hex(nbytes) if shared is None else shared.chance.randbytes(nbytes).hex()
        )

    def random(self) -> float:
        shared = _world()
        return random.random() if shared is None else shared.chance.random()

    def uniform(self, a: float, b: float) -> float:
        shared = _world()
        return random.uniform(a, b) if shared is None else shared.chance.uniform(a, b)


#: The store modules that read the clock on a real store's path: each runs on the world's
#: (a module left out decides on the real clock, as the SQLite claims once did).
ON_THE_WORLDS_CLOCK = (
    store_protocol,  # the helpers every store shares (a carried set's anchor)
    sqlite_store,
    _sqlite_lease,
    _sqlite_duty,
    _sqlite_connections,  # the notices' claims
    _sqlite_budgets,  # the update budget's slots
    _redis_lease,
    _redis_duty,
)


def _install() -> None:
    """Put the stand-ins in place (once per interpreter; they defer to the real modules
    whenever no real-store world is running)."""
    if isinstance(sqlite_store.time, _Time):
        return
    clock, chance = _Time(), _Chance()
    for module in (*ON_THE_WORLDS_CLOCK, fakeredis_socket, fakeredis_server):
        module.time = clock  # type: ignore[attr-defined]
    for module in (sqlite_store, _sqlite_lease, _redis_lease, redis_store, _pg_lease, postgres):
        module.secrets = chance  # type: ignore[attr-defined]
    _redis_lease.random = chance  # type: ignore[attr-defined]
    _pg_lease.random = chance  # type: ignore[attr-defined]
    _sqlite_lease._jitter = chance  # type: ignore[assignment]


class InlineSQLiteStore(SQLiteStore):
    """SQLiteStore's own code, its statements run at once on a shared ``sqlite3`` connection.

    ``reachable`` says whether the caller can still reach the file (a crashed process cannot).
    """

    def __init__(self, conn: sqlite3.Connection, reachable: Callable[[], bool]) -> None:
        # The path is never opened: only its directory is checked by the constructor.
        super().__init__(
            os.path.join(tempfile.gettempdir(), "aiofinaccess-sim.db"), lease_poll=LEASE_POLL
        )
        self._inline = conn
        self._reachable = reachable

    async def _execute(self, statement: str, parameters: Any = ()) -> tuple[int, list[Any]]:
        if self._closed:
            raise StoreError("store is closed")
        # A statement is a step of its own, as on aiosqlite's thread: other tasks may run
        # statements between two of one operation's (still at the same virtual instant).
        await asyncio.sleep(0)
        if not self._reachable():
            raise StoreError("simulated: the process is gone")
        try:
            cursor = self._inline.execute(statement, parameters)
            rows = cursor.fetchall()
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"the SQLite store failed ({type(exc).__name__}: {exc})") from exc
        return cursor.rowcount, rows

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        # The real one reads on a second aiosqlite connection; the same SELECT, inline.
        statement, parameters = sql.KEYS, ()
        if provider is not None:
            statement, parameters = f"{sql.KEYS} WHERE provider = ?", (provider,)
        _, rows = await self._execute(statement, parameters)
        for (text,) in rows:
            yield TokenKey.parse(text)

    async def aclose(self) -> None:
        self._closed = True
        await self._leases.drain()


class _GatedFakeRedis(fakeredis.FakeAsyncRedis):
    """A process's connection to the fake server: gone with the process."""

    def __init__(self, reachable: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._reachable = reachable

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not self._reachable():
            raise RedisConnectionError("simulated: the process is gone")
        return await super().execute_command(*args, **options)


class _OrderedWeakSet(weakref.WeakKeyDictionary[Any, None]):
    """A weak set that iterates in insertion order (what fakeredis's pub/sub uses of a set)."""

    def add(self, item: Any) -> None:
        self[item] = None

    def discard(self, item: Any) -> None:
        self.pop(item, None)

    def remove(self, item: Any) -> None:
        del self[item]


class RealSharedStore(SharedStore):
    """A real store shared by the world's processes, behind the world's faults."""

    def __init__(self, world: World, rng: random.Random, *, faults: float, impl: str) -> None:
        super().__init__(world, rng, faults=faults)
        _install()
        _BACKENDS[world.loop] = self
        self.impl = impl
        self.chance = random.Random(rng.getrandbits(64))
        self.history = History()
        self._sqlite: sqlite3.Connection | None = None
        self._redis: fakeredis.FakeServer | None = None
        self._postgres: real_postgres.Server | None = None
        if impl == "postgres":
            self._postgres = real_postgres.Server.get()
            self._schema = self._postgres.new_schema()
        elif impl == "sqlite":
            self._sqlite = sqlite3.connect(":memory:", isolation_level=None)
            self._sqlite.executescript(sql.SCHEMA)
        else:
            self._redis = fakeredis.FakeServer(version=(7,))
            # A PUBLISH reaches the subscribers in the order they subscribed, not in the hash
            # order of a WeakSet (an object's address): the same seed, the same schedule.
            for name in ("subscribers", "psubscribers", "ssubscribers"):
                setattr(self._redis, name, defaultdict(_OrderedWeakSet))

    def monotonic(self) -> float:
        """The machine's monotonic clock (every process's: one machine, or Redis's)."""
        return _BOOT + self.now()

    def open(self, process: Process) -> SQLiteStore | RedisStore | PostgresStore:
        """A new process's own store object on the shared backend."""

        def reachable() -> bool:
            # A crashed process's own tasks reach nothing; its calls already on the wire do.
            return process.alive or asyncio.current_task() not in process.tasks

        if self._postgres is not None:
            return real_postgres.InlinePostgresStore(
                self._postgres,
                self._schema,
                now=self.world.wall,
                reachable=reachable,
                lease_poll=LEASE_POLL,
                clock=process.clock,
            )
        if self._sqlite is not None:
            return InlineSQLiteStore(self._sqlite, reachable)
        client = _GatedFakeRedis(reachable, server=self._redis, version=(7,))
        return RedisStore(
            client=client, shards=REDIS_SHARDS, lease_poll=LEASE_POLL, clock=process.clock
        )

    def client(self, process: Process, *, duty: bool) -> Any:
        if self.impl == "redis":  # SQLite has no change feed; PostgreSQL's is left out
            return (RealFeedDutyStoreClient if duty else RealFeedStoreClient)(self, process)
        return (RealDutyStoreClient if duty else RealStoreClient)(self, process)

    def check(self) -> list[str]:
        return self.history.check()

    # -- the world's view of the stored state (I6) --------------------------------------------

    def snapshot(self) -> tuple[dict[TokenKey, tuple[int, bytes]], dict[TokenKey, float]]:
        records: dict[TokenKey, tuple[int, bytes]] = {}
        due: dict[TokenKey, float] = {}
        if self._sqlite is not None or self._postgres is not None:
            rows = (
                self._sqlite.execute("SELECT key, version, data, due_at FROM token_sets")
                if self._sqlite is not None
                else real_postgres.snapshot(self._postgres, self._schema)  # type: ignore[arg-type]
            )
            for name, version, data, at in rows:
                key = TokenKey.parse(name)
                records[key] = (int(version), bytes(data))
                if at is not None:
                    due[key] = float(at)
            return records, due
        view = fakeredis.FakeRedis(server=self._redis, version=(7,))
        layout = Layout("aiofinaccess:", REDIS_SHARDS, False)  # RedisStore's own names
        for index in view.scan_iter(match=layout.index(layout.prefix, "*")):
            for member in view.smembers(index):
                key = TokenKey.parse(member.decode())
                version, data = view.hmget(layout.record(key), "version", "data")
                if version is not None and data is not None:
                    records[key] = (int(version), bytes(data))
                score = view.zscore(layout.due(layout.shard(key), key.provider), str(key))
                if score is not None:
                    due[key] = float(score)
        view.close()
        return records, due

    @property  # type: ignore[override]
    def records(self) -> dict[TokenKey, tuple[int, bytes]]:
        return self.snapshot()[0]

    @records.setter
    def records(self, _value: object) -> None:  # SharedStore's own, unused here
        pass

    @property  # type: ignore[override]
    def due(self) -> dict[TokenKey, float]:
        return self.snapshot()[1]

    @due.setter
    def due(self, _value: object) -> None:
        pass


def shared_store(world: World, rng: random.Random, *, faults: float, impl: str) -> SharedStore:
    """The world's store: the simulated one, or a real one behind the same faults."""
    if impl == "sim":
        return SharedStore(world, rng, faults=faults)
    return RealSharedStore(world, rng, faults=faults, impl=impl)


#: The share of worlds on each real store (the rest run the simulated one).
SHARES = {"sqlite": 0.07, "redis": 0.04, "postgres": 0.03}


def store_impl(seed: int) -> str:
    """The store of ``seed``'s world, from a stream of its own (every sim world stays as it was)."""
    draw = random.Random(f"{seed}:store").random()
    for impl, share in SHARES.items():
        if draw < share:
            return impl
        draw -= share
    return "sim"
