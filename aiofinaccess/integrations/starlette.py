"""Starlette and FastAPI: connect routes, the manager in the lifespan, request dependencies.

Needs the ``starlette`` extra (FastAPI brings Starlette along).

>>> connect = StarletteConnect(make_manager, user_id=current_user)  # doctest: +SKIP
>>> app = FastAPI(lifespan=connect.lifespan, exception_handlers=connect.exception_handlers)
>>> app.mount("/connect", connect.routes())  # doctest: +SKIP
>>> @app.get("/accounts")  # doctest: +SKIP
... async def accounts(bank: Connection = Depends(connect.connection("everifin"))): ...

:meth:`StarletteConnect.routes` serves ``GET /{provider}``, ``GET /{provider}/callback`` (the
code exchanged, or finAPI's Web Form outcome read, exactly once) and ``POST
/{provider}/disconnect`` (403 unless from the app's own origin). A provider with an
``authorization_url`` connects through the authorization-code flow
(:class:`~aiofinaccess.integrations.web.ConnectFlow`), finAPI through its Web Form
(:class:`~aiofinaccess.integrations.webform_flow.WebFormFlow`: the finAPI user is created on
first connect). :meth:`StarletteConnect.connection` gives the current user's
:class:`Connection`, and a user who must connect again is redirected by
:attr:`StarletteConnect.exception_handlers`, to a provider that has a connect route only.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import attrs
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from ..api.everifin.bankconnect import BankConnect
from ..api.pipeline import ApiClient
from ..core.errors import (
    AiofinaccessError,
    ApiError,
    AuthorizationFlowError,
    ReauthorizationRequired,
    StoreError,
    UsageError,
)
from ..session.manager import SessionManager
from .same_origin import is_same_origin
from .web import Connected, ConnectFlow, _local_path, problem
from .webform_flow import WebFormFlow

if TYPE_CHECKING:
    from .httpx import HttpxAuth
    from .paygate_webhooks import PaygateWebhooks

__all__ = ["Connection", "StarletteConnect", "UserId", "paygate_route"]

logger = logging.getLogger("aiofinaccess")

#: The app's user id for a request (plain or async); ``None`` for an anonymous visitor.
UserId = Callable[[Request], "str | Awaitable[str | None] | None"]
OnConnected = Callable[[Request, Connected], Awaitable[Response]]
OnError = Callable[[Request, AuthorizationFlowError], Awaitable[Response]]

_NO_STORE: Final = {"Cache-Control": "no-store"}


@attrs.frozen(slots=True)
class Connection:
    """One user's connection to one provider, as a request handler uses it.

    Attributes:
        manager: The app's session manager.
        provider: The provider's name.
        subject: The app's user id the tokens are stored under.
    """

    manager: SessionManager
    provider: str
    subject: str = attrs.field(repr=False)

    async def access_token(self) -> str:
        """A usable access token (renewed if needed)."""
        return await self.manager.access_token(self.provider, self.subject)

    async def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` for a request to the provider's API."""
        return {"Authorization": f"Bearer {await self.access_token()}"}

    def httpx_auth(self, *, trusted_origins: tuple[str, ...] = ()) -> HttpxAuth:
        """An ``httpx.Auth`` for this token set (needs the ``httpx`` extra)."""
        from .httpx import HttpxAuth  # noqa: PLC0415  (httpx is optional)

        return HttpxAuth(self.manager, self.provider, self.subject, trusted_origins=trusted_origins)

    @property
    def bank(self) -> BankConnect:
        """Everifin BankConnect on this manager; pass :attr:`subject` as the user."""
        return BankConnect(self.manager, self.provider)

    @property
    def api(self) -> ApiClient:
        """An :class:`ApiClient` for the provider's API (its calls take the user too)."""
        return ApiClient(self.manager, self.provider)


async def _problem(_request: Request, exc: Exception) -> Response:
    """An :class:`ApiError` as problem+json (:func:`~aiofinaccess.integrations.web.problem`)."""
    assert isinstance(exc, ApiError)  # noqa: S101  (registered for ApiError only)
    status, body, headers = problem(exc)
    return JSONResponse(
        body, status, {**_NO_STORE, **headers}, media_type="application/problem+json"
    )


async def _redirect_next(request: Request, connected: Connected) -> Response:
    return RedirectResponse(connected.next_url, status_code=302, headers=_NO_STORE)


async def _answer_400(request: Request, error: AuthorizationFlowError) -> Response:
    text = f"Could not connect your account: {error}"
    return PlainTextResponse(text, status_code=400, headers=_NO_STORE)


class StarletteConnect:
    """Connect routes, lifespan and dependencies for the providers of one session manager.

    Args:
        make_manager: Builds the (not yet opened) manager with its providers registered;
            called in the lifespan, so each server process gets its own.
        user_id: The app's user id for a request (plain or async), ``None`` if anonymous
            (then the routes and dependencies answer 401).
        success_url: Where a connection ends when the request named no local ``?next=``.
        connect_path: Where :meth:`routes` is mounted: the connect route a user who must
            reconnect is sent to is ``{connect_path}/{provider}``.
        redirect_base: The app's public origin (``https://app.example``) for the callback
            URL registered at the provider, and the only origin whose pages may post to
            disconnect; by default the request's own (set it behind a proxy that rewrites the
            host or the scheme).
        on_connected: Answers a connection (default: redirect to its ``next_url``).
        on_error: Answers a failed callback (default: 400 with a one-line reason).
        flow_options: More :class:`~aiofinaccess.integrations.web.ConnectFlow` arguments
            (``scopes``, ``extra_params``, TTLs), for every provider with an authorization
            URL.
        webform_options: More :class:`~aiofinaccess.integrations.webform_flow.WebFormFlow`
            arguments (``details``, TTLs), for finAPI.
    """

    def __init__(
        self,
        make_manager: Callable[[], SessionManager],
        *,
        user_id: UserId,
        success_url: str = "/",
        connect_path: str = "/connect",
        redirect_base: str | None = None,
        on_connected: OnConnected | None = None,
        on_error: OnError | None = None,
        flow_options: Mapping[str, Any] | None = None,
        webform_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._make_manager = make_manager
        self._user_id = user_id
        self._success_url = success_url
        self.connect_path = connect_path.rstrip("/")
        self._redirect_base = None if redirect_base is None else redirect_base.rstrip("/")
        self._on_connected = on_connected or _redirect_next
        self._on_error = on_error or _answer_400
        self._flow_options = dict(flow_options or {})
        self._webform_options = dict(webform_options or {})
        self._manager: SessionManager | None = None
        self._flows: dict[str, ConnectFlow] = {}
        #: For ``Starlette(exception_handlers=...)`` / ``FastAPI(exception_handlers=...)``.
        self.exception_handlers: dict[Any, Callable[..., Any]] = {
            ReauthorizationRequired: self._reconnect,
            ApiError: _problem,
        }

    def __repr__(self) -> str:
        return f"StarletteConnect(open={self._manager is not None}, path={self.connect_path!r})"

    # -- lifetime ------------------------------------------------------------------------------

    @property
    def manager(self) -> SessionManager:
        """The open manager (only while the app runs)."""
        if self._manager is None:
            raise UsageError("the manager is not open: pass StarletteConnect.lifespan to the app")
        return self._manager

    @asynccontextmanager
    async def open(self) -> AsyncIterator[SessionManager]:
        """Open the manager and wait until its stored sets are restored; close it after.

        Raises:
            StoreError: The store cannot be read (the app does not start).
        """
        async with self._make_manager() as manager:
            await manager.ready()
            self._manager = manager
            try:
                yield manager
            finally:
                self._manager = None
                for flow in self._flows.values():
                    await flow.aclose()  # let callbacks in flight store their tokens
                self._flows.clear()

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[dict[str, Any]]:
        """A Starlette/FastAPI ``lifespan``; ``request.state.manager`` is the manager."""
        async with self.open() as manager:
            yield {"manager": manager}

    async def readiness(self, request: Request) -> Response:
        """A readiness probe endpoint: 200 once restored, 503 with the store's error."""
        try:
            await self.manager.ready()
        except (StoreError, UsageError) as exc:
            return PlainTextResponse(f"not ready: {exc}", status_code=503, headers=_NO_STORE)
        return PlainTextResponse("ready", headers=_NO_STORE)

    # -- routes --------------------------------------------------------------------------------

    def routes(self) -> Router:
        """The connect, callback and disconnect routes, to mount at ``connect_path``."""
        return Router(
            routes=[
                Route("/{provider}", self._connect, name="aiofinaccess-connect"),
                Route("/{provider}/callback", self._callback, name="aiofinaccess-callback"),
                Route("/{provider}/disconnect", self._disconnect, methods=["POST"]),
            ]
        )

    def connect_url(self, provider: str, next_url: str | None = None) -> str:
        """The local path that starts connecting ``provider`` (then returns to ``next_url``)."""
        path = f"{self.connect_path}/{provider}"
        return path if next_url is None else f"{path}?next={next_url}"

    def has_connect_route(self, provider: str) -> bool:
        """Whether :meth:`routes` can connect a user to ``provider``: it is registered and
        has an authorization URL or (finAPI) a Web Form host."""
        try:
            found = self.manager.provider(provider)
        except UsageError:
            return False
        return found.authorization_url is not None or found.web_form_url is not None

    def _flow(self, provider: str) -> ConnectFlow:
        flow = self._flows.get(provider)
        if flow is None:
            if not self.has_connect_route(provider):
                raise HTTPException(404, f"no connect route for {provider!r}")
            success = self._success_url
            if self.manager.provider(provider).authorization_url is not None:
                flow = ConnectFlow(
                    self.manager, provider, success_url=success, **self._flow_options
                )
            else:
                options = self._webform_options
                flow = WebFormFlow(self.manager, provider, success_url=success, **options)
            self._flows[provider] = flow
        return flow

    async def _connect(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        flow, user = self._flow(provider), await self.current_user(request)
        callback = f"{self.connect_path}/{provider}/callback"
        base = self._redirect_base or f"{request.url.scheme}://{request.url.netloc}"
        next_url = request.query_params.get("next")
        try:
            location = await flow.begin(user, base + callback, next_url=next_url)
        except AuthorizationFlowError as exc:  # finAPI: no finAPI user can be made for them
            return await self._on_error(request, exc)
        return RedirectResponse(location, status_code=302, headers=_NO_STORE)

    async def _callback(self, request: Request) -> Response:
        flow, user = self._flow(request.path_params["provider"]), await self.current_user(request)
        try:
            connected = await flow.finish(user, request.query_params)
        except AuthorizationFlowError as exc:
            return await self._on_error(request, exc)
        return await self._on_connected(request, connected)

    async def _disconnect(self, request: Request) -> Response:
        # A form on any site can post here with the user's cookies: only our own pages may.
        own = self._redirect_base or f"{request.url.scheme}://{request.url.netloc}"
        headers = request.headers
        if not is_same_origin(
            own,
            origin=headers.get("origin"),
            referer=headers.get("referer"),
            sec_fetch_site=headers.get("sec-fetch-site"),
        ):
            return PlainTextResponse("cross-origin request refused", 403, headers=_NO_STORE)
        provider = request.path_params["provider"]
        flow, user = self._flow(provider), await self.current_user(request)
        try:
            await self.manager.revoke(provider, user)  # and deletes the tokens
        except AiofinaccessError as exc:  # the provider is down: at least forget them here
            logger.warning("revocation failed (%s); forgetting the tokens", type(exc).__name__)
            await self.manager.forget(provider, user, revoked=True)
        next_url = _local_path(request.query_params.get("next"), flow.success_url)
        return RedirectResponse(next_url, status_code=303, headers=_NO_STORE)

    async def _reconnect(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ReauthorizationRequired)  # noqa: S101  (registered for it only)
        provider = exc.provider
        if provider is None:
            raise exc
        if exc.subject is None or not self.has_connect_route(provider):
            # No user can fix this by connecting: say so, rather than redirect to a dead end.
            logger.warning("%s has no connect route for this: %r", provider, exc)
            text = (
                f"The bank provider {provider} cannot be reached right now"
                if exc.subject is None
                else f"Your {provider} connection must be renewed, but this app has no "
                f"connect route for {provider}"
            )
            return PlainTextResponse(text, status_code=503, headers=_NO_STORE)
        location = self.connect_url(provider, request.url.path)
        return RedirectResponse(location, status_code=303, headers=_NO_STORE)

    # -- dependencies --------------------------------------------------------------------------

    async def current_user(self, request: Request) -> str:
        """The app's user id for ``request`` (a dependency); 401 when anonymous."""
        value = self._user_id(request)
        user = await value if inspect.isawaitable(value) else value
        if not user:
            raise HTTPException(401, "sign in first")
        return user

    def connection(self, provider: str) -> Callable[[Request], Awaitable[Connection]]:
        """A dependency: the current user's :class:`Connection` to ``provider``.

        It checks that the user has tokens (renewing them if needed), so a handler that gets
        one can call the API; otherwise :class:`ReauthorizationRequired` propagates (see
        :attr:`exception_handlers`).
        """

        async def dependency(request: Request) -> Connection:
            found = Connection(self.manager, provider, await self.current_user(request))
            await found.access_token()
            return found

        return dependency

    def bearer(self, provider: str) -> Callable[[Request], Awaitable[dict[str, str]]]:
        """A dependency: ``{"Authorization": "Bearer ..."}`` for the current user."""
        connection = self.connection(provider)

        async def dependency(request: Request) -> dict[str, str]:
            return await (await connection(request)).headers()

        return dependency


def paygate_route(webhooks: PaygateWebhooks, path: str) -> Route:
    """A ``POST`` route receiving Everifin Paygate's webhooks (body read up to the bound)."""

    async def endpoint(request: Request) -> Response:
        length = request.headers.get("content-length", "0")
        too_long = length.isdigit() and int(length) > webhooks.max_body
        body = None if too_long else await webhooks.bounded(request.stream())
        receipt = await webhooks.answer(body, request.headers)
        return JSONResponse({"result": receipt.result}, status_code=receipt.status)

    return Route(path, endpoint, methods=["POST"])
