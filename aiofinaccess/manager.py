"""The session manager: one owner for every token set of an application.

Theory of operation
-------------------
The manager keeps a registry of entries keyed by :class:`~aiofinaccess.tokens.TokenKey`
(provider, subject). Asking for a bearer token is a dictionary lookup and one comparison with
the entry's ``stale_at`` deadline: the fresh path touches no lock, store or network.

Everything else goes through **one renewal path**, :meth:`SessionManager._renew`, which runs
in a task the manager owns:

1. *Single-flight.* An entry has at most one renewal task. Every caller, however many, awaits
   that task through :func:`asyncio.shield`, so all get the same result or the same error,
   and a caller that is cancelled (request timeout, client gone) cannot abort a token request
   that was already sent.
2. *Re-read before renewing.* The task reads the store; if another process (or an earlier
   task) already stored a usable, newer token set, it adopts it and sends nothing. Otherwise
   it takes the store's lease for the key, reads again, and only then renews.
3. *Renew with the grant that fits* (:func:`~aiofinaccess.lifecycle.choose_renewal`): refresh
   token, ``client_credentials`` for client tokens, or the password grant through the app's
   credentials callback. The very same functions acquire tokens the first time.
4. *Persist, then publish.* The new set is written with compare-and-swap on the version read
   in step 2. Only after the store acknowledged it does the entry change and do waiters get
   it. A failed write publishes nothing and surfaces as a typed
   :class:`~aiofinaccess.errors.StoreError`.
5. *Poison on a dead grant.* ``invalid_grant`` moves the entry to ``REAUTH_REQUIRED``; every
   later request fails at once with :class:`~aiofinaccess.errors.ReauthorizationRequired`,
   without calling the provider, until the app stores a new token set.

The manager never reads a clock or sleeps except through its :class:`~aiofinaccess.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import aiohttp
import attrs

from .authorization import AuthorizationRequest, build_authorization_request, parse_callback
from .clock import SYSTEM_CLOCK, Clock
from .errors import (
    AiofinaccessError,
    ApiError,
    ConfigurationError,
    ReauthorizationRequired,
    StoreConflictError,
    StoreError,
    UsageError,
)
from .lifecycle import (
    Action,
    Deadlines,
    Event,
    RefreshPolicy,
    Renewal,
    Status,
    TokenState,
    choose_renewal,
    decide,
    plan,
    token_state,
    transition,
)
from .oauth import OAuthClient
from .providers import Provider, RevocationStyle
from .stores import TokenStore, Versioned
from .stores.memory import MemoryStore
from .tokens import Anchor, ClientCredentials, Secret, TokenKey, TokenSet

__all__ = ["ManagerStats", "PasswordLookup", "SessionManager"]

logger = logging.getLogger("aiofinaccess")

#: Given a user id, return that user's password (from the app's own vault), or ``None``.
PasswordLookup = Callable[[str], Awaitable["str | Secret | None"]]

_T = TypeVar("_T")
_NEG_INF = float("-inf")
#: Seconds a failed background renewal waits before the next one (blocking callers don't wait).
_RETRY_AFTER_FAILURE = 5.0


@attrs.define(slots=True)
class ManagerStats:
    """Counters an app can export. They only ever grow."""

    token_requests: int = 0
    renewals: int = 0
    adopted_from_store: int = 0
    reauth_required: int = 0
    store_failures: int = 0


@attrs.define(slots=True)
class _Registration:
    provider: Provider
    client: ClientCredentials
    password_lookup: PasswordLookup | None


@attrs.define(slots=True, eq=False)
class _Entry:
    key: TokenKey
    status: Status = Status.ACTIVE
    token_set: TokenSet | None = None
    version: int | None = None
    deadlines: Deadlines | None = None
    # The revealed access token and its stale deadline, copied out for the fast path.
    token: str | None = attrs.field(default=None, repr=False)
    stale_at: float = _NEG_INF
    renewal: asyncio.Task[TokenSet] | None = attrs.field(default=None, repr=False)
    reauth: ReauthorizationRequired | None = None
    # After a failed renewal, background renewals wait until then (blocking ones do not).
    retry_at: float = _NEG_INF


class SessionManager:
    """Owns token sets, their store, and the HTTP session used to renew them.

    Lives as long as the application (or worker process) and belongs to one event loop. Use
    it as an async context manager, or call :meth:`aclose` yourself.

    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with SessionManager() as manager:
    ...         manager.register(FinApi.sandbox(), ClientCredentials("id", "secret"))
    ...         token = await manager.access_token("finapi")  # the client token

    Args:
        store: Where token sets persist. Defaults to an in-process :class:`MemoryStore`.
        session: An aiohttp session to use (not closed by the manager). By default the manager
            creates its own on first use and closes it in :meth:`aclose`.
        clock: Clock and sleep; tests pass a fake one.
        policy: When tokens turn stale and expire.
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
        token_timeout: float = 30.0,
        lease_ttl: float = 60.0,
        close_timeout: float = 10.0,
    ) -> None:
        if lease_ttl <= token_timeout:
            raise ConfigurationError(
                "lease_ttl must exceed token_timeout, or leases lapse mid-refresh"
            )
        self._store: TokenStore = store if store is not None else MemoryStore()
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._policy = policy or RefreshPolicy()
        self._token_timeout = token_timeout
        self._lease_ttl = lease_ttl
        self._close_timeout = close_timeout
        self._registrations: dict[str, _Registration] = {}
        self._oauth_clients: dict[str, OAuthClient] = {}
        # Keyed by (provider name, subject) rather than TokenKey: the fresh path then builds
        # no object per call.
        self._entries: dict[tuple[str, str | None], _Entry] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.stats = ManagerStats()

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
        if provider.name in self._registrations:
            raise ConfigurationError(f"provider {provider.name!r} is already registered")
        self._registrations[provider.name] = _Registration(provider, client, password_lookup)

    async def __aenter__(self) -> SessionManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Let renewals in flight finish and persist (up to ``close_timeout``), then close.

        Order: stop accepting work, drain renewals, close the store, close the session (if
        the manager created it). A failing step is logged and the others still run.
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        pending = set(self._tasks)
        if pending:
            _done, late = await asyncio.wait(pending, timeout=self._close_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                logger.warning("aclose cancelled %d renewals still running", len(late))
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
            if token is not None and self._clock.monotonic() < entry.stale_at:
                return token
        return (await self._token_set_slow(TokenKey(name, subject))).access_token.reveal()

    async def token_set(self, provider: Provider | str, subject: str | None = None) -> TokenSet:
        """Like :meth:`access_token` but return the whole (redacting) :class:`TokenSet`."""
        return await self._token_set_slow(self.key(provider, subject))

    async def _token_set_slow(self, key: TokenKey) -> TokenSet:
        entry = self._entry(key)
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
        task = self._start_renewal(entry, rejected=rejected)
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
            await self._await_owned(self._start_renewal(entry))  # load what the store has
        return await self._await_owned(self._start_renewal(entry, rejected=entry.token))

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

    # -- the renewal path ----------------------------------------------------------------------

    def _entry(self, key: TokenKey) -> _Entry:
        entry = self._entries.get((key.provider, key.subject))
        if entry is None:
            if key.provider not in self._registrations:
                raise UsageError(f"provider {key.provider!r} is not registered")
            entry = self._entries[key.provider, key.subject] = _Entry(key)
        return entry

    def _poisoned(self, entry: _Entry) -> ReauthorizationRequired:
        if entry.status is Status.REVOKED:
            return ReauthorizationRequired(entry.key.hashed, "revoked")
        previous = entry.reauth
        return ReauthorizationRequired(
            entry.key.hashed,
            previous.reason if previous else "reauth_required",
            previous.cause if previous else None,
        )

    def _start_renewal(
        self, entry: _Entry, *, rejected: str | None = None
    ) -> asyncio.Task[TokenSet]:
        if entry.renewal is not None:
            return entry.renewal
        if self._closed:
            raise UsageError("the session manager is closed")
        entry.status = transition(entry.status, Event.REFRESH_STARTED)
        task = self._spawn(self._renew(entry, rejected))
        entry.renewal = task
        task.add_done_callback(functools.partial(self._renewal_done, entry))
        return task

    def _renewal_done(self, entry: _Entry, task: asyncio.Task[TokenSet]) -> None:
        if entry.renewal is task:
            entry.renewal = None
        error = None if task.cancelled() else task.exception()
        if entry.status is not Status.REFRESHING:
            # Tokens were stored or revoked meanwhile: this renewal's outcome is moot.
            return
        if task.cancelled() or (
            error is not None and not isinstance(error, ReauthorizationRequired)
        ):
            entry.status = transition(entry.status, Event.REFRESH_FAILED)
            entry.retry_at = self._clock.monotonic() + _RETRY_AFTER_FAILURE
            logger.warning(
                "renewing token set %s failed: %s",
                entry.key.hashed,
                "cancelled" if error is None else type(error).__name__,
            )
        elif isinstance(error, ReauthorizationRequired):
            entry.status = transition(entry.status, Event.GRANT_DEAD)
            entry.reauth = error
            entry.token = None
            entry.stale_at = _NEG_INF
            self.stats.reauth_required += 1
            logger.warning(
                "token set %s needs re-authorization: %s", entry.key.hashed, error.reason
            )

    def _spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        if self._closed:
            coro.close()
            raise UsageError("the session manager is closed")
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _await_owned(task: asyncio.Task[_T]) -> _T:
        # shield: a caller's cancellation must not cancel a request that may have been sent.
        return await asyncio.shield(task)

    def _usable(self, stored: Versioned | None, entry: _Entry, rejected: str | None) -> bool:
        """Whether a stored set can be adopted instead of renewing."""
        if stored is None:
            return False
        if entry.version is not None and stored.version == entry.version:
            return False
        if rejected is not None and stored.token_set.access_token.reveal() == rejected:
            return False
        deadlines = plan(stored.token_set, self._policy, now=self._clock.monotonic())
        return decide(deadlines, self._clock.monotonic()) is not Action.REFRESH_THEN_USE

    async def _renew(self, entry: _Entry, rejected: str | None) -> TokenSet:
        key = entry.key
        stored = await self._load(key)
        if self._usable(stored, entry, rejected):
            assert stored is not None  # noqa: S101  (narrowing for mypy; _usable checked it)
            return self._adopt(entry, stored)
        async with self._lease(key):
            stored = await self._load(key)
            if self._usable(stored, entry, rejected):
                assert stored is not None  # noqa: S101
                return self._adopt(entry, stored)
            return await self._renew_under_lease(entry, stored)

    async def _renew_under_lease(self, entry: _Entry, stored: Versioned | None) -> TokenSet:
        key = entry.key
        registration = self._registration(key.provider)
        previous = stored.token_set if stored is not None else None
        now = self._clock.monotonic()
        deadlines = None if previous is None else plan(previous, self._policy, now=now)
        renewal = choose_renewal(
            previous,
            deadlines,
            now=now,
            is_client=key.is_client,
            can_use_password=registration.password_lookup is not None,
        )
        if renewal is Renewal.REAUTHORIZE:
            reason = "no_token_set" if previous is None else "refresh_token_unavailable"
            raise ReauthorizationRequired(key.hashed, reason)
        if stored is not None and entry.deadlines is not None and entry.version == stored.version:
            # A reissued token (finAPI client tokens) cannot be renewed before it expires.
            wait = entry.deadlines.renew_not_before - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)
        self.stats.token_requests += 1
        self.stats.renewals += 1
        logger.debug("renewing token set %s with %s", key.hashed, renewal.value)
        try:
            fresh = await self._redeem(renewal, key, registration, previous)
        except ReauthorizationRequired as exc:
            raise ReauthorizationRequired(key.hashed, exc.reason, exc.cause) from exc
        reissued = previous is not None and fresh.access_token == previous.access_token
        try:
            version = await self._store_call(
                self._store.put(
                    key, fresh, expected_version=None if stored is None else stored.version
                )
            )
        except StoreConflictError:
            # Someone stored a token set for this key while we renewed (the app, or a process
            # whose lease lapsed). Theirs is the one the store holds: adopt it if usable.
            latest = await self._load(key)
            if latest is None or not self._usable(latest, entry, None):
                raise
            logger.warning(
                "token set %s changed while renewing; adopting the stored one", key.hashed
            )
            return self._adopt(entry, latest)
        self._publish(entry, fresh, version, reissued=reissued)
        logger.debug("token set %s renewed, version %d", key.hashed, version)
        return fresh

    async def _redeem(
        self,
        renewal: Renewal,
        key: TokenKey,
        registration: _Registration,
        previous: TokenSet | None,
    ) -> TokenSet:
        oauth = self.oauth(key.provider)
        if renewal is Renewal.CLIENT_CREDENTIALS:
            return await oauth.client_credentials()
        if renewal is Renewal.REFRESH_TOKEN and previous and previous.refresh_token is not None:
            try:
                return (await oauth.refresh(previous.refresh_token)).merged_after_refresh(previous)
            except ReauthorizationRequired:
                if registration.password_lookup is None:
                    raise
                # finAPI user tokens: a dead refresh token is not the end while the app can
                # supply the password again.
                self.stats.token_requests += 1
        return await self._password_grant(key, registration)

    async def _password_grant(self, key: TokenKey, registration: _Registration) -> TokenSet:
        if key.subject is None or registration.password_lookup is None:
            raise ReauthorizationRequired(key.hashed, "no_password")
        password = await registration.password_lookup(key.subject)
        if password is None:
            raise ReauthorizationRequired(key.hashed, "no_password")
        oauth = self.oauth(key.provider)
        try:
            return await oauth.password(key.subject, Secret(password))
        except ApiError as exc:
            reason = oauth.dead_grant_reason(exc)
            if reason is not None:
                raise ReauthorizationRequired(key.hashed, reason, exc) from exc
            raise

    def _adopt(self, entry: _Entry, stored: Versioned) -> TokenSet:
        self.stats.adopted_from_store += 1
        self._publish(entry, stored.token_set, stored.version)
        return entry.token_set or stored.token_set

    def _publish(
        self, entry: _Entry, token_set: TokenSet, version: int, *, reissued: bool = False
    ) -> None:
        now = self._clock.monotonic()
        if token_set.anchor is None:
            # Restored from a store: place it on this process's monotonic clock.
            token_set = token_set.with_anchor(Anchor(self._clock.wall(), now))
        deadlines = plan(token_set, self._policy, now=now, reissued=reissued)
        entry.token_set = token_set
        entry.version = version
        entry.deadlines = deadlines
        entry.token = token_set.access_token.reveal()
        entry.stale_at = deadlines.stale_at
        if entry.status is Status.REFRESHING:
            entry.status = transition(entry.status, Event.REFRESH_SUCCEEDED)

    async def _load(self, key: TokenKey) -> Versioned | None:
        return await self._store_call(self._store.get(key))

    def _lease(self, key: TokenKey) -> Any:
        return self._store.lease(key, ttl=self._lease_ttl)

    async def _store_call(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except StoreError:
            self.stats.store_failures += 1
            raise
        except AiofinaccessError:
            raise
        except Exception as exc:
            self.stats.store_failures += 1
            raise StoreError(f"token store failed: {type(exc).__name__}") from exc

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

    # -- plumbing ------------------------------------------------------------------------------

    def _registration(self, name: str) -> _Registration:
        try:
            return self._registrations[name]
        except KeyError:
            raise UsageError(f"provider {name!r} is not registered") from None

    def oauth(self, provider: Provider | str) -> OAuthClient:
        """The :class:`OAuthClient` the manager uses for ``provider``."""
        name = provider if isinstance(provider, str) else provider.name
        client = self._oauth_clients.get(name)
        if client is None:
            registration = self._registration(name)
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
        """The aiohttp session the manager sends on (created on first use if not given)."""
        if self._closed:
            raise UsageError("the session manager is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session
