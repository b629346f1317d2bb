"""A token store in Redis, shared by every worker on every machine that can reach it.

Each compare-and-swap, lease, claim and take is one Lua script or command on one slot, so the
store works on a single node and on Redis Cluster alike; ages and due times are on Redis's
clock (``TIME``). Key names are :mod:`._redis_layout`'s. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, TypeVar

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import (
    ConfigurationError,
    StoreConflictError,
    StoreError,
)
from ..core.tokens import TokenKey, TokenSet
from ._records import parse_key, read_record
from ._redis_connections import RedisConnections
from ._redis_duty import DueSets
from ._redis_feed import ChangeReader
from ._redis_layout import Layout, as_bytes, score, stamped, text
from ._redis_lease import Leases
from ._redis_payments import RedisPayments
from ._redis_replicated import ReplicatedPuts
from ._redis_scripts import DELETE, DUE_TOLERANCE, GET, PUT
from ._redis_stamps import UseStampSets
from ._redis_urls import describe, target, wait_options
from .codec import JsonCodec, TokenCodec
from .payment_records import Delegated
from .protocol import (
    Claimed,
    HeldLease,
    StoreStats,
    Versioned,
    check_due,
    check_ttl,
    open_pending,
    seal_pending,
    writer_age,
)
from .replication import Replication

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import NoScriptError, RedisClusterException, RedisError

    _MISSING: ImportError | None = None
    # redis-py's cluster errors (an unreachable cluster among them) are not RedisErrors.
    _ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
except ImportError as exc:  # pragma: no cover  (the test extra installs redis)
    _MISSING = exc
    _ERRORS = (OSError,)

__all__ = ["RedisStore"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")

#: Connections a single-node store opens at most; more calls in flight wait for one.
_MAX_CONNECTIONS: Final = 100


def _node_client(node: Any) -> Any:
    """A single-node client of one cluster node, with the cluster client's connection settings
    (replicated writes need the write and its ``WAIT`` on one connection)."""
    pool = aioredis.BlockingConnectionPool(
        connection_class=node.connection_class,
        max_connections=_MAX_CONNECTIONS,
        timeout=None,
        **node.connection_kwargs,
    )
    return aioredis.Redis.from_pool(pool)


def _client_for(url: str) -> tuple[Any, bool]:
    """A client for ``url`` and whether it speaks to a cluster.

    Raises:
        ConfigurationError: Not a Redis URL (the message never quotes it: it may hold a
            password).
    """
    redis_url, on_cluster, tls = target(url)
    # No socket timeout unless the URL sets one (``?socket_timeout=5``): a session manager
    # bounds each store call itself (Timeouts.store), and redis-py 8's default of 5 s runs
    # every command through asyncio.wait_for, a task per command on CPython 3.11 (about a
    # third of a command's CPU). Options in the URL override these keyword arguments.
    options: dict[str, Any] = {"socket_timeout": None, **tls}
    try:
        if on_cluster:
            return RedisCluster.from_url(redis_url, **options), True
        # A blocking pool: a momentary crowd of calls waits for a connection (each call is
        # bounded by the caller's store timeout) instead of failing with MaxConnectionsError.
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url, max_connections=_MAX_CONNECTIONS, timeout=None, **options
        )
        return aioredis.Redis.from_pool(pool), False
    except ValueError:  # its message may quote the URL, password and all
        raise ConfigurationError("url is not a valid Redis URL") from None


class RedisStore(RedisConnections, Delegated):
    """Token sets in Redis, with Lua compare-and-swap, an expiring lease, a change feed and
    the refresh duty; on one Redis server or a Redis Cluster.

    Args:
        url: ``redis://``, ``rediss://`` (TLS, certificates verified) or ``unix://``, with
            the password if any; ``redis+cluster://host:port`` or ``rediss+cluster://...``
            names any node of a Redis Cluster. ``?wait_replicas=N`` (with ``wait_timeout=
            SECONDS``, ``wait_fsync=yes``) asks for ``replication``. Ignored when ``client`` is
            given. Commands have no socket timeout unless the URL sets one
            (``?socket_timeout=5``): a session manager bounds every store call with
            ``Timeouts.store``; bound your own calls to the store the same way, or set it.
        prefix: Put before every Redis key and the change channel; one per application.
        codec: Token set <-> bytes; :class:`~aiofinaccess.stores.codec.JsonCodec` by default,
            :class:`~aiofinaccess.stores.codec.FernetCodec` to encrypt at rest.
        lease_poll: Seconds between attempts to take a held lease (plus up to as much jitter).
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` to use instead of
            ``url``; the store never closes it, and its TLS settings are the app's (pass
            ``ssl_check_hostname=True``).
        shards: How many shards the due times (and, in a cluster, every key) are spread over;
            the same for every process sharing ``prefix``.
        cluster: Use the cluster layout (hash-tagged shards, sharded pub/sub). By default:
            when the URL says ``+cluster`` or ``client`` is a ``RedisCluster``. ``False`` with
            a cluster client keeps the single-node layout, which needs a hash tag in
            ``prefix`` (the way of earlier versions; for :func:`.migrate.copy_sets`).
        clock: The clocks ``put`` measures a set's age on, and ``put`` and ``reschedule`` their
            distance from ``TIME``: the system's by default; the manager's, if the app injects
            one.
        replication: Count a token set write as stored only once this many replicas have it
            (``WAIT``): a rotation the store acknowledged then survives a failover. By default
            (or the URL's), a write counts once the primary has it.

    Raises:
        ConfigurationError: A bad ``url``, ``lease_poll`` or ``shards``, or redis-py is not
            installed.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "aiofinaccess:",
        codec: TokenCodec | None = None,
        lease_poll: float = 0.02,
        client: aioredis.Redis | RedisCluster | None = None,
        shards: int = 64,
        cluster: bool | None = None,
        clock: Clock | None = None,
        replication: Replication | None = None,
    ) -> None:
        if _MISSING is not None:  # pragma: no cover
            raise ConfigurationError("RedisStore needs redis-py: pip install aiofinaccess[redis]")
        if not (math.isfinite(lease_poll) and lease_poll > 0):
            raise ConfigurationError("lease_poll must be a positive number of seconds")
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 16384:
            raise ConfigurationError("shards must be an integer from 1 to 16384")
        self._owns_client = client is None
        self._target = "client"
        if client is None:
            url, from_url = wait_options(url)
            replication = replication if replication is not None else from_url
            client, on_cluster = _client_for(url)
            self._target = describe(url)
        else:
            on_cluster = isinstance(client, RedisCluster)
        self._client: Any = client  # Redis or RedisCluster: the commands used are common
        self._layout = Layout(prefix, shards, on_cluster if cluster is None else cluster)
        self._codec: TokenCodec = codec if codec is not None else JsonCodec()
        self._publish = "SPUBLISH" if self._layout.cluster else "PUBLISH"
        self._clock: Clock = SYSTEM_CLOCK if clock is None else clock
        self._put = client.register_script(PUT)
        self._get = client.register_script(GET)
        self._delete = client.register_script(DELETE)
        self._payment_rows = RedisPayments(client, self._layout.prefix, self._call, self._codec)
        self._closed = False
        #: Rows skipped while listing or reading in bulk.
        self.stats = StoreStats()
        self._checked: asyncio.Future[None] | None = None
        self._feed = ChangeReader(client, self._layout, lambda: self._closed)
        self._leases = Leases(
            client,
            self._layout,
            self._call,
            poll=lease_poll,
            closed=lambda: self._closed,
            errors=_ERRORS,
            clock=self._clock.monotonic,  # waiters judge a lease on their own monotonic clock
        )
        self._duty = DueSets(client, self._layout, self._call, self._clock)
        self._replicated = None
        if replication is not None:
            self._replicated = ReplicatedPuts(
                client,
                cluster=on_cluster,
                replication=replication,
                errors=_ERRORS,
                no_script=NoScriptError,
                connect=_node_client,
            )
        self._stamps = UseStampSets(client, self._layout, self._call)

    def __repr__(self) -> str:
        return f"RedisStore({self._target}, prefix={self._layout.prefix!r})"

    async def _call(
        self, what: str, key: TokenKey | None, command: Awaitable[_T] | Callable[[], Awaitable[_T]]
    ) -> _T:
        """Await a Redis command; Redis and socket errors become :class:`StoreError`.

        ``command`` may be a function making it, called only once the store is ready: what it
        stamps (a writer's age) is then read as late as this layer can."""
        subject = f" token set {key.hashed}" if key is not None else ""
        if self._closed:
            if asyncio.iscoroutine(command):
                command.close()
            raise StoreError(f"cannot {what}{subject}: the Redis store is closed")
        try:
            if self._checked is None or not self._checked.done():
                try:
                    await self._check_settings()
                except BaseException:
                    if asyncio.iscoroutine(command):
                        command.close()  # never to be awaited
                    raise
            return await (command() if callable(command) else command)
        except _ERRORS as exc:  # the message names the error type only: never URL or password
            raise StoreError(f"Redis {what}{subject} failed ({type(exc).__name__})") from exc

    async def _check_settings(self) -> None:
        """Once per store: every process sharing the prefix must agree on the shard count."""
        if self._checked is None:
            self._checked = asyncio.get_running_loop().create_future()
            try:
                name, wanted = self._layout.meta(), str(self._layout.shards)
                await self._client.hsetnx(name, "shards", wanted)
                stored = await self._client.hget(name, "shards")
                if stored is not None and text(stored) != wanted:
                    raise ConfigurationError(
                        f"this Redis prefix is in use with shards={text(stored)}, not {wanted}"
                    )
            except BaseException as exc:
                failed, self._checked = self._checked, None
                failed.set_exception(exc)
                failed.exception()  # retrieved: other waiters see it through their own await
                raise
            self._checked.set_result(None)
        else:
            await asyncio.shield(self._checked)

    async def get(self, key: TokenKey) -> Versioned | None:
        """Return the stored token set for ``key`` and its version, or ``None``."""
        script = self._get(keys=[self._layout.record(key)])
        found = stamped(await self._call("get", key, script))
        if found is None:
            return None
        version, data, age, transit = found
        token_set = self._codec.decode(data, kind="token_set", key=str(key))
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
        (``None``: not scheduled) and announce it, in one script.

        With ``replication``, the write counts once the replicas have it; a retry of the same
        set at the same ``expected_version`` also goes through over that write's own version.

        Raises:
            StoreConflictError: The stored version is not ``expected_version``.
            StoreError: Redis failed, or too few replicas confirmed the write.
        """
        due = check_due(due_at)
        version = secrets.randbits(62)
        expected = "" if expected_version is None else str(expected_version)
        data = self._codec.encode(token_set, kind="token_set", key=str(key))
        shard = self._layout.shard(key)
        args: list[str | bytes] = [expected, str(version), data, str(key), key.provider]
        args += [self._layout.channel(shard), self._publish, "" if due is None else score(due)]
        replicated = self._replicated

        def command() -> Awaitable[object]:
            # The age is stamped with the store's TIME of the write: read it just before the
            # write leaves (a wait before here would make the set look younger than it is).
            age = writer_age(token_set, self._clock)
            stamp = [score(age), score(self._clock.wall()), score(DUE_TOLERANCE)]
            if replicated is None:
                return self._put(keys=self._layout.names(key), args=[*args, *stamp, ""])
            also = replicated.also(key, expected_version, token_set)
            written = (expected_version, token_set, version)
            return replicated.put(key, written, self._layout.names(key), [*args, *stamp, also])

        if not await self._call("put", key, command):
            raise StoreConflictError(f"token set {key.hashed} is not at the expected version")
        return version

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        """Delete ``key`` and its due time (only at ``expected_version`` when given) and
        announce it.

        Returns:
            True if something was deleted.
        """
        expected = "" if expected_version is None else str(expected_version)
        channel = self._layout.channel(self._layout.shard(key))
        args = [expected, str(key), key.provider, channel, self._publish]
        script = self._delete(keys=self._layout.names(key), args=args)
        done = await self._call("delete", key, script)
        if done == -1:
            raise StoreConflictError(f"token set {key.hashed} is not at the expected version")
        return bool(done)

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        """The stored sets of ``keys`` that exist: one pipelined round trip per 500 keys.

        A record that does not decode is logged by key hash, counted
        (``stats.unreadable_records``) and left out.
        """
        wanted = list(keys)
        found: dict[TokenKey, Versioned] = {}
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            pipe = self._client.pipeline(transaction=False)
            for key in batch:  # EVAL, not EVALSHA: a pipeline cannot load a missing script
                pipe.eval(GET, 1, self._layout.record(key))
            replies = await self._call("get many", None, pipe.execute())
            for key, reply in zip(batch, replies, strict=True):
                if (record := stamped(reply)) is None:
                    continue
                version, data, age, transit = record
                stored = read_record(
                    self._codec, self.stats, key, version, data, age=age, transit=transit
                )
                if stored:
                    found[key] = stored
        return found

    # -- refresh duty ----------------------------------------------------------------------

    async def claim_due(
        self, *, limit: int, claim_for: float, owner: str, clients: Collection[TokenKey]
    ) -> Claimed:
        """Take up to ``limit`` sets in ``clients``' scope that are due on the server's clock;
        each falls due again ``claim_for`` seconds later unless its claimant writes it first.

        On a single node one script merges every due set of the claimant's providers: the most
        overdue sets anywhere, in due order. In a cluster the limit is split over the due sets,
        then one claim script per chosen set, concurrently (:mod:`._redis_duty`).

        Raises:
            UsageError: A bad ``limit``, ``claim_for`` or ``clients``.
            StoreError: Redis failed (claims made before the failure fall due at their
                deadline).
        """
        del owner  # the deadline alone makes a claim exclusive
        return await self._duty.claim(limit=limit, claim_for=claim_for, clients=clients)

    async def reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        """Set (or clear) ``key``'s due time; nothing for an absent key or, with
        ``expected_version``, one at another version."""
        await self._duty.reschedule(key, due_at, expected_version)

    async def next_due(self, *, clients: Collection[TokenKey] | None = None) -> float | None:
        """The earliest due time (claims included) in ``clients``' scope (everything:
        ``None``), or ``None``."""
        return await self._duty.next_due(clients)

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now``: a ``ZCOUNT`` per shard, pipelined."""
        return await self._duty.due_count(now=now)

    async def mark_used(self, uses: Mapping[TokenKey, float]) -> None:
        """Stamp each stored key's last use (``uses[key]`` seconds ago) on the server's clock,
        a script per batch (per shard in a cluster); an unscheduled key falls due now."""
        await self._stamps.mark_used(uses)

    async def idle_for(self, keys: Collection[TokenKey]) -> dict[TokenKey, float | None]:
        """Seconds since each stored key's last stamped use, on the server's clock (``None``:
        never stamped)."""
        return await self._stamps.idle_for(keys)

    # -- leases ----------------------------------------------------------------------------

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[HeldLease]:
        """Hold ``key`` for ``ttl`` seconds unless extended, across every client of this Redis
        (``SET NX PX`` with an owner token: :mod:`._redis_lease`).

        Waits at most ``ttl`` seconds for a held lease.

        Raises:
            LeaseBusyError: The lease stayed taken for ``ttl`` seconds.
            StoreError: Redis failed.
        """
        return self._leases.hold(key, ttl=ttl)

    # -- pending authorizations ------------------------------------------------------------

    async def put_pending(self, state: str, data: bytes, *, ttl: float) -> None:
        """Keep ``data`` (through the codec) under ``state`` for ``ttl`` seconds (``SET PX``).

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            StoreError: Redis failed.
        """
        px, name = max(1, math.ceil(check_ttl(ttl) * 1000)), self._layout.pending(state)
        sealed = seal_pending(self._codec, state, data)
        await self._call("put pending", None, self._client.set(name, sealed, px=px))

    async def get_pending(self, state: str) -> bytes | None:
        """The live record under ``state``, or ``None``."""
        raw = await self._call("get pending", None, self._client.get(self._layout.pending(state)))
        return None if raw is None else open_pending(self._codec, state, as_bytes(raw))

    async def take_pending(self, state: str) -> bytes | None:
        """``GETDEL`` the record: atomic in Redis, so one taker wins across every worker."""
        name = self._layout.pending(state)
        raw = await self._call("take pending", None, self._client.getdel(name))
        return None if raw is None else open_pending(self._codec, state, as_bytes(raw))

    # -- listing and the change feed -------------------------------------------------------

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        """Iterate over stored keys, optionally of one provider, streaming (``SSCAN`` over each
        shard's index sets: never blocks Redis, never holds every key).

        Like ``SSCAN`` itself it may, rarely (while Redis resizes a set), yield a key twice.
        """
        for base in self._layout.bases():
            if provider is None:
                providers = [text(name) async for name in self._scan(self._layout.providers(base))]
            else:
                providers = [provider]
            for name in providers:
                async for member in self._scan(self._layout.index(base, name)):
                    # One bad member must not stop every later start: skipped, logged, counted.
                    if (key := parse_key(self.stats, text(member), "Redis")) is not None:
                        yield key

    async def _scan(self, name: str) -> AsyncIterator[bytes | str]:
        cursor = 0
        while True:
            cursor, members = await self._call(
                "keys", None, self._client.sscan(name, cursor, count=500)
            )
            for member in members:
                yield member
            if cursor == 0:
                return

    def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        """Yield ``(key, version or None if deleted)`` for every write by anyone, this store too.

        Call it in a running event loop. Each iterator gets every change announced after the
        subscription is confirmed (:meth:`wait_subscribed`), in order per shard, and ends when
        the store closes. Dropped iterators are forgotten; the others queue changes until read.
        """
        return self._feed.iterator()

    async def wait_subscribed(self, timeout: float = 5.0) -> None:
        """Start the change feed if needed; return once Redis confirmed the subscription
        (in a cluster: to every shard's channel).

        Raises:
            StoreError: Not subscribed within ``timeout`` seconds, or the store is closed.
        """
        if self._closed:
            raise StoreError("cannot subscribe: the Redis store is closed")
        self._feed.start()
        try:
            async with asyncio.timeout(timeout):
                await self._feed.subscribed.wait()
        except TimeoutError:
            raise StoreError("timed out subscribing to the Redis change feed") from None

    async def aclose(self) -> None:
        """Finish lease releases, end the change feed, close the client if the store made it.

        Cancelled while a release waits for a silent Redis (a session manager bounds its close),
        it abandons the releases (those leases expire at their ttl) and still closes the rest.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self._leases.drain()  # already on the wire: a next holder is waiting for them
        finally:
            await self._leases.abandon()
            await self._feed.stop()
            if self._replicated is not None:
                await self._replicated.aclose()
            if self._owns_client:
                await self._client.aclose()
