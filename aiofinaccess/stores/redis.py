"""A token store in Redis, shared by every worker on every machine that can reach it.

Theory of operation
-------------------
* **Compare-and-swap is one Lua script.** Redis runs a script atomically, so "read the
  version, compare, write, index the key, publish the change" cannot interleave with another
  writer; ``WATCH``/``MULTI`` would need a retry loop and a dedicated connection. Versions are
  random 62-bit integers: a key deleted and created again never repeats an old version.
* **The lease is ``SET NX PX`` with a random owner token.** ``NX`` makes it exclusive, ``PX``
  (on Redis's own clock) frees it when its holder dies, and the owner token lets the extension
  and the release (compare-and-extend, compare-and-delete scripts) touch only our own lease,
  never the next holder's after ours expired. A ``SET`` whose reply is lost may still have
  run, so any failure to acquire releases by owner before it raises.
* **The change feed** (:meth:`RedisStore.changes`) relays every write and delete published on
  ``{prefix}changes``, so other workers adopt a rotated token set without waiting for their
  copy to go stale. It is best effort (a message sent while a subscriber is disconnected is
  lost, and an iterator that falls 1,024 changes behind loses its oldest); compare-and-swap
  keeps every write correct regardless.

* **Pending authorizations** are plain strings with ``PX`` expiry; a take is ``GETDEL``
  (Redis >= 6.2), atomic like every command, so exactly one worker wins a callback. Their
  data goes through the codec, so a ``FernetCodec`` encrypts PKCE verifiers at rest.

Keys: ``{prefix}ts:{key}`` (hash of ``version`` and ``data``), ``{prefix}keys:{provider}`` and
``{prefix}providers`` (sets, for :meth:`RedisStore.keys`), ``{prefix}lease:{key}``,
``{prefix}pending:{state}``. On Redis
Cluster, put a hash tag in the prefix (``"{aiofinaccess}:"``) so a script's keys share a slot.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from ..core.errors import (
    ConfigurationError,
    LeaseBusyError,
    StoreConflictError,
    StoreError,
    UsageError,
)
from ..core.tokens import TokenKey, TokenSet
from . import HeldLease, Versioned, check_ttl, open_pending, seal_pending
from .codec import JsonCodec, TokenCodec

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    _MISSING: ImportError | None = None
    _ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
except ImportError as exc:  # pragma: no cover  (the test extra installs redis)
    _MISSING = exc
    _ERRORS = (OSError,)

__all__ = ["RedisStore"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")
_Change = tuple[TokenKey, int | None]

# KEYS: token set, provider's keys, providers. ARGV: expected version ('' = absent), version,
# data, str(key), provider, channel. The delete's ARGV: expected ('' = any), str(key),
# provider, channel; it answers -1 for a conflict.
_PUT = """
if (redis.call('HGET', KEYS[1], 'version') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'data', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[4] .. '\\n' .. ARGV[2])
return 1
"""
_DELETE = """
local current = redis.call('HGET', KEYS[1], 'version')
if not current then return 0 end
if ARGV[1] ~= '' and current ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[2] .. '\\n')
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# ARGV: owner, milliseconds. Only while the key still names us: an expired key is gone, and
# someone may have held (and used) the lease since. Never shortens.
_EXTEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
#: Changes an unread iterator keeps; older ones are dropped (the feed is best effort).
_FEED_LIMIT = 1024


def _text(value: bytes | str) -> str:  # bytes, unless a client passed in decodes replies
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:  # str, if a client passed in decodes replies
    return value.encode() if isinstance(value, str) else value


def _describe(url: str) -> str:
    """``url`` without user or password: scheme, host, port (or socket path) and db."""
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("db", [""])[0]  # redis-py: the query's db wins
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db={db or 0}"
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}:{parts.port or 6379}/{db or parts.path.strip('/') or 0}"


def _tls_options(url: str) -> dict[str, bool]:
    """For ``rediss://``: ask for the hostname check, and refuse a URL that turns checks off.

    redis-py 5.x defaulted ``ssl_check_hostname`` to False, so any certificate from a trusted
    CA, for any name, was accepted; it is passed explicitly whatever the installed default.
    Options in the URL override keyword arguments in redis-py, hence the refusal.
    """
    if urlsplit(url).scheme != "rediss":
        return {}
    query = {
        name.lower(): values[-1].lower() for name, values in parse_qs(urlsplit(url).query).items()
    }
    if query.get("ssl_check_hostname", "true") in (
        "false",
        "0",
        "no",
        "off",
        "n",
        "f",
    ) or query.get("ssl_cert_reqs", "required") in ("none", "optional"):
        raise ConfigurationError(
            "url turns TLS certificate verification off; RedisStore always verifies "
            "(pass your own client= to decide otherwise)"
        )
    return {"ssl_check_hostname": True}


class _Changes:
    """One iterator of the change feed: a queue the store's reader fills; ``None`` ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Change | None] = asyncio.Queue()

    def offer(self, change: _Change | None) -> None:
        """Queue ``change``, dropping the oldest when the reader fell too far behind."""
        if change is not None and self.queue.qsize() >= _FEED_LIMIT:
            self.queue.get_nowait()
        self.queue.put_nowait(change)

    def __aiter__(self) -> _Changes:
        return self

    async def __anext__(self) -> _Change:
        change = await self.queue.get()
        if change is None:
            self.queue.put_nowait(None)  # stay ended
            raise StopAsyncIteration
        return change


class RedisStore:
    """Token sets in Redis, with Lua compare-and-swap, an expiring lease and a change feed.

    Args:
        url: ``redis://``, ``rediss://`` (TLS, certificates verified) or ``unix://``, with
            the password if any. Ignored when ``client`` is given.
        prefix: Put before every Redis key and the change channel; one per application.
        codec: Token set <-> bytes; :class:`~aiofinaccess.stores.codec.JsonCodec` by default,
            :class:`~aiofinaccess.stores.codec.FernetCodec` to encrypt at rest.
        lease_poll: Seconds between attempts to take a held lease (plus up to as much jitter).
        client: A ``redis.asyncio.Redis`` to use instead of ``url``; the store never closes it,
            and its TLS settings are the app's (pass ``ssl_check_hostname=True``).

    Raises:
        ConfigurationError: A bad ``url`` or ``lease_poll``, or redis-py is not installed.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "aiofinaccess:",
        codec: TokenCodec | None = None,
        lease_poll: float = 0.02,
        client: aioredis.Redis | None = None,
    ) -> None:
        if _MISSING is not None:  # pragma: no cover
            raise ConfigurationError("RedisStore needs redis-py: pip install aiofinaccess[redis]")
        if not (math.isfinite(lease_poll) and lease_poll > 0):
            raise ConfigurationError("lease_poll must be a positive number of seconds")
        self._owns_client = client is None
        self._target = "client"
        if client is None:
            if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
                raise ConfigurationError("url must start with redis://, rediss:// or unix://")
            tls = _tls_options(url)
            try:
                self._target = _describe(url)
                client = aioredis.Redis.from_url(url, **tls)
            except ValueError:  # its message may quote the URL, password and all
                raise ConfigurationError("url is not a valid Redis URL") from None
        self._client = client
        self._prefix = prefix
        self._codec: TokenCodec = codec if codec is not None else JsonCodec()
        self._lease_poll = lease_poll
        self._channel = f"{prefix}changes"
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)
        self._closed = False
        self._feeds: weakref.WeakSet[_Changes] = weakref.WeakSet()
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._releases: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"RedisStore({self._target}, prefix={self._prefix!r})"

    def _keys_of(self, key: TokenKey) -> list[str]:
        p = self._prefix
        return [f"{p}ts:{key}", f"{p}keys:{key.provider}", f"{p}providers"]

    async def _call(self, what: str, key: TokenKey | None, command: Awaitable[_T]) -> _T:
        """Await a Redis command; Redis and socket errors become :class:`StoreError`."""
        subject = f" token set {key.hashed}" if key is not None else ""
        if self._closed:
            if asyncio.iscoroutine(command):
                command.close()
            raise StoreError(f"cannot {what}{subject}: the Redis store is closed")
        try:
            return await command
        except _ERRORS as exc:  # the message names the error type only: never URL or password
            raise StoreError(f"Redis {what}{subject} failed ({type(exc).__name__})") from exc

    async def get(self, key: TokenKey) -> Versioned | None:
        """Return the stored token set for ``key`` and its version, or ``None``."""
        name = f"{self._prefix}ts:{key}"
        version, data = await self._call("get", key, self._client.hmget(name, "version", "data"))
        if version is None or data is None:
            return None
        data = data.encode() if isinstance(data, str) else data
        return Versioned(self._codec.decode(data, kind="token_set", key=str(key)), int(version))

    async def put(self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None) -> int:
        """Compare-and-swap ``token_set`` in at ``expected_version`` and announce it.

        Raises:
            StoreConflictError: The stored version is not ``expected_version``.
            StoreError: Redis failed.
        """
        version = secrets.randbits(62)
        expected = "" if expected_version is None else str(expected_version)
        data = self._codec.encode(token_set, kind="token_set", key=str(key))
        args: list[str | bytes] = [expected, str(version), data, str(key), key.provider]
        args.append(self._channel)
        if not await self._call("put", key, self._put(keys=self._keys_of(key), args=args)):
            raise StoreConflictError(f"token set {key.hashed} is not at the expected version")
        return version

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        """Delete ``key`` (only at ``expected_version`` when given) and announce it.

        Returns:
            True if something was deleted.
        """
        expected = "" if expected_version is None else str(expected_version)
        args = [expected, str(key), key.provider, self._channel]
        done = await self._call("delete", key, self._delete(keys=self._keys_of(key), args=args))
        if done == -1:
            raise StoreConflictError(f"token set {key.hashed} is not at the expected version")
        return bool(done)

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        """The stored sets of ``keys`` that exist: one pipelined round trip per 500 keys."""
        wanted = list(keys)
        found: dict[TokenKey, Versioned] = {}
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            pipe = self._client.pipeline(transaction=False)
            for key in batch:
                pipe.hmget(f"{self._prefix}ts:{key}", "version", "data")
            replies = await self._call("get many", None, pipe.execute())
            for key, (version, data) in zip(batch, replies, strict=True):
                if version is not None and data is not None:
                    token_set = self._codec.decode(_bytes(data), kind="token_set", key=str(key))
                    found[key] = Versioned(token_set, int(version))
        return found

    @asynccontextmanager
    async def lease(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:
        """Hold ``key`` for ``ttl`` seconds unless extended, across every client of this Redis.

        Waits at most ``ttl`` seconds for a held lease.

        Raises:
            LeaseBusyError: The lease stayed taken for ``ttl`` seconds.
            StoreError: Redis failed.
        """
        if not (math.isfinite(ttl) and ttl > 0):
            raise UsageError("a lease ttl must be a positive number of seconds")
        name, owner = f"{self._prefix}lease:{key}", secrets.token_hex(16)
        deadline, px = time.monotonic() + ttl, math.ceil(ttl * 1000)
        try:
            while True:
                asked = time.monotonic()
                if await self._call("lease", key, self._client.set(name, owner, nx=True, px=px)):
                    break
                if time.monotonic() >= deadline:
                    raise LeaseBusyError(
                        f"timed out waiting for the lease on token set {key.hashed}"
                    )
                await asyncio.sleep(self._lease_poll * (1 + random.random()))  # noqa: S311
        except BaseException:  # the SET may have run although its reply never came
            await self._release_shielded(name, owner)
            raise
        try:
            yield HeldLease(asked + ttl, functools.partial(self._extend_lease, key, name, owner))
        finally:
            await self._release_shielded(name, owner)

    async def _extend_lease(
        self, key: TokenKey, name: str, owner: str, asked: float, ttl: float
    ) -> bool:
        del asked  # the lease runs on Redis's clock; the holder counts from before asking
        script = self._extend(keys=[name], args=[owner, math.ceil(ttl * 1000)])
        return bool(await self._call("extend lease", key, script))

    async def _release_shielded(self, name: str, owner: str) -> None:
        async def release() -> None:
            try:
                if not self._closed:
                    await self._release(keys=[name], args=[owner])
            except _ERRORS:  # it expires anyway; raising would hide how the body ended
                logger.warning("releasing a Redis lease failed; it expires at its ttl")

        task = asyncio.ensure_future(release())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        await asyncio.shield(task)

    async def put_pending(self, state: str, data: bytes, *, ttl: float) -> None:
        """Keep ``data`` (through the codec) under ``state`` for ``ttl`` seconds (``SET PX``).

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            StoreError: Redis failed.
        """
        px = max(1, math.ceil(check_ttl(ttl) * 1000))
        sealed = seal_pending(self._codec, state, data)
        await self._call("put pending", None, self._client.set(self._pending(state), sealed, px=px))

    async def get_pending(self, state: str) -> bytes | None:
        """The live record under ``state``, or ``None``."""
        raw = await self._call("get pending", None, self._client.get(self._pending(state)))
        return None if raw is None else open_pending(self._codec, state, _bytes(raw))

    async def take_pending(self, state: str) -> bytes | None:
        """``GETDEL`` the record: atomic in Redis, so one taker wins across every worker."""
        raw = await self._call("take pending", None, self._client.getdel(self._pending(state)))
        return None if raw is None else open_pending(self._codec, state, _bytes(raw))

    def _pending(self, state: str) -> str:
        return f"{self._prefix}pending:{state}"

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        """Iterate over stored keys, optionally of one provider (``SSCAN``: never blocks Redis)."""
        providers = [provider]
        if provider is None:
            providers = [_text(name) async for name in self._scan(f"{self._prefix}providers")]
        for name in providers:
            seen: set[str] = set()  # SSCAN may repeat a member
            async for member in self._scan(f"{self._prefix}keys:{name}"):
                if (text := _text(member)) not in seen:
                    seen.add(text)
                    try:
                        key = TokenKey.parse(text)
                    except ValueError:
                        # One bad member must not stop every later start: skip it, say so.
                        logger.warning("the Redis store holds a malformed token key; skipping it")
                        continue
                    yield key

    async def _scan(self, name: str) -> AsyncIterator[bytes | str]:
        cursor = 0
        while True:
            cursor, members = await self._call("keys", None, self._client.sscan(name, cursor))
            for member in members:
                yield member
            if cursor == 0:
                return

    def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        """Yield ``(key, version or None if deleted)`` for every write by anyone, this store too.

        Call it in a running event loop. Each iterator gets every change announced after the
        subscription is confirmed (:meth:`wait_subscribed`), in order, and ends when the store
        closes. Dropped iterators are forgotten; the others queue changes until read.
        """
        feed = _Changes()
        if self._closed:
            feed.offer(None)
        else:
            self._feeds.add(feed)
            self._start_reader()
        return feed

    async def wait_subscribed(self, timeout: float = 5.0) -> None:
        """Start the change feed if needed; return once Redis confirmed the subscription.

        Raises:
            StoreError: Not subscribed within ``timeout`` seconds, or the store is closed.
        """
        if self._closed:
            raise StoreError("cannot subscribe: the Redis store is closed")
        self._start_reader()
        try:
            async with asyncio.timeout(timeout):
                await self._subscribed.wait()
        except TimeoutError:
            raise StoreError("timed out subscribing to the Redis change feed") from None

    def _start_reader(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read_changes())

    async def _read_changes(self) -> None:
        """Relay the change channel to every live iterator; resubscribe until the store closes."""
        backoff = 0.1
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "subscribe":
                        self._subscribed.set()
                        backoff = 0.1
                    elif message is not None and message["type"] == "message":
                        self._relay(_text(message["data"]))
            except Exception as exc:  # a dead feed would go unnoticed: log it and resubscribe
                self._subscribed.clear()
                logger.warning(
                    "Redis change feed failed (%s); resubscribing in %.1f s",
                    type(exc).__name__,
                    backoff,
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _relay(self, data: str) -> None:
        text, _, version = data.rpartition("\n")
        try:
            change = (TokenKey.parse(text), int(version) if version else None)
        except ValueError:
            logger.debug("ignoring a malformed change message")
            return
        for feed in list(self._feeds):
            feed.offer(change)

    async def aclose(self) -> None:
        """End the change feed, finish lease releases, close the client if the store made it."""
        if self._closed:
            return
        self._closed = True
        if self._releases:  # already on the wire: let them finish, a next holder is waiting
            await asyncio.wait(set(self._releases))
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader})
        for feed in list(self._feeds):
            feed.offer(None)
        if self._owns_client:
            await self._client.aclose()
