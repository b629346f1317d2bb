"""The session manager: one owner for every token set of an application.

Its public methods hand over to the parts :func:`~aiofinaccess.session.assembly.assemble`
builds; the fresh path of :meth:`SessionManager.access_token` stays here (a dictionary lookup
and one comparison: no lock, store or network). Never imports ``api``, ``integrations``,
``cli`` or ``sandbox``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import UsageError
from ..core.lifecycle import (
    RefreshPolicy,
    RetryPolicy,
    TokenState,
    token_state,
)
from ..core.settings import Duty, Limits, Schedule, Timeouts, UpdateBudget
from ..core.tokens import ClientCredentials, Secret, TokenKey, TokenSet
from ..oauth.providers import Provider
from ..stores.memory import MemoryStore
from ..stores.protocol import ConnectionRecords, TokenStore
from .assembly import Settings, assemble
from .connection_watch import logged_in, observe_logins, tell, tell_revoked
from .door import Door
from .hub import ManagerStats
from .registry import PasswordLookup

if TYPE_CHECKING:
    from ..oauth.authorization import AuthorizationRequest
    from ..oauth.client import OAuthClient
    from .connections import ConnectionRegistry
    from .entry import Entry
    from .events import ManagerEvent

__all__ = ["ManagerStats", "PasswordLookup", "SessionManager"]

_thread = threading.get_ident


class SessionManager:
    """Owns token sets, their store, the scheduler and the HTTP session used to renew them.

    Lives as long as the application (or worker process) and belongs to the event loop it is
    first used on. Use it as an async context manager (which calls :meth:`start` and
    :meth:`aclose`). Every public method raises :class:`UsageError` when called on another
    loop or after :meth:`aclose`.

    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with SessionManager(store=SQLiteStore("tokens.db")) as manager:
    ...         manager.register(FinApi.sandbox(), ClientCredentials("id", "secret"))
    ...         token = await manager.access_token("finapi")  # the client token

    Args:
        store: Where token sets persist. Defaults to an in-process :class:`MemoryStore`.
        session: An aiohttp session to use (not closed by the manager); by default it makes its
            own (with no cookie jar) and closes it in :meth:`aclose`.
        clock: Clock and sleep; tests pass a fake one.
        policy: When tokens turn stale and expire.
        retry: Retries inside a renewal and backoff between failed ones.
        timeouts: Token exchange, store lease, store call and close (:class:`Timeouts`).
        schedule: Background renewals: on or off, keep-alive, idle, jitter (:class:`Schedule`).
        duty: This process's share of the refresh duty on a store that keeps it (:class:`Duty`).
        limits: Renewals at once and token sets in memory (:class:`Limits`).
        trace_configs: aiohttp trace configs for the session the manager creates (for
            example :meth:`aiofinaccess.integrations.otel.Telemetry.trace_config`).
        connection_leads: When :attr:`connections` announces a consent's or login's end
            (``None``: 14, 7 and 1 days before).
        update_budget: Unattended updates per bank connection (:class:`UpdateBudget`; PSD2's
            four per 24 hours), kept for the fleet by :attr:`connections`.
    """

    def __init__(
        self,
        *,
        store: TokenStore | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = SYSTEM_CLOCK,
        policy: RefreshPolicy | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        schedule: Schedule | None = None,
        duty: Duty | None = None,
        limits: Limits | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        connection_leads: Iterable[dt.timedelta] | None = None,
        update_budget: UpdateBudget | None = None,
    ) -> None:
        self._store = store if store is not None else MemoryStore()
        self._connection_leads = None if connection_leads is None else tuple(connection_leads)
        self._update_budget = update_budget
        self._connections: ConnectionRegistry | None = None
        self._session = session
        self._owns_session = session is None
        self._trace_configs = list(trace_configs)
        self._clock = clock
        self._timeouts = timeouts or Timeouts()
        self._oauth_clients: dict[str, OAuthClient] = {}
        self._door = Door()
        parts = assemble(
            Settings(
                policy=policy or RefreshPolicy(),
                retry=retry or RetryPolicy(),
                timeouts=self._timeouts,
                schedule=schedule or Schedule(),
                duty=duty or Duty(),
                limits=limits or Limits(),
            ),
            store=self._store,
            clock=clock,
            oauth=self._oauth_client,
            access_token=self._client_token,
            close_session=self._close_session,
        )
        self.stats = parts.stats
        self._registry, self._hub, self._driver = parts.registry, parts.hub, parts.driver
        self._owned = parts.owned
        self._tasks, self._spawn = parts.owned.tasks, parts.owned.spawn
        self._scheduler, self._lifetime = parts.scheduler, parts.lifetime
        self._access, self._feed = parts.access, parts.feed
        self._bearer, self._grants = parts.bearer, parts.grants
        self._hub.watch(observe_logins(self._registry_if_kept, self._spawn))

    def __repr__(self) -> str:
        return (
            f"SessionManager(providers={self._registry.names()}, "
            f"token_sets={len(self._registry)}, renewing={len(self._tasks)}, "
            f"closed={self._owned.closed})"
        )

    # -- set-up and shutdown -------------------------------------------------------------------

    def register(
        self,
        provider: Provider,
        client: ClientCredentials,
        *,
        password_lookup: PasswordLookup | None = None,
    ) -> None:
        """Make ``provider`` usable with ``client``'s credentials; after :meth:`start` its
        stored sets are restored in the background (:meth:`ready` waits for that).

        Args:
            provider: The provider; its ``name`` becomes the first half of every token key.
            client: The client's id and secret at that provider (the client token's key names
                this client, so managers with other credentials never share it).
            password_lookup: For finAPI user tokens: a plain or async function of the user id
                that returns the password, for the password grant when a refresh token is
                gone. The manager never stores passwords.

        Raises:
            ConfigurationError: Not a provider preset, registered twice, not
                ``ClientCredentials``, a confidential client without its secret, or a lookup
                that cannot be called.
        """
        self._door.enter()
        self._registry.add(provider, client, password_lookup)
        self._lifetime.registered(provider.name)

    async def ready(self) -> None:
        """Wait until the manager is started and every restore :meth:`register` began has ended
        (a web process's readiness check).

        Raises:
            UsageError: The manager was never started, or is closed.
            StoreError: A restore failed (the store is unreachable or unreadable); the
                message names the store.
        """
        self._door.enter()
        await self._lifetime.ready()

    async def start(self) -> SessionManager:
        """Restore the registered providers' stored sets and start background work (called by
        ``async with``; idempotent). On a store that keeps the refresh duty no set is read:
        they load on demand. The store is read even with no provider registered, so one that
        cannot be reached fails here, not at the first request.

        Raises:
            StoreError: The store cannot be read (``ready()`` raises it too); after a direct
                call the app may retry :meth:`restore` or :meth:`aclose`.
        """
        self._door.enter()
        await self._lifetime.start()
        return self

    async def restore(self, provider: Provider | str | None = None) -> int:
        """Load every stored set of ``provider`` (or all registered) into memory, at most
        ``Limits.working_set``; no requests. Another client's tokens are skipped. Returns how
        many sets were restored."""
        self._door.enter()
        names = self._registry.names() if provider is None else [self.key(provider).provider]
        return await self._lifetime.restore(names)

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

        Waits ``Timeouts.close`` for renewals, then ``Timeouts.pending_write`` more for those
        whose token request was sent (their result must be stored); cancels the rest. A
        failing step is logged and the others still run. Idempotent.
        """
        if self._door.closed:
            return
        self._door.enter()
        self._door.close()  # callers from now on are refused, even while closing
        await self._lifetime.aclose()

    async def _close_session(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    def __del__(self) -> None:
        owned = getattr(self, "_owned", None)
        if owned is not None and not owned.closed and getattr(self, "_session", None) is not None:
            warnings.warn(
                "SessionManager was not closed; use 'async with' or await aclose()",
                ResourceWarning,
                stacklevel=1,
            )

    @property
    def _watcher(self) -> asyncio.Task[None] | None:
        return self._feed.watcher

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
        self._door.enter()
        return self._registry.registration(name).provider

    def oauth(self, provider: Provider | str) -> OAuthClient:
        """The :class:`OAuthClient` the manager uses for ``provider``."""
        self._door.enter()
        return self._oauth_client(provider if isinstance(provider, str) else provider.name)

    def _oauth_client(self, name: str) -> OAuthClient:
        client = self._oauth_clients.get(name)
        if client is None:
            # Loaded with the first token request: a token served from memory or the store
            # needs no HTTP client of its own.
            from ..oauth.client import OAuthClient  # noqa: PLC0415

            registration = self._registry.registration(name)
            client = OAuthClient(
                registration.provider,
                registration.client,
                self._http_session(),
                clock=self._clock,
                timeout=self._timeouts.token,
            )
            self._oauth_clients[name] = client
        return client

    def http_session(self) -> aiohttp.ClientSession:
        """The aiohttp session the manager sends on (created on first use if not given).

        The manager's own session keeps no cookies: it serves every end user, and a cookie one
        user's request set must never go out with another's.
        """
        self._door.enter()
        return self._http_session()

    def _http_session(self) -> aiohttp.ClientSession:
        if self._owned.closed:
            raise UsageError("the session manager is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), trace_configs=self._trace_configs or None
            )
        return self._session

    # -- observation -----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[ManagerEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every lifecycle event; returns an unsubscribe function.
        Callbacks run synchronously on the loop (keep them quick); their errors are logged.

        Raises:
            ConfigurationError: ``callback`` is a coroutine function (it would never run).
        """
        self._door.enter()
        from .callbacks import plain_subscriber  # noqa: PLC0415  (not on a first token's path)

        plain_subscriber(callback)
        return self._hub.subscribe(callback)

    @property
    def connections(self) -> ConnectionRegistry:
        """The fleet's bank connections, kept in the store: list them from any process
        (``await manager.connections.list(needs_action=True)``), subscribe to their events
        (``ConnectionExpiring``, ``ReconnectRequired``, ``ConnectionRepaired``), record what an
        API call learnt. A user's dead grant and login are recorded here by the manager.

        Raises:
            ConfigurationError: The store keeps no connection records.
        """
        self._door.enter()
        if self._connections is None:
            # Not on a first token's path: the registry and its records load with first use.
            from ..core.connections import DEFAULT_LEADS  # noqa: PLC0415
            from .connections import ConnectionRegistry  # noqa: PLC0415

            leads = DEFAULT_LEADS if self._connection_leads is None else self._connection_leads
            self._connections = ConnectionRegistry(
                self._store, self._clock, leads=leads, budget=self._update_budget
            )
        return self._connections

    def _registry_if_kept(self) -> ConnectionRegistry | None:
        return (
            None
            if self._owned.closed or not isinstance(self._store, ConnectionRecords)
            else self.connections
        )

    def events(self, *, maxsize: int = 1024) -> AsyncIterator[ManagerEvent]:
        """Iterate over lifecycle events until the manager closes; when ``maxsize`` are waiting
        the oldest is dropped (``stats.events_dropped``)."""
        self._door.enter()
        return self._hub.iterate(maxsize)

    async def wait_idle(self) -> None:
        """Wait until no renewal, write or restore is running (tests, orderly shutdown)."""
        self._door.enter()
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- the bearer path -------------------------------------------------------------------------

    async def access_token(self, provider: Provider | str, subject: str | None = None) -> str:
        """Return a usable access token for the client (``subject=None``) or a user: from
        memory without an await while it is usable (a stale one also starts a background
        renewal), else renewed first (once, however many callers wait).

        Raises:
            ReauthorizationRequired: The grant is dead or nothing is stored for a user.
            TransportError, ApiError, StoreError: Renewal failed; the same error reaches every
                caller waiting on that renewal. Also ``TransportError`` (retryable) if this
                process stalled past the usable time of three sets renewed for the call: a set
                is judged again when the call returns, never handed out expired.
        """
        if self._door.open._thread_id != _thread():
            self._door.enter()  # binds the first loop, refuses another or a closed manager
        name = provider if provider.__class__ is str else provider.name  # type: ignore[union-attr]
        held = self._registry.entries.get(name)
        # A set at rest (Rested) reads its token as None: only an Entry passes that check.
        entry: Entry | None = None if held is None else held.get(subject)  # type: ignore[assignment]
        if entry is not None:
            token = entry.token
            now = self._clock.monotonic()
            if token is not None and now < entry.usable_until:
                entry.last_used = now
                if now >= entry.stale_at and entry.job is None and now >= entry.retry_at:
                    self._driver.start(entry)  # stale: one background renewal, serve meanwhile
                return token
        return (await self._bearer.token_set(self.key(name, subject))).access_token.reveal()

    async def _client_token(self, name: str) -> str:
        return (await self._bearer.token_set(self._registry.key(name, None))).access_token.reveal()

    async def token_set(self, provider: Provider | str, subject: str | None = None) -> TokenSet:
        """Like :meth:`access_token` but return the whole (redacting) :class:`TokenSet`."""
        return await self._bearer.token_set(self.key(provider, subject))

    async def renew_after_rejection(
        self, provider: Provider | str, subject: str | None, rejected: str
    ) -> str:
        """Return a token other than ``rejected``, which the API just answered 401 to.

        If someone already replaced it, that token is returned; otherwise one renewal runs
        (shared with every other caller) and the renewed token is returned. A rejected token
        is renewed at once, even a finAPI client token that is otherwise reissued until it
        expires.
        """
        return await self._bearer.renew_after_rejection(self.key(provider, subject), rejected)

    async def refresh(self, provider: Provider | str, subject: str | None = None) -> TokenSet:
        """Renew now, whatever the token's age (joining a renewal already in flight).

        Uses the same single-flight, fenced, persist-then-publish path as every other renewal.
        """
        return await self._bearer.refresh(self.key(provider, subject))

    def state_counts(self) -> dict[TokenState, int]:
        """How many token sets this process holds in each state (for a metrics gauge)."""
        self._door.enter()
        now = self._clock.monotonic()
        return dict(
            collections.Counter(token_state(e.status, e.deadlines, now) for e in self._registry)
        )

    def state(self, provider: Provider | str, subject: str | None = None) -> TokenState:
        """The observable state of one token set in this process (unknown keys look expired;
        keys forgotten here look revoked)."""
        return self._bearer.state(self.key(provider, subject))

    def key(self, provider: Provider | str, subject: str | None = None) -> TokenKey:
        """The :class:`TokenKey` of a client (``subject=None``) or user token set."""
        self._door.enter()
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
        token_set = await self._grants.login_with_password(key, password)
        await self._logged_in(key)
        return token_set

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
        return self._grants.authorization_request(
            self.key(provider).provider,
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
        token_set = await self._grants.complete_authorization(key, callback, request)
        await self._logged_in(key)
        return token_set

    async def store_token_set(
        self, provider: Provider | str, subject: str | None, token_set: TokenSet
    ) -> None:
        """Store a token set the app obtained itself; clears a re-authorization state."""
        key = self.key(provider, subject)
        await self._grants.store_token_set(key, token_set)
        await self._logged_in(key)

    async def _logged_in(self, key: TokenKey) -> None:
        """Record a user's login in the connection registry (a repair, if it was broken)."""
        registry = self._registry_if_kept()
        if registry is not None and key.subject is not None:
            provider = self._registry.registration(key.provider).provider
            observed = logged_in(provider, self._clock.wall())
            await tell(registry, key.provider, key.subject, observed)

    # -- revocation ------------------------------------------------------------------------------

    async def revoke(self, provider: Provider | str, subject: str | None = None) -> None:
        """Revoke a token set at the provider and delete it from the store (its session's set
        only: a login another process stored meanwhile stays).

        The refresh token is revoked when there is one (which ends its access tokens too at
        finAPI and Keycloak); otherwise the access token. A user's connections turn
        ``REVOKED`` in :attr:`connections`.
        """
        key = self.key(provider, subject)
        await self._grants.revoke(key)
        await self._revoked(key)

    async def logout(self, provider: Provider | str, subject: str) -> None:
        """End the user's Keycloak session (logout endpoint) and delete its token set (a login
        another process stored meanwhile stays); the user's connections turn ``REVOKED`` in
        :attr:`connections`."""
        key = self.key(provider, subject)
        await self._grants.logout(key)
        await self._revoked(key)

    async def forget(
        self, provider: Provider | str, subject: str | None = None, *, revoked: bool = False
    ) -> None:
        """Delete a token set here and in the store without calling the provider.

        For sets the provider already killed (a deleted finAPI user, a changed password).
        Later requests for it raise :class:`ReauthorizationRequired` until new tokens are stored.
        With ``revoked`` (the user is gone: deleted), the user's connections turn ``REVOKED``
        in :attr:`connections`.
        """
        key = self.key(provider, subject)
        await self._grants.forget(key)
        if revoked:
            await self._revoked(key)

    async def _revoked(self, key: TokenKey) -> None:
        registry = self._registry_if_kept()
        if registry is not None and key.subject is not None:
            await tell_revoked(registry, key.provider, key.subject)
