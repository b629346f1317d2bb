"""The session manager: one owner for every token set of an application.

Theory of operation
-------------------
:class:`SessionManager` is the public face; the registry of entries and the one renewal path
live in :mod:`aiofinaccess.renewal` (read its theory of operation for the guarantees:
single-flight, cancellation-safe, re-read before renewing, persist then publish, dead grants
stay dead). This module adds what an application touches:

* the **fresh path**: :meth:`SessionManager.access_token` is a dictionary lookup and one
  comparison with the entry's ``stale_at``; it touches no lock, store or network;
* **first acquisition** (password grant, the authorization-code exchange, sets the app
  obtained itself), which runs in owned tasks like renewals and ends in the same
  persist-then-publish step;
* **lifetime**: :meth:`start` restores every stored set of the registered providers and starts
  the scheduler (one task; :mod:`aiofinaccess.scheduler`) and, for stores shared between
  processes, a watcher of their change feed, so a set another worker rotated is adopted at
  once; :meth:`aclose` stops them, lets sent renewals persist, and closes store and session;
* **observation**: typed events to callbacks or async iterators, counters, token-set states.

The manager reads time only through its :class:`~aiofinaccess.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp

from .authorization import AuthorizationRequest, build_authorization_request, parse_callback
from .clock import SYSTEM_CLOCK, Clock
from .errors import (
    ConfigurationError,
    StoreConflictError,
    StoreError,
    UsageError,
)
from .events import Event as LifecycleEvent
from .events import ManagerStats
from .lifecycle import (
    Action,
    Event,
    RefreshPolicy,
    RetryPolicy,
    Status,
    TokenState,
    decide,
    token_state,
    transition,
)
from .providers import ClientAuthMethod, Provider, RevocationStyle
from .renewal import PasswordLookup, RenewalEngine, _Entry, _Registration
from .stores import ChangeFeed, TokenStore
from .stores.memory import MemoryStore
from .tokens import ClientCredentials, Secret, TokenKey, TokenSet

__all__ = ["ManagerStats", "PasswordLookup", "SessionManager"]

logger = logging.getLogger("aiofinaccess")
_NEG_INF = float("-inf")


def _settled(entry: _Entry) -> bool:
    """No renewal running and the set in a state where adopting a newer copy is right."""
    return entry.renewal is None and entry.status in (Status.ACTIVE, Status.BACKOFF)


class SessionManager(RenewalEngine):
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
            creates its own on first use and closes it in :meth:`aclose`.
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
        lease_ttl: Seconds a store lease is held at most while renewing.
        close_timeout: Seconds :meth:`aclose` waits for renewals in flight to finish and persist.
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
        lease_ttl: float = 120.0,
        close_timeout: float = 10.0,
    ) -> None:
        self._retry = retry or RetryPolicy()
        if lease_ttl <= token_timeout:
            raise ConfigurationError(
                "lease_ttl must exceed token_timeout, or leases lapse mid-refresh"
            )
        if not 0 <= jitter < 1:
            raise ConfigurationError("jitter must be in [0, 1)")
        if max_concurrent_refreshes < 1:
            raise ConfigurationError("max_concurrent_refreshes must be >= 1")
        if idle_after is not None and idle_after <= 0:
            raise ConfigurationError("idle_after must be positive or None")
        self._store = store if store is not None else MemoryStore()
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._policy = policy or RefreshPolicy()
        self._token_timeout = token_timeout
        self._lease_ttl = lease_ttl
        self._close_timeout = close_timeout
        self._keep_alive = keep_alive
        self._idle_after = idle_after
        self._jitter = jitter
        self._closed = False
        self._started = False
        self._watcher: asyncio.Task[None] | None = None
        self._init_engine(max_concurrent_refreshes=max_concurrent_refreshes, scheduler=scheduler)

    def __repr__(self) -> str:
        return (
            f"SessionManager(providers={sorted(self._registrations)}, "
            f"token_sets={len(self._entries)}, renewing={len(self._tasks)}, closed={self._closed})"
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

        Args:
            provider: The provider; its ``name`` becomes the first half of every token key.
            client: The client's id and secret at that provider.
            password_lookup: For finAPI user tokens: an async callback that returns a user's
                password so the manager can fall back to the password grant when a refresh
                token is gone. The manager never stores passwords.
        """
        if not isinstance(provider, Provider):
            raise ConfigurationError("provider must be a FinApi, Everifin or Oidc preset")
        if provider.name in self._registrations:
            raise ConfigurationError(f"provider {provider.name!r} is already registered")
        if not isinstance(client, ClientCredentials):
            raise ConfigurationError("client must be ClientCredentials(client_id, client_secret)")
        if client.client_secret is None and provider.client_auth is not ClientAuthMethod.NONE:
            raise ConfigurationError(
                f"client_secret is required for provider {provider.name!r} "
                f"({provider.client_auth.value})"
            )
        if password_lookup is not None and not callable(password_lookup):
            raise ConfigurationError("password_lookup must be an async callable")
        self._registrations[provider.name] = _Registration(provider, client, password_lookup)
        if self._started and not self._closed:
            self._spawn(self.restore(provider.name))

    async def start(self) -> SessionManager:
        """Restore stored token sets of the registered providers and start background work.

        Called by ``async with``. Providers registered later are restored as they register.
        Idempotent.
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
        for name in list(self._registrations):
            await self.restore(name)
        return self

    async def restore(self, provider: Provider | str | None = None) -> int:
        """Load every stored set of ``provider`` (or all registered) into memory; no requests.

        Returns:
            How many token sets were restored.
        """
        names = list(self._registrations) if provider is None else [self.key(provider).provider]
        restored = 0
        for name in names:
            async for key in self._store.keys(name):
                stored = await self._load(key)
                entry = self._entry(key)
                if stored is None or entry.renewal is not None or entry.version == stored.version:
                    continue
                self._publish(entry, stored.token_set, stored.version)
                restored += 1
        return restored

    async def _watch_changes(self, feed: ChangeFeed) -> None:
        """Adopt sets other processes wrote, without waiting for ours to go stale."""
        async for key, version in feed.changes():
            entry = self._entries.get((key.provider, key.subject))
            if entry is None or entry.version == version or not _settled(entry):
                continue
            try:
                stored = await self._load(key)
            except StoreError:
                logger.warning("could not read token set %s after a change", key.hashed)
                continue
            if not _settled(entry):
                continue  # a renewal started meanwhile; it re-reads the store itself
            if stored is None:
                self._drop_local(entry)
            elif stored.version != entry.version:
                self._adopt(entry, stored)

    def _drop_local(self, entry: _Entry) -> None:
        """Another process deleted the set (revoked, or its grant died): forget our copy."""
        entry.token_set = None
        entry.token = None
        entry.deadlines = None
        entry.version = None
        entry.stale_at = _NEG_INF
        entry.generation += 1

    async def __aenter__(self) -> SessionManager:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop background work, let renewals in flight persist, then close store and session.

        Order: stop the scheduler and the watcher, wait for renewals (up to
        ``close_timeout``, then cancel), end event iterators, close the store, close the
        session (if the manager created it). A failing step is logged and the others still
        run. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        pending = set(self._tasks)
        if pending:
            _done, late = await asyncio.wait(pending, timeout=self._close_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                logger.warning("aclose cancelled %d renewals still running", len(late))
        self._hub.close()
        try:
            await self._store.aclose()
        except Exception:
            logger.warning("closing the token store failed", exc_info=True)
        if self._owns_session and self._session is not None:
            await self._session.close()

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
        return self._registration(name).provider

    # -- observation -----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[LifecycleEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every lifecycle event; returns an unsubscribe function.

        Callbacks run synchronously on the event loop: keep them quick. Their exceptions are
        logged and never reach the manager.
        """
        return self._hub.subscribe(callback)

    def events(self, *, maxsize: int = 1024) -> AsyncIterator[LifecycleEvent]:
        """Iterate over lifecycle events until the manager closes.

        When ``maxsize`` events are waiting the oldest is dropped (``stats.events_dropped``).
        """
        return self._hub.iterate(maxsize)

    async def wait_idle(self) -> None:
        """Wait until no renewal or acquisition is running (for tests and orderly shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- the bearer path -------------------------------------------------------------------------

    async def access_token(self, provider: Provider | str, subject: str | None = None) -> str:
        """Return a usable access token for the client (``subject=None``) or a user.

        Fresh tokens come from memory. A stale one is returned while one background renewal
        runs; an expired or missing one is renewed first (once, however many callers wait).

        Raises:
            ReauthorizationRequired: The grant is dead or nothing is stored for a user.
            TransportError, ApiError, StoreError: Renewal failed; the same error reaches every
                caller waiting on that renewal.
        """
        name = provider if provider.__class__ is str else provider.name  # type: ignore[union-attr]
        entry = self._entries.get((name, subject))
        if entry is not None:
            token = entry.token
            now = self._clock.monotonic()
            if token is not None and now < entry.stale_at:
                entry.last_used = now
                return token
        return (await self._token_set_slow(TokenKey(name, subject))).access_token.reveal()

    async def token_set(self, provider: Provider | str, subject: str | None = None) -> TokenSet:
        """Like :meth:`access_token` but return the whole (redacting) :class:`TokenSet`."""
        return await self._token_set_slow(self.key(provider, subject))

    async def _token_set_slow(self, key: TokenKey) -> TokenSet:
        entry = self._entry(key)
        entry.last_used = self._clock.monotonic()
        if entry.status is Status.REAUTH_REQUIRED or entry.status is Status.REVOKED:
            raise self._poisoned(entry)
        if entry.token_set is not None and entry.deadlines is not None:
            action = decide(entry.deadlines, self._clock.monotonic())
            if action is Action.USE:
                return entry.token_set
            if action is Action.USE_AND_REFRESH:
                if entry.renewal is None and self._clock.monotonic() >= entry.retry_at:
                    self._start_renewal(entry)
                return entry.token_set
        return await self._await_owned(self._start_renewal(entry))

    async def renew_after_rejection(
        self, provider: Provider | str, subject: str | None, rejected: str
    ) -> str:
        """Return a token other than ``rejected``, which the API just answered 401 to.

        If someone already replaced it, that token is returned; otherwise one renewal runs
        (shared with every other caller) and the renewed token is returned.
        """
        key = self.key(provider, subject)
        entry = self._entry(key)
        if entry.status is Status.REAUTH_REQUIRED or entry.status is Status.REVOKED:
            raise self._poisoned(entry)
        if entry.token is not None and entry.token != rejected:
            return entry.token
        task = self._start_renewal(entry, rejected=rejected, reason="forced")
        return (await self._await_owned(task)).access_token.reveal()

    async def refresh(self, provider: Provider | str, subject: str | None = None) -> TokenSet:
        """Renew now, whatever the token's age (joining a renewal already in flight).

        Uses the same single-flight, persist-then-publish path as every other renewal.
        """
        key = self.key(provider, subject)
        entry = self._entry(key)
        if entry.status is Status.REAUTH_REQUIRED or entry.status is Status.REVOKED:
            raise self._poisoned(entry)
        if entry.token_set is None and entry.renewal is None:
            # Take what the store holds first, without a request: the forced renewal below
            # must redeem the newest refresh token, and only once.
            stored = await self._load(key)
            if stored is not None and entry.token_set is None and entry.renewal is None:
                self._publish(entry, stored.token_set, stored.version)
        return await self._await_owned(
            self._start_renewal(entry, rejected=entry.token, reason="forced")
        )

    def state(self, provider: Provider | str, subject: str | None = None) -> TokenState:
        """The observable state of one token set (unknown keys look expired)."""
        key = self.key(provider, subject)
        entry = self._entries.get((key.provider, key.subject))
        if entry is None:
            return TokenState.EXPIRED
        return token_state(entry.status, entry.deadlines, self._clock.monotonic())

    def key(self, provider: Provider | str, subject: str | None = None) -> TokenKey:
        """The :class:`TokenKey` of a client (``subject=None``) or user token set."""
        name = provider if isinstance(provider, str) else provider.name
        if name not in self._registrations:
            raise UsageError(f"provider {name!r} is not registered; call register() first")
        return TokenKey(name, subject)

    # -- first acquisition ---------------------------------------------------------------------

    async def login_with_password(
        self, provider: Provider | str, username: str, password: str | Secret
    ) -> TokenSet:
        """Obtain a user token with the password grant and store it under ``username``."""
        key = self.key(provider, username)
        oauth = self.oauth(key.provider)
        return await self._await_owned(
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
        registration = self._registration(self.key(provider).provider)
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
        registration = self._registration(key.provider)
        response = parse_callback(callback, request, expected_issuer=registration.provider.issuer)
        oauth = self.oauth(key.provider)
        return await self._await_owned(
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

        await self._await_owned(self._spawn(self._acquire(key, fetched, requests=0)))

    async def _acquire(
        self, key: TokenKey, fetch: Callable[[], Awaitable[TokenSet]], *, requests: int = 1
    ) -> TokenSet:
        self.stats.token_requests += requests
        token_set = await fetch()
        for _attempt in range(3):
            current = await self._store_call(self._store.get(key))
            try:
                version = await self._store_call(
                    self._store.put(
                        key,
                        token_set,
                        expected_version=None if current is None else current.version,
                    )
                )
            except StoreConflictError:
                continue
            entry = self._entry(key)
            entry.status = transition(entry.status, Event.TOKENS_STORED)
            entry.reauth = None
            self._publish(entry, token_set, version)
            return token_set
        raise StoreConflictError(f"token set {key.hashed}: store kept changing while writing")

    # -- revocation ------------------------------------------------------------------------------

    async def revoke(self, provider: Provider | str, subject: str | None = None) -> None:
        """Revoke a token set at the provider and delete it from the store.

        The refresh token is revoked when there is one (which ends its access tokens too at
        finAPI and Keycloak); otherwise the access token.
        """
        key = self.key(provider, subject)
        registration = self._registration(key.provider)
        stored = await self._load(key)
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
        stored = await self._load(key)
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
        await self._store_call(self._store.delete(key))
        entry = self._entry(key)
        if entry.renewal is not None:
            await asyncio.wait([entry.renewal])
        if entry.status is not Status.REVOKED:
            entry.status = transition(entry.status, Event.REVOKED)
        entry.token_set = None
        entry.token = None
        entry.deadlines = None
        entry.version = None
        entry.stale_at = _NEG_INF
