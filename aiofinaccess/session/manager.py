"""The session manager: one owner for every token set of an application.

Theory of operation
-------------------
:class:`SessionManager` is the public face. It is composed of parts it owns: a
:class:`~aiofinaccess.session.registry.Registry` (providers, and one entry per token set), a
:class:`~aiofinaccess.session.renewal.RenewalDriver` (the one renewal path; its decisions are the
pure :func:`~aiofinaccess.core.renewal_step.next_step`: read both modules for the guarantees:
single-flight, cancellation-safe, fenced leases, persist then publish, dead grants stay dead),
a :class:`~aiofinaccess.session.scheduler.RefreshScheduler` and an
:class:`~aiofinaccess.session.events.EventHub`. This module adds what an application touches:

* the **fresh path**: :meth:`SessionManager.access_token` is a dictionary lookup and one
  comparison with the entry's ``stale_at``; it touches no lock, store or network;
* **first acquisition** (password grant, the authorization-code exchange, sets the app
  obtained itself), which runs in owned tasks like renewals and ends in the same
  persist-then-publish step;
* **lifetime**: :meth:`start` restores every stored set of the registered providers (in
  batches) and starts the scheduler (one task; :mod:`aiofinaccess.session.scheduler`) and, for
  stores shared between processes, a watcher of their change feed, so a set another worker
  rotated is adopted at once; :meth:`aclose` stops them, waits for renewals in flight
  (longer for those whose token request was sent: their result must be stored), and closes
  store and session;
* **observation**: typed events to callbacks or async iterators, counters, token-set states.

The manager reads time only through its :class:`~aiofinaccess.core.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import warnings
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Hashable,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar

import aiohttp

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import (
    ConfigurationError,
    ReauthorizationRequired,
    StoreConflictError,
    StoreError,
    UsageError,
)
from ..core.lifecycle import (
    Action,
    RefreshPolicy,
    RetryPolicy,
    Status,
    TokenState,
    decide,
    scheduled_at,
    token_state,
)
from ..core.tokens import ClientCredentials, Secret, TokenKey, TokenSet
from ..oauth.authorization import AuthorizationRequest, build_authorization_request, parse_callback
from ..oauth.client import OAuthClient
from ..oauth.providers import ClientAuthMethod, Provider, RevocationStyle
from ..stores import ChangeFeed, TokenStore, Versioned
from ..stores.memory import MemoryStore
from .callbacks import ReauthCallback, awaiting, plain_subscriber, reauth_subscriber
from .events import Event as LifecycleEvent
from .events import EventHub, ManagerStats
from .registry import Entry, PasswordLookup, Registry
from .renewal import RenewalDriver
from .scheduler import RefreshScheduler

__all__ = ["ManagerStats", "PasswordLookup", "SessionManager"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")
_NEG_INF = float("-inf")
#: Keys forgotten or revoked here, remembered so a later call says "revoked" (bounded).
_TOMBSTONES = 4096
_REFUSED = (Status.REAUTH_REQUIRED, Status.REVOKED)
#: Keys restored per store read.
_RESTORE_BATCH = 500
#: Read at start when no provider is registered yet: proves the store answers.
_PROBE = TokenKey("aiofinaccess-start-probe")


def _settled(entry: Entry) -> bool:
    """No renewal running and the set in a state where adopting a newer copy is right."""
    return entry.job is None and entry.status in (Status.ACTIVE, Status.BACKOFF)


class SessionManager:
    """Owns token sets, their store, the scheduler and the HTTP session used to renew them.

    Lives as long as the application (or worker process) and belongs to one event loop. Use
    it as an async context manager (which calls :meth:`start` and :meth:`aclose`).

    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with SessionManager(store=SQLiteStore("tokens.db")) as manager:
    ...         manager.register(FinApi.sandbox(), ClientCredentials("id", "secret"))
    ...         token = await manager.access_token("finapi")  # the client token

    Args:
        store: Where token sets persist. Defaults to an in-process :class:`MemoryStore`.
        session: An aiohttp session to use (not closed by the manager). By default the manager
            creates its own on first use (with no cookie jar: one user's cookies must never
            go out with another's request) and closes it in :meth:`aclose`.
        clock: Clock and sleep; tests pass a fake one.
        policy: When tokens turn stale and expire.
        retry: Retries inside a renewal and backoff between failed ones.
        scheduler: Renew token sets in the background before they go stale.
        keep_alive: Also renew before the *refresh* token runs out, even for idle sets (keeps
            Keycloak sessions alive past their SSO-idle timeout).
        idle_after: Seconds without use after which the scheduler leaves a set to on-demand
            renewal (``None``: never idle).
        jitter: Share of the lead by which a scheduled renewal may move earlier at random.
        max_concurrent_refreshes: Token requests in flight per token endpoint, and renewals
            the scheduler runs at once.
        token_timeout: Total seconds for one token-endpoint exchange.
        lease_ttl: Seconds a store lease lasts unless its holder extends it. A holder that
            crashes before sending blocks other processes for at most this long; one that
            crashes after sending, for at most ``token_timeout + lease_ttl``. A holder extends
            its lease while it waits and, before every send, to cover the whole exchange.
        close_timeout: Seconds :meth:`aclose` waits for renewals in flight.
        pending_write_timeout: Further seconds :meth:`aclose` waits for renewals whose token
            request was sent, so their result is stored (then each is logged at ERROR and a
            :class:`~aiofinaccess.session.events.WriteAbandoned` event is emitted).
        store_timeout: Seconds one store call may take before it counts as failed.
        trace_configs: aiohttp trace configs for the session the manager creates (for
            example :meth:`aiofinaccess.integrations.otel.Telemetry.trace_config`).
    """

    def __init__(
        self,
        *,
        store: TokenStore | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = SYSTEM_CLOCK,
        policy: RefreshPolicy | None = None,
        retry: RetryPolicy | None = None,
        scheduler: bool = True,
        keep_alive: bool = False,
        idle_after: float | None = 3600.0,
        jitter: float = 0.2,
        max_concurrent_refreshes: int = 16,
        token_timeout: float = 30.0,
        lease_ttl: float = 10.0,
        close_timeout: float = 10.0,
        pending_write_timeout: float = 60.0,
        store_timeout: float = 15.0,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        for name, value in (
            ("token_timeout", token_timeout),
            ("lease_ttl", lease_ttl),
            ("store_timeout", store_timeout),
        ):
            if not value > 0 or value == float("inf"):
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        if not close_timeout >= 0 or not pending_write_timeout >= 0:
            raise ConfigurationError("close_timeout and pending_write_timeout must be >= 0")
        if not 0 <= jitter < 1:
            raise ConfigurationError("jitter must be in [0, 1)")
        if max_concurrent_refreshes < 1:
            raise ConfigurationError("max_concurrent_refreshes must be >= 1")
        if idle_after is not None and idle_after <= 0:
            raise ConfigurationError("idle_after must be positive or None")
        self._store = store if store is not None else MemoryStore()
        self._session = session
        self._owns_session = session is None
        self._trace_configs = list(trace_configs)
        self._clock = clock
        self._policy = policy or RefreshPolicy()
        self._token_timeout = token_timeout
        self._close_timeout = close_timeout
        self._pending_write_timeout = pending_write_timeout
        self._keep_alive = keep_alive
        self._idle_after = idle_after
        self._jitter = jitter
        self._closed = False
        self._started = False
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._restores: set[asyncio.Task[int]] = set()
        self._restore_errors: list[StoreError] = []
        self._revoked: collections.OrderedDict[tuple[str, str | None], None] = (
            collections.OrderedDict()
        )
        self._oauth_clients: dict[str, OAuthClient] = {}
        self._registry = Registry()
        self.stats = ManagerStats()
        self._hub = EventHub(self.stats)
        self._scheduler = (
            RefreshScheduler(clock, self._fire_scheduled, max_in_flight=max_concurrent_refreshes)
            if scheduler
            else None
        )
        self._driver = RenewalDriver(
            registry=self._registry,
            store=self._store,
            clock=clock,
            endpoint=self.oauth,
            spawn=self._spawn,
            schedule=self._schedule,
            stats=self.stats,
            hub=self._hub,
            policy=self._policy,
            retry=retry or RetryPolicy(),
            token_timeout=token_timeout,
            lease_ttl=lease_ttl,
            store_timeout=store_timeout,
            max_concurrent_refreshes=max_concurrent_refreshes,
        )

    def __repr__(self) -> str:
        return (
            f"SessionManager(providers={self._registry.names()}, "
            f"token_sets={len(self._registry)}, renewing={len(self._tasks)}, "
            f"closed={self._closed})"
        )

    # -- set-up and shutdown -------------------------------------------------------------------

    def register(
        self,
        provider: Provider,
        client: ClientCredentials,
        *,
        password_lookup: PasswordLookup | None = None,
    ) -> None:
        """Make ``provider`` usable with ``client``'s credentials.

        After :meth:`start`, the provider's stored sets are restored in the background:
        :meth:`ready` waits for that (and raises what it raised).

        Args:
            provider: The provider; its ``name`` becomes the first half of every token key.
            client: The client's id and secret at that provider. The client token is stored
                under a key naming this client (its id and a fingerprint of its secret), so
                managers with other credentials sharing the store never share it.
            password_lookup: For finAPI user tokens: a callback (plain or async) that returns
                a user's password so the manager can fall back to the password grant when a
                refresh token is gone. The manager never stores passwords.
        """
        if not isinstance(provider, Provider):
            raise ConfigurationError("provider must be a FinApi, Everifin or Oidc preset")
        if provider.name in self._registry:
            raise ConfigurationError(f"provider {provider.name!r} is already registered")
        if not isinstance(client, ClientCredentials):
            raise ConfigurationError("client must be ClientCredentials(client_id, client_secret)")
        if client.client_secret is None and provider.client_auth is not ClientAuthMethod.NONE:
            raise ConfigurationError(
                f"client_secret is required for provider {provider.name!r} "
                f"({provider.client_auth.value})"
            )
        if password_lookup is not None and not callable(password_lookup):
            raise ConfigurationError("password_lookup must be a function of the user id")
        lookup = None if password_lookup is None else awaiting(password_lookup)
        self._registry.add(provider, client, lookup)
        if self._started and not self._closed:
            task = self._spawn(self.restore(provider.name))
            self._restores.add(task)
            task.add_done_callback(self._restore_done)

    def _restore_done(self, task: asyncio.Task[int]) -> None:
        self._restores.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, StoreError):
            logger.error("restoring stored token sets failed: %s", error)
        elif error is not None:
            logger.error("restoring stored token sets failed", exc_info=error)
        if isinstance(error, Exception):
            self._restore_errors.append(self._unreadable(error))

    async def ready(self) -> None:
        """Wait until the manager is started and every restore :meth:`register` began has ended.

        The readiness check of a web process: once it returns, every stored set of the
        registered providers is in memory and renewals are scheduled.

        Raises:
            UsageError: The manager was never started, or is closed.
            StoreError: A restore failed (the store is unreachable or unreadable); the
                message names the store.
        """
        if not self._started or self._closed:
            state = "closed" if self._closed else "not started (use 'async with' or start())"
            raise UsageError(f"the session manager is {state}")
        while self._restores:
            await asyncio.wait(set(self._restores))
        if self._restore_errors:
            raise self._restore_errors[0]

    async def start(self) -> SessionManager:
        """Restore stored token sets of the registered providers and start background work.

        Called by ``async with``. Providers registered later are restored as they register.
        Idempotent. The store is read here even with no provider registered yet, so a store
        that cannot be reached fails here, not at the first request.

        Raises:
            StoreError: The store cannot be read (its message names the store); ``ready()``
                raises it too. ``async with`` closes the manager again; after a direct call
                the app may retry :meth:`restore` or :meth:`aclose` it.
        """
        if self._closed:
            raise UsageError("the session manager is closed")
        if self._started:
            return self
        self._started = True
        if self._scheduler is not None:
            self._scheduler.start()
        if isinstance(self._store, ChangeFeed) and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch_changes(self._store), name="aiofinaccess-store-watcher"
            )
        try:
            if not self._registry.names():
                await self._driver.store_call(self._store.get(_PROBE))
            for name in self._registry.names():
                await self.restore(name)
        except StoreError as exc:
            error = self._unreadable(exc)
            self._restore_errors.append(error)  # ready() reports it too
            raise error from exc
        return self

    def _unreadable(self, error: Exception) -> StoreError:
        """A :class:`StoreError` naming the store (its repr never holds a password)."""
        why = (
            error
            if isinstance(error, StoreError)
            else f"token store failed: {type(error).__name__}"
        )
        return StoreError(f"token store {self._store!r} cannot be read: {why}")

    async def restore(self, provider: Provider | str | None = None) -> int:
        """Load every stored set of ``provider`` (or all registered) into memory; no requests.

        Keys are streamed from the store and read in batches (one read per batch where the
        store offers ``get_many``). Another client's token, and malformed keys, are skipped.

        Returns:
            How many token sets were restored.
        """
        names = self._registry.names() if provider is None else [self.key(provider).provider]
        restored = 0
        for name in names:
            own_client = self._registry.registration(name).client_key
            batch: list[TokenKey] = []
            async for key in self._store.keys(name):
                if key.is_client and key != own_client:
                    continue
                batch.append(key)
                if len(batch) >= _RESTORE_BATCH:
                    restored += await self._restore_batch(batch)
                    batch = []
            if batch:
                restored += await self._restore_batch(batch)
        return restored

    async def _restore_batch(self, keys: list[TokenKey]) -> int:
        get_many: Callable[[list[TokenKey]], Awaitable[dict[TokenKey, Versioned]]] | None = getattr(
            self._store, "get_many", None
        )
        if get_many is not None:
            found = await self._driver.store_call(get_many(keys))
        else:
            found = {}
            for key in keys:
                versioned = await self._driver.store_call(self._store.get(key))
                if versioned is not None:
                    found[key] = versioned
        restored = 0
        for key, versioned in found.items():
            entry = self._registry.entry(key)
            if entry.job is not None or entry.version == versioned.version:
                continue
            stored = self._driver.anchored(versioned)
            self._driver.publish(entry, stored.token_set, stored.version)
            restored += 1
        return restored

    async def _watch_changes(self, feed: ChangeFeed) -> None:
        """Adopt sets other processes wrote, without waiting for ours to go stale."""
        async for key, version in feed.changes():
            entry = self._registry.find(key.provider, key.subject)
            if entry is None or entry.key != key or entry.version == version:
                continue
            if not _settled(entry):
                continue
            generation = entry.generation
            try:
                stored = await self._driver.read(key)
            except StoreError:
                logger.warning("could not read token set %s after a change", key.hashed)
                continue
            # Anything published while we read is at least as new as what we read.
            if not _settled(entry) or entry.generation != generation:
                continue
            if stored is None:
                entry.clear()  # deleted elsewhere (revoked, or its grant died)
            elif stored.version != entry.version:
                self._driver.adopt(entry, stored)

    async def __aenter__(self) -> SessionManager:
        try:
            return await self.start()
        except BaseException:
            await self.aclose()  # no __aexit__ follows a failed __aenter__
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop background work, let renewals in flight persist, then close store and session.

        Order: stop the scheduler and the watcher; wait up to ``close_timeout`` for renewals;
        cancel those that have sent nothing; wait up to ``pending_write_timeout`` more for
        those whose token request was sent (their result must be stored, or the refresh
        token the store holds is already spent); end event iterators; close the store; close
        the session (if the manager created it). A failing step is logged and the others
        still run. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await self._drain()
        self._hub.close()
        try:
            await self._store.aclose()
        except Exception:
            logger.warning("closing the token store failed", exc_info=True)
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def _drain(self) -> None:
        pending = set(self._tasks)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=self._close_timeout or None)
        if not late:
            return
        sent = {entry.job for entry in self._registry if entry.in_window and entry.job in late}
        for task in late - sent:
            task.cancel()
        if sent:
            logger.warning("aclose waits for %d renewals whose token request was sent", len(sent))
            _done, unfinished = await asyncio.wait(
                sent, timeout=self._pending_write_timeout or None
            )
            for task in unfinished:
                task.cancel()  # each logs its key's hash at ERROR and emits WriteAbandoned
        await asyncio.wait(late)
        logger.warning("aclose cancelled renewals still running")

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and getattr(self, "_session", None) is not None:
            warnings.warn(
                "SessionManager was not closed; use 'async with' or await aclose()",
                ResourceWarning,
                stacklevel=1,
            )

    @property
    def store(self) -> TokenStore:
        """The token store the manager persists to."""
        return self._store

    @property
    def clock(self) -> Clock:
        """The clock the manager (and resource clients built on it) read and sleep with."""
        return self._clock

    def provider(self, name: str) -> Provider:
        """The registered provider called ``name``."""
        return self._registry.registration(name).provider

    def oauth(self, provider: Provider | str) -> OAuthClient:
        """The :class:`OAuthClient` the manager uses for ``provider``."""
        name = provider if isinstance(provider, str) else provider.name
        client = self._oauth_clients.get(name)
        if client is None:
            registration = self._registry.registration(name)
            client = OAuthClient(
                registration.provider,
                registration.client,
                self.http_session(),
                clock=self._clock,
                timeout=self._token_timeout,
            )
            self._oauth_clients[name] = client
        return client

    def http_session(self) -> aiohttp.ClientSession:
        """The aiohttp session the manager sends on (created on first use if not given).

        The manager's own session keeps no cookies: it serves every end user, and a cookie one
        user's request set must never go out with another's.
        """
        if self._closed:
            raise UsageError("the session manager is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), trace_configs=self._trace_configs or None
            )
        return self._session

    # -- owned tasks and scheduling ------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        if self._closed:
            coro.close()
            raise UsageError("the session manager is closed")
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._owned_task_done)
        return task

    def _owned_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Its caller may have gone away (cancelled): the error was theirs to see, and is
        # logged here instead of surfacing as "Task exception was never retrieved".
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.debug("an owned task ended with %s", type(error).__name__)

    def _schedule(self, entry: Entry, at: float | None) -> None:
        if self._scheduler is None or entry.deadlines is None:
            return
        now = self._clock.monotonic()
        idle = self._idle_after is not None and now - entry.last_used > self._idle_after
        due = scheduled_at(
            entry.deadlines,
            now=now,
            jitter=self._driver.draw() * self._jitter,
            keep_alive=self._keep_alive,
            idle=idle,
        )
        if due is None:
            return
        if at is not None:
            due = max(at, now)
        if entry.deadlines.stale_at <= entry.renewed_at:
            # A renewal that brought a set already stale must not be followed by another at
            # once, or the scheduler would renew it in a loop.
            due = max(due, entry.renewed_at + self._policy.min_interval)
        self._scheduler.schedule((entry.key.provider, entry.key.subject), due, entry.generation)

    def _fire_scheduled(self, key: Hashable, generation: int) -> asyncio.Future[Any] | None:
        entry = self._registry.entries.get(key)  # type: ignore[call-overload]
        if entry is None or entry.generation != generation or self._closed:
            return None
        if entry.job is not None:
            entry.rearm = True  # a renewal is finishing: plan again when it has
            return None
        if entry.status not in (Status.ACTIVE, Status.BACKOFF):
            return None
        now = self._clock.monotonic()
        idle = self._idle_after is not None and now - entry.last_used > self._idle_after
        keep_alive_due = entry.deadlines is not None and now >= entry.deadlines.refresh_token_due_at
        if idle and not (self._keep_alive and keep_alive_due):
            return None  # left to on-demand renewal
        self.stats.scheduled_renewals += 1
        return self._driver.start(entry, reason="scheduled")

    # -- observation -----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[LifecycleEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every lifecycle event; returns an unsubscribe function.

        Callbacks run synchronously on the event loop: keep them quick. Their exceptions are
        logged and never reach the manager. For async code, iterate :meth:`events` or use
        :meth:`on_reauth_required`.

        Raises:
            ConfigurationError: ``callback`` is a coroutine function (it would never run).
        """
        plain_subscriber(callback)
        return self._hub.subscribe(callback)

    def on_reauth_required(self, callback: ReauthCallback) -> Callable[[], None]:
        """Call ``callback(event)`` whenever a user must connect their bank again.

        The :class:`~aiofinaccess.session.events.ReauthRequired` event names the provider and the
        app's ``subject`` (the user id the tokens were stored under). ``callback`` may be
        plain or async: an async one runs in a task the manager owns (closing the manager
        waits for it), so it may send an email. Returns an unsubscribe function.
        """
        return self._hub.subscribe(reauth_subscriber(callback, self._spawn))

    def events(self, *, maxsize: int = 1024) -> AsyncIterator[LifecycleEvent]:
        """Iterate over lifecycle events until the manager closes.

        When ``maxsize`` events are waiting the oldest is dropped (``stats.events_dropped``).
        """
        return self._hub.iterate(maxsize)

    async def wait_idle(self) -> None:
        """Wait until no renewal, write or restore is running (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- the bearer path -------------------------------------------------------------------------

    async def access_token(self, provider: Provider | str, subject: str | None = None) -> str:
        """Return a usable access token for the client (``subject=None``) or a user.

        Fresh and stale tokens come from memory without an await (a stale one also starts one
        background renewal); an expired or missing one is renewed first (once, however many
        callers wait).

        Raises:
            ReauthorizationRequired: The grant is dead or nothing is stored for a user.
            TransportError, ApiError, StoreError: Renewal failed; the same error reaches every
                caller waiting on that renewal.
        """
        name = provider if provider.__class__ is str else provider.name  # type: ignore[union-attr]
        entry = self._registry.entries.get((name, subject))
        if entry is not None:
            token = entry.token
            now = self._clock.monotonic()
            if token is not None and now < entry.usable_until:
                entry.last_used = now
                if now >= entry.stale_at and entry.job is None and now >= entry.retry_at:
                    self._driver.start(entry)  # stale: one background renewal, serve meanwhile
                return token
        return (await self._token_set_slow(self.key(name, subject))).access_token.reveal()

    async def token_set(self, provider: Provider | str, subject: str | None = None) -> TokenSet:
        """Like :meth:`access_token` but return the whole (redacting) :class:`TokenSet`."""
        return await self._token_set_slow(self.key(provider, subject))

    async def _entry(self, key: TokenKey) -> Entry:
        """The entry of ``key``, ready to serve or renew.

        A key whose grant died here, or that was forgotten here, stays refused without a
        request to the provider; but one store read tells whether another process has stored
        a new login since, which is then adopted.
        """
        entry = self._registry.find(key.provider, key.subject)
        forgotten = entry is None and (key.provider, key.subject) in self._revoked
        if not forgotten and (entry is None or entry.status not in _REFUSED):
            return entry if entry is not None else self._registry.entry(key)
        stored = await self._driver.read(key)
        if stored is None or (entry is not None and stored.version == entry.dead_version):
            if entry is None:
                raise ReauthorizationRequired(
                    key.hashed, "revoked", provider=key.provider, subject=key.subject
                )
            raise self._poisoned(entry)
        self._revoked.pop((key.provider, key.subject), None)
        entry = self._registry.entry(key)
        self._driver.publish(entry, stored.token_set, stored.version)
        return entry

    def _poisoned(self, entry: Entry) -> ReauthorizationRequired:
        key = entry.key
        if entry.status is Status.REVOKED:
            return ReauthorizationRequired(
                key.hashed, "revoked", provider=key.provider, subject=key.subject
            )
        previous = entry.reauth
        return ReauthorizationRequired(
            key.hashed,
            previous.reason if previous else "reauth_required",
            previous.cause if previous else None,
            provider=key.provider,
            subject=key.subject,
        )

    async def _token_set_slow(self, key: TokenKey) -> TokenSet:
        entry = await self._entry(key)
        now = self._clock.monotonic()
        entry.last_used = now
        if entry.token_set is not None and entry.deadlines is not None:
            action = decide(entry.deadlines, now)
            if action is Action.USE:
                return entry.token_set
            if action is Action.USE_AND_REFRESH:
                if entry.job is None and now >= entry.retry_at:
                    self._driver.start(entry)
                return entry.token_set
        return await asyncio.shield(self._driver.start(entry))

    async def renew_after_rejection(
        self, provider: Provider | str, subject: str | None, rejected: str
    ) -> str:
        """Return a token other than ``rejected``, which the API just answered 401 to.

        If someone already replaced it, that token is returned; otherwise one renewal runs
        (shared with every other caller) and the renewed token is returned. A rejected token
        is renewed at once, even a finAPI client token that is otherwise reissued until it
        expires.
        """
        key = self.key(provider, subject)
        entry = await self._entry(key)
        if entry.token is not None and entry.token != rejected:
            return entry.token
        for _round in range(2):
            outcome = self._driver.start(entry, rejected=rejected, reason="forced")
            token = (await asyncio.shield(outcome)).access_token.reveal()
            if token != rejected:
                break
            # We joined a renewal that began before the rejection and got the very token the
            # API refused (finAPI reissues it): one renewal of our own.
        return token

    async def refresh(self, provider: Provider | str, subject: str | None = None) -> TokenSet:
        """Renew now, whatever the token's age (joining a renewal already in flight).

        Uses the same single-flight, fenced, persist-then-publish path as every other renewal.
        """
        key = self.key(provider, subject)
        entry = await self._entry(key)
        if entry.token_set is None and entry.job is None:
            # Take what the store holds first, without a request: the forced renewal below
            # must redeem the newest refresh token, and only once.
            stored = await self._driver.read(key)
            if stored is not None and entry.token_set is None and entry.job is None:
                self._driver.publish(entry, stored.token_set, stored.version)
        outcome = self._driver.start(entry, rejected=entry.token, forced=True, reason="forced")
        return await asyncio.shield(outcome)

    def state_counts(self) -> dict[TokenState, int]:
        """How many token sets this process holds in each state (for a metrics gauge)."""
        now = self._clock.monotonic()
        return dict(
            collections.Counter(token_state(e.status, e.deadlines, now) for e in self._registry)
        )

    def state(self, provider: Provider | str, subject: str | None = None) -> TokenState:
        """The observable state of one token set in this process (unknown keys look expired;
        keys forgotten here look revoked)."""
        key = self.key(provider, subject)
        entry = self._registry.find(key.provider, key.subject)
        if entry is None:
            revoked = (key.provider, key.subject) in self._revoked
            return TokenState.REVOKED if revoked else TokenState.EXPIRED
        return token_state(entry.status, entry.deadlines, self._clock.monotonic())

    def key(self, provider: Provider | str, subject: str | None = None) -> TokenKey:
        """The :class:`TokenKey` of a client (``subject=None``) or user token set."""
        name = provider if isinstance(provider, str) else provider.name
        if name not in self._registry:
            raise UsageError(f"provider {name!r} is not registered; call register() first")
        return self._registry.key(name, subject)

    # -- first acquisition ---------------------------------------------------------------------

    async def login_with_password(
        self, provider: Provider | str, username: str, password: str | Secret
    ) -> TokenSet:
        """Obtain a user token with the password grant and store it under ``username``."""
        key = self.key(provider, username)
        oauth = self.oauth(key.provider)
        return await asyncio.shield(
            self._spawn(self._acquire(key, lambda: oauth.password(username, Secret(password))))
        )

    def authorization_request(
        self,
        provider: Provider | str,
        redirect_uri: str,
        *,
        scopes: tuple[str, ...] | None = None,
        pkce: bool = True,
        extra_params: Mapping[str, str] | None = None,
    ) -> AuthorizationRequest:
        """Start an authorization-code flow: a URL with fresh ``state`` and PKCE."""
        registration = self._registry.registration(self.key(provider).provider)
        return build_authorization_request(
            registration.provider,
            registration.client.client_id,
            redirect_uri,
            scopes=scopes,
            pkce=pkce,
            extra_params=extra_params,
        )

    async def complete_authorization(
        self,
        provider: Provider | str,
        subject: str,
        callback: str | Mapping[str, str],
        request: AuthorizationRequest,
    ) -> TokenSet:
        """Check the callback, exchange its code once, and store the tokens under ``subject``.

        The exchange runs in a task the manager owns: if the caller goes away after the code
        was sent, the tokens are still stored.
        """
        key = self.key(provider, subject)
        registration = self._registry.registration(key.provider)
        response = parse_callback(callback, request, expected_issuer=registration.provider.issuer)
        oauth = self.oauth(key.provider)
        return await asyncio.shield(
            self._spawn(
                self._acquire(
                    key,
                    lambda: oauth.authorization_code(
                        response.code, request.redirect_uri, code_verifier=request.code_verifier
                    ),
                )
            )
        )

    async def store_token_set(
        self, provider: Provider | str, subject: str | None, token_set: TokenSet
    ) -> None:
        """Store a token set the app obtained itself; clears a re-authorization state."""
        key = self.key(provider, subject)

        async def fetched() -> TokenSet:
            return token_set

        await asyncio.shield(self._spawn(self._acquire(key, fetched, requests=0)))

    async def _acquire(
        self, key: TokenKey, fetch: Callable[[], Awaitable[TokenSet]], *, requests: int = 1
    ) -> TokenSet:
        self.stats.token_requests += requests
        token_set = await fetch()
        store_call = self._driver.store_call
        for _attempt in range(3):
            current = await store_call(self._store.get(key))
            try:
                version = await store_call(
                    self._store.put(
                        key,
                        token_set,
                        expected_version=None if current is None else current.version,
                    )
                )
            except StoreConflictError:
                continue
            self._revoked.pop((key.provider, key.subject), None)
            self._driver.publish(self._registry.entry(key), token_set, version)
            return token_set
        raise StoreConflictError(f"token set {key.hashed}: store kept changing while writing")

    # -- revocation ------------------------------------------------------------------------------

    async def revoke(self, provider: Provider | str, subject: str | None = None) -> None:
        """Revoke a token set at the provider and delete it from the store.

        The refresh token is revoked when there is one (which ends its access tokens too at
        finAPI and Keycloak); otherwise the access token.
        """
        key = self.key(provider, subject)
        registration = self._registry.registration(key.provider)
        stored = await self._driver.store_call(self._store.get(key))
        if stored is not None:
            token_set = stored.token_set
            client_bearer = None
            if registration.provider.revocation_style is not RevocationStyle.RFC7009:
                client_bearer = Secret(await self.access_token(key.provider))
            if token_set.refresh_token is not None:
                await self.oauth(key.provider).revoke(
                    token_set.refresh_token, hint="refresh_token", client_bearer=client_bearer
                )
            else:
                await self.oauth(key.provider).revoke(
                    token_set.access_token, hint="access_token", client_bearer=client_bearer
                )
        await self._forget(key)

    async def logout(self, provider: Provider | str, subject: str) -> None:
        """End the user's Keycloak session (logout endpoint) and delete the token set."""
        key = self.key(provider, subject)
        stored = await self._driver.store_call(self._store.get(key))
        if stored is not None and stored.token_set.refresh_token is not None:
            await self.oauth(key.provider).logout(stored.token_set.refresh_token)
        await self._forget(key)

    async def forget(self, provider: Provider | str, subject: str | None = None) -> None:
        """Delete a token set here and in the store without calling the provider.

        For sets the provider already killed (a deleted finAPI user, a changed password).
        Later requests for it raise :class:`ReauthorizationRequired` until new tokens are stored.
        """
        await self._forget(self.key(provider, subject))

    async def _forget(self, key: TokenKey) -> None:
        await self._driver.store_call(self._store.delete(key))
        entry = self._registry.find(key.provider, key.subject)
        if entry is not None:
            while entry.job is not None:  # another may start while one ends (the scheduler)
                await asyncio.wait([entry.job])
            entry.clear()
            self._registry.prune(entry)
        # Remembered (boundedly) so later calls here say "revoked" rather than "no tokens".
        self._revoked[key.provider, key.subject] = None
        self._revoked.move_to_end((key.provider, key.subject))
        if len(self._revoked) > _TOMBSTONES:
            self._revoked.popitem(last=False)
