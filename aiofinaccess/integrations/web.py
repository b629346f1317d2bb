"""Connect a user's bank from a web app: the authorization-code flow, exchanged exactly once.

>>> async def user_id(request: web.Request) -> str:  # doctest: +SKIP
...     return (await get_session(request))["user_id"]  # knowing the user is the app's job
>>> flow = ConnectFlow(manager, "everifin", success_url="/accounts")  # doctest: +SKIP
>>> WebConnect(flow, user_id=user_id).setup(app)  # doctest: +SKIP

That adds ``GET /connect/everifin`` (off to the provider) and ``.../callback`` (back: tokens
stored under the app's user id, then ``on_connected``, by default a redirect to ``?next=`` or
``success_url``; failures reach ``on_error`` as a typed
:class:`~aiofinaccess.core.errors.AuthorizationFlowError`). Other frameworks call
:class:`ConnectFlow`'s ``begin`` and ``finish`` from their own handlers. finAPI, which has no
authorization-code flow, connects through
:class:`~aiofinaccess.integrations.webform_flow.WebFormFlow` in its place (the Web Form). An
app's own ``POST`` routes, such as a disconnect, check :meth:`WebConnect.same_origin`. The
flow's state lives in the token store, so any worker can take the callback
(docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import web
from yarl import URL

from ..core._json import parse_json
from ..core.errors import (
    ApiError,
    AuthorizationDenied,
    AuthorizationFlowError,
    ConfigurationError,
    StateMismatchError,
    StoreError,
)
from ..oauth.authorization import AuthorizationRequest
from ..stores.memory import MemoryStore
from ..stores.protocol import PendingAuthorizations
from .same_origin import is_same_origin

if TYPE_CHECKING:
    from ..oauth.providers import Provider
    from ..session.manager import SessionManager

__all__ = [
    "ConnectFlow",
    "Connected",
    "ExchangeFailed",
    "UserId",
    "WebConnect",
    "problem",
    "problem_middleware",
]

logger = logging.getLogger("aiofinaccess")

#: The app's user id for a request: a plain or an async function.
UserId = Callable[[web.Request], str | Awaitable[str]]
OnConnected = Callable[[web.Request, "Connected"], Awaitable[web.StreamResponse]]
OnError = Callable[[web.Request, AuthorizationFlowError], Awaitable[web.StreamResponse]]

_NO_STORE: Final = {"Cache-Control": "no-store"}


class ExchangeFailed(AuthorizationFlowError):
    """The callback was genuine, but completing it failed: the code exchange, or reading the
    web form's outcome (``__cause__`` says why)."""


@attrs.frozen(slots=True)
class Connected:
    """A finished connection.

    Attributes:
        provider: The provider's name in the manager.
        subject: The app's user id the tokens are stored under.
        next_url: Where the app asked to go afterwards (a local path).
        replayed: True for a reload (or a racing duplicate) of a callback already handled.
    """

    provider: str
    subject: str
    next_url: str
    replayed: bool = False


@attrs.frozen(slots=True)
class _Outcome:
    subject: str
    next_url: str
    error_kind: str | None = None  # "denied", "flow" or "exchange"
    error: str | None = None
    description: str | None = None
    # Not stored: the first request's live error, and whether this is a later reading.
    cause: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    replayed: bool = attrs.field(default=False, eq=False)

    def to_bytes(self) -> bytes:
        stored = attrs.asdict(self, filter=lambda a, _: a.name not in ("cause", "replayed"))
        return json.dumps(stored).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> _Outcome:
        record = _record(data, ("subject", "next_url"))
        fields = {a.name for a in attrs.fields(cls)} - {"cause", "replayed"}
        if not set(record) <= fields or not all(
            isinstance(record.get(name), str | None) for name in fields
        ):
            raise StoreError("a pending authorization record is unreadable")
        return cls(**record, replayed=True)

    def exception(self) -> AuthorizationFlowError | None:
        if self.error_kind is None:
            return None
        if self.error_kind == "denied":
            return AuthorizationDenied(self.error or "access_denied", self.description)
        kind = ExchangeFailed if self.error_kind == "exchange" else AuthorizationFlowError
        exc = kind(self.error or "authorization failed")
        exc.__cause__ = self.cause
        return exc


def _failed(subject: str, next_url: str, exc: BaseException, step: str) -> _Outcome:
    if isinstance(exc, AuthorizationDenied):
        return _Outcome(subject, next_url, "denied", exc.error, exc.error_description)
    if isinstance(exc, AuthorizationFlowError):
        return _Outcome(subject, next_url, "flow", str(exc))
    # SDK messages never hold a secret; a foreign exception is named by its type only.
    ours = type(exc).__module__.startswith("aiofinaccess")
    reason = f"{type(exc).__name__}: {exc}" if ours else type(exc).__name__
    return _Outcome(subject, next_url, "exchange", f"the {step} failed ({reason})", cause=exc)


def _record(data: bytes, required: tuple[str, ...]) -> dict[str, Any]:
    """A stored JSON record with ``required`` string fields, or :class:`StoreError`.

    Whoever can write the store (another tenant of a Redis without encryption) can plant any
    bytes here; they must fail typed, never as ``KeyError`` or ``RecursionError``.
    """
    try:
        record = parse_json(data)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in required):
        raise StoreError("a pending authorization record is unreadable")
    return record


def _local_path(value: str | None, default: str) -> str:
    """``value`` if it is a path on this site (no open redirect), else ``default``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    # Browsers drop tabs and newlines from URLs: "/\t/evil.example" would become "//evil...".
    return default if any(ord(c) < 0x21 or c == "\x7f" for c in value) else value


def _digest(state: str) -> str:
    # Store keys never carry the state itself: it is a bearer value until it is spent.
    return hashlib.sha256(state.encode()).hexdigest()


class ConnectFlow:
    """The framework-free core: ``begin`` a user's authorization, ``finish`` it exactly once.

    Args:
        manager: Exchanges the code and stores the tokens under the app's user id.
        provider: The registered provider (name or :class:`Provider`).
        store: Keeps pending flows; by default the manager's token store.
        success_url: Where ``next_url`` points when the app names no local path.
        scopes: Scopes to ask for (the provider's defaults when ``None``).
        extra_params: More authorization parameters (``prompt``, ``ui_locales``...).
        pending_ttl: Seconds a user has to log in at the provider.
        outcome_ttl: Seconds a reload of the callback still ends like the first request.
        wait_timeout: Seconds a duplicate callback waits for the first one's exchange.

    Raises:
        ConfigurationError: The store cannot keep pending authorizations, or a TTL is bad.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: Provider | str,
        *,
        store: PendingAuthorizations | None = None,
        success_url: str = "/",
        scopes: tuple[str, ...] | None = None,
        extra_params: Mapping[str, str] | None = None,
        pending_ttl: float = 600.0,
        outcome_ttl: float = 600.0,
        wait_timeout: float = 60.0,
    ) -> None:
        self.provider = manager.key(provider).provider
        # The manager's own store (SessionManager has no public accessor for it yet).
        chosen = manager.store if store is None else store
        if not isinstance(chosen, PendingAuthorizations):
            raise ConfigurationError(f"store {chosen!r} cannot keep pending authorizations")
        if isinstance(chosen, MemoryStore):  # the default: fine for one process, a trap for more
            logger.warning(
                "the connect flow for %s keeps pending logins and tokens in MemoryStore, in this "
                "one process: under several workers (uvicorn --workers, gunicorn) a callback that "
                "reaches another worker fails ('callback state is unknown or expired'); give the "
                "SessionManager a SQLiteStore or RedisStore",
                self.provider,
            )
        if not min(pending_ttl, outcome_ttl, wait_timeout) > 0:
            raise ConfigurationError("pending_ttl, outcome_ttl and wait_timeout must be > 0")
        self.success_url = success_url
        self._manager, self._store = manager, chosen
        self._scopes, self._extra_params = scopes, extra_params
        self._pending_ttl, self._outcome_ttl = pending_ttl, outcome_ttl
        self._wait_timeout = wait_timeout
        self._inflight: dict[tuple[str, str], asyncio.Task[_Outcome]] = {}

    #: What :meth:`finish` does with a genuine callback, for messages.
    step = "code exchange"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r})"

    async def begin(self, user: str, redirect_uri: str, *, next_url: str | None = None) -> str:
        """Remember a fresh request for ``user``; return the provider URL to redirect to.

        The URL is a ``str``, as redirect responses take it (``yarl.URL(url)`` for its parts).

        Args:
            user: The app's user id; the tokens will be stored under it.
            redirect_uri: The callback URL, as registered at the provider.
            next_url: A local path for afterwards (anything else becomes ``success_url``).
        """
        auth = self._manager.authorization_request(
            self.provider, redirect_uri, scopes=self._scopes, extra_params=self._extra_params
        )
        await self._remember(auth.state, user, next_url, auth.to_dict())
        return auth.url

    async def finish(self, user: str, query: Mapping[str, str]) -> Connected:
        """Check the callback's ``query``, exchange its code once, return the connection.

        Raises:
            StateMismatchError: ``state`` missing, unknown, expired, or issued to another user.
            AuthorizationDenied: The provider redirected with ``error=...`` (``access_denied``).
            ExchangeFailed: The code exchange failed (then and on every reload).
            AuthorizationFlowError: Another reason the redirect cannot be accepted, or the
                first request's exchange did not finish within ``wait_timeout``.
        """
        state = query.get("state")
        if not state:
            raise StateMismatchError("callback has no state")
        key = (_digest(state), user)
        task = self._inflight.get(key)
        if task is not None:  # a racing duplicate in this process ends like the first
            outcome = attrs.evolve(await asyncio.shield(task), replayed=True)
        else:
            task = asyncio.get_running_loop().create_task(self._settle(*key, dict(query)))
            task.add_done_callback(lambda done: self._done(key, done))
            self._inflight[key] = task
            outcome = await asyncio.shield(task)
        error = outcome.exception()
        if error is not None:
            raise error
        return Connected(self.provider, outcome.subject, outcome.next_url, outcome.replayed)

    async def aclose(self) -> None:
        """Wait for callbacks in flight (:meth:`WebConnect.setup` runs it on cleanup)."""
        if self._inflight:
            await asyncio.wait(set(self._inflight.values()))

    def _key(self, kind: str, digest: str) -> str:
        return f"web:{self.provider}:{kind}:{digest}"

    async def _remember(
        self, state: str, user: str, next_url: str | None, request: dict[str, Any]
    ) -> None:
        """Keep a flow in flight under its ``state``, for ``user`` and the callback only."""
        next_url = _local_path(next_url, self.success_url)
        pending = {"subject": user, "next_url": next_url, "request": request}
        digest, ttl = _digest(state), self._pending_ttl
        await self._store.put_pending(
            self._key("req", digest), json.dumps(pending).encode(), ttl=ttl
        )
        await self._store.put_pending(self._key("claim", digest), b"1", ttl=ttl)

    async def _complete(self, subject: str, request: dict[str, Any], query: dict[str, str]) -> None:
        """Turn a genuine callback into stored tokens: here, the code exchange."""
        stored = AuthorizationRequest.from_dict(request)
        await self._manager.complete_authorization(self.provider, subject, query, stored)

    def _done(self, key: tuple[str, str], task: asyncio.Task[_Outcome]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved, so an error nobody waits for is not logged as lost

    async def _settle(self, digest: str, user: str, query: dict[str, str]) -> _Outcome:
        raw = await self._store.get_pending(self._key("req", digest))
        if raw is not None:
            pending = _record(raw, ("subject", "next_url"))
            if not isinstance(pending.get("request"), dict):
                raise StoreError("a pending authorization record is unreadable")
            if pending["subject"] != user:
                raise StateMismatchError("callback state was issued to another user")
            if await self._store.take_pending(self._key("claim", digest)) is not None:
                return await self._exchange(digest, pending, query)
        return await self._await_outcome(digest, user)

    async def _exchange(
        self, digest: str, pending: dict[str, Any], query: dict[str, str]
    ) -> _Outcome:
        subject, next_url = pending["subject"], pending["next_url"]
        try:
            await self._complete(subject, pending["request"], query)
            outcome = _Outcome(subject, next_url)
        except Exception as exc:  # every failure becomes the outcome a reload sees too
            if not isinstance(exc, AuthorizationFlowError):
                logger.warning("%s for %s failed: %s", self.step, self.provider, type(exc).__name__)
            outcome = _failed(subject, next_url, exc, self.step)
        await self._store.put_pending(
            self._key("out", digest), outcome.to_bytes(), ttl=self._outcome_ttl
        )
        await self._store.take_pending(self._key("req", digest))  # after the outcome: see below
        return outcome

    async def _await_outcome(self, digest: str, user: str) -> _Outcome:
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + self._wait_timeout, 0.02
        while True:
            raw = await self._store.get_pending(self._key("out", digest))
            if raw is None and await self._store.get_pending(self._key("req", digest)) is None:
                # No exchange in flight: it finished just now (its outcome is written before
                # its request is deleted), or the state is forged, expired or another's.
                raw = await self._store.get_pending(self._key("out", digest))
                if raw is None:
                    raise StateMismatchError("callback state is unknown or expired")
            if raw is not None:
                outcome = _Outcome.from_bytes(raw)
                if outcome.subject != user:
                    raise StateMismatchError("callback state was issued to another user")
                return outcome
            if loop.time() >= deadline:
                raise AuthorizationFlowError("timed out waiting for this callback's code exchange")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)


async def _redirect_next(request: web.Request, connected: Connected) -> web.StreamResponse:
    raise web.HTTPFound(connected.next_url, headers=_NO_STORE)


async def _answer_400(request: web.Request, error: AuthorizationFlowError) -> web.StreamResponse:
    text = f"Could not connect your account: {error}"
    return web.Response(status=400, text=text, headers=_NO_STORE)


#: Provider statuses the app's client can act on keep their status; anything else means the
#: provider (or our credentials at it) failed: a bad gateway. A rate limit is ours for now.
_PASSED_ON: Final = frozenset({404, 409, 422, 423})


def problem(exc: ApiError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A provider's error as an RFC 9457 problem for the app's client: its status, body and
    headers. The body names the provider's status, code and request id (for support), never
    the provider's message."""
    headers: dict[str, str] = {}
    if exc.status == 429:
        status, title = 503, "the bank's provider asks us to slow down"
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif exc.status in _PASSED_ON:
        status, title = exc.status, f"the bank's provider answered {exc.status}"
    else:
        status, title = 502, "the bank's provider failed"
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "provider_status": exc.status,
        "code": exc.code,
        "request_id": exc.request_id,
    }
    return status, body, headers


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp.web: answer a provider's error (:class:`ApiError`) as problem+json."""
    try:
        return await handler(request)
    except ApiError as exc:
        status, body, headers = problem(exc)
        return web.json_response(
            body,
            status=status,
            headers={**_NO_STORE, **headers},
            content_type="application/problem+json",
        )


class WebConnect:
    """The aiohttp.web handlers of one :class:`ConnectFlow`; :meth:`setup` adds their routes.

    Args:
        flow: The provider's flow (manager, store, TTLs, ``success_url``).
        user_id: The app's user id for a request (sync or async); raise an ``aiohttp.web``
            HTTP exception there for anonymous users.
        path: The connect route (default ``/connect/{provider name}``); the callback route
            is ``{path}/callback``.
        redirect_uri: The absolute callback URL registered at the provider; by default the
            callback route on the request's origin (set it behind a proxy that rewrites it).
        on_connected: Answers a connection (default: redirect to ``next_url``).
        on_error: Answers a failure (default: 400 with a one-line reason).
    """

    def __init__(
        self,
        flow: ConnectFlow,
        *,
        user_id: UserId,
        path: str | None = None,
        redirect_uri: str | None = None,
        on_connected: OnConnected | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self.flow = flow
        self.path = (path or f"/connect/{flow.provider}").rstrip("/")
        self.callback_path = f"{self.path}/callback"
        self._user_id = user_id
        self._redirect_uri = redirect_uri
        self._on_connected = on_connected or _redirect_next
        self._on_error = on_error or _answer_400

    def __repr__(self) -> str:
        return f"WebConnect(provider={self.flow.provider!r}, path={self.path!r})"

    def setup(self, app: web.Application) -> WebConnect:
        """Add ``GET {path}`` and ``GET {path}/callback`` to ``app`` (before it starts).

        Also waits for callbacks in flight when the app cleans up. The flow's manager must
        be open while the app runs (``app.cleanup_ctx`` is the place).
        """
        name = self.flow.provider
        app.router.add_get(self.path, self.connect, name=f"aiofinaccess-connect-{name}")
        app.router.add_get(self.callback_path, self.callback, name=f"aiofinaccess-cb-{name}")

        async def close(_app: web.Application) -> None:
            await self.flow.aclose()

        app.on_cleanup.append(close)
        return self

    async def connect(self, request: web.Request) -> web.StreamResponse:
        """``GET``: start the flow for this user and redirect to the provider."""
        user = await self._user(request)
        uri = self._redirect_uri or str(request.url.origin().join(URL(self.callback_path)))
        try:
            location = await self.flow.begin(user, uri, next_url=request.query.get("next"))
        except AuthorizationFlowError as exc:  # a web form flow that cannot start for this user
            return await self._on_error(request, exc)
        raise web.HTTPFound(location, headers=_NO_STORE)

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """``GET``: finish the flow once; hand the connection or the typed error to the app."""
        user = await self._user(request)
        try:
            connected = await self.flow.finish(user, request.query)
        except AuthorizationFlowError as exc:
            return await self._on_error(request, exc)
        return await self._on_connected(request, connected)

    def same_origin(self, request: web.Request) -> bool:
        """True when ``request`` comes from a page of this app; guard the app's own
        state-changing routes (a disconnect form) with it and answer 403 otherwise.

        The app's origin is ``redirect_uri``'s when set, else the request's URL (see
        :mod:`~aiofinaccess.integrations.same_origin`).
        """
        own = self._redirect_uri or str(request.url.origin())
        headers = request.headers
        return is_same_origin(
            own,
            origin=headers.get("Origin"),
            referer=headers.get("Referer"),
            sec_fetch_site=headers.get("Sec-Fetch-Site"),
        )

    async def _user(self, request: web.Request) -> str:
        value = self._user_id(request)
        return await value if inspect.isawaitable(value) else value
