"""finAPI's callbacks, received: Web Form, background task, notification rule, user deletion.

>>> callbacks = FinApiCallbacks(manager, base_url=PUBLIC_URL)  # doctest: +SKIP
>>> WebCallbacks(callbacks, path="/finapi/callbacks").setup(app)  # doctest: +SKIP
>>> update = BackgroundUpdate(7, callbacks=callbacks.task_callbacks("alice"))  # doctest: +SKIP

That serves ``POST {path}/web-form``, ``/task``, ``/notification`` and ``/user-sync``
(Starlette and FastAPI: ``app.mount(path, AsgiCallbacks(...))``). finAPI signs
none of them, so **a body is a claim, never a fact**: each callback is parsed into a typed
value (:func:`parse_callback`; over ``max_body`` bytes is :class:`CallbackTooLarge`, 413;
anything else unreadable :class:`MalformedCallback`, 400), then confirmed by reading back
through the API with the user's token, and only what the API says reaches the connection
registry (``manager.connections``):

* ``web-form`` (``WebFormCallbacks.finalised``) and ``task`` (``TaskCallbacks``, both URLs):
  the form or task is read back; its bank connection is read and observed. A task that needs
  the user (``WEB_FORM_REQUIRED``) makes the connection ``ACTION_REQUIRED`` with the form's
  link as the ``ReconnectRequired`` event's ``detail``. The URLs carry the user
  (``?user=``): a form or task that is not that user's is not confirmed.
* ``notification`` (the client's ``userNotificationCallbackUrl``): the ``callbackHandle``
  must be one :meth:`FinApiCallbacks.rule_handle` made (it names the user), and the rule it
  names must exist with that handle and trigger; then the user's bank connections are read
  and observed, whatever the body claims about them.
* ``user-sync`` (``userSynchronizationCallbackUrl``, ``{"userId", "event": "DELETED"}``):
  confirmed when finAPI no longer knows the user; then their connections are recorded
  ``REVOKED`` and their tokens forgotten (``manager.forget``), with the password a Web Form
  flow kept. finAPI sends it once (it reads no answer): a 503 is not followed by a retry.

Every effect is idempotent, so retries, duplicates and replays give one: the registry writes
a record only when it changes and claims each notice once per fleet, forgetting absent tokens
changes nothing, and a replay re-reads the API, so it cannot bring back an older state. An
unconfirmed callback changes nothing and is answered 200 (``confirmed: false``); a
confirmation that failed for now (finAPI down, the store failing) is
:class:`CallbackUnavailable`, 503, for finAPI to send again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote

import attrs
from aiohttp import web
from yarl import URL

from ..api.finapi.consent import connection_state
from ..api.finapi.data import FinApiData
from ..api.finapi.notification_rules import NotificationRules
from ..api.finapi.task_models import TaskCallbacks, WebFormRequired, outcome_of
from ..api.finapi.tasks import ConnectionUpdates
from ..api.finapi.users import Users
from ..api.finapi.webform import WebFormCallbacks, WebForms
from ..core.connections import ConnectionState, Observation
from ..core.errors import (
    ApiError,
    CallbackRejected,
    CallbackUnavailable,
    ConfigurationError,
    MalformedCallback,
    NotFoundError,
    ReauthorizationRequired,
    StoreError,
    TransportError,
    UnexpectedResponseError,
    ValidationError,
)
from ..session.connection_events import ConnectionInfo
from ..stores.protocol import ConnectionRecords, PendingAuthorizations
from .finapi_callback_bodies import (
    MAX_BODY,
    Callback,
    CallbackKind,
    CallbackResult,
    RuleNotification,
    TaskCallback,
    UserSynchronization,
    WebFormCallback,
    parse_callback,
    read_bounded,
)
from .webform_flow import _password_key

if TYPE_CHECKING:
    from ..session.manager import SessionManager

__all__ = ["AsgiCallbacks", "FinApiCallbacks", "WebCallbacks"]

_HANDLE_PREFIX: Final = "aiofinaccess:"


class FinApiCallbacks:
    """Receives finAPI's callbacks for one finAPI provider (see the module docstring).

    Args:
        manager: Holds the users' tokens and the connection registry.
        provider: The registered finAPI provider.
        base_url: Where the routes are served, as finAPI reaches them
            (``https://app.example/finapi/callbacks``).
        max_body: Bytes a body may have.
        timeout: Seconds per confirming request.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "finapi",
        *,
        base_url: str,
        max_body: int = MAX_BODY,
        timeout: float = 30.0,
    ) -> None:
        self.provider, self.max_body = provider, max_body
        self.base_url = _base_url(base_url)
        if not isinstance(manager.store, ConnectionRecords):  # else: a 500 at every callback
            raise ConfigurationError(
                f"{type(manager.store).__name__} keeps no connection records, where finAPI's "
                "callbacks are recorded: use a shipped store"
            )
        self.manager = manager
        self._data = FinApiData(manager, provider, timeout=timeout)
        self._forms = WebForms(manager, provider, timeout=timeout)
        self._updates = ConnectionUpdates(manager, provider, timeout=timeout)
        self._rules = NotificationRules(manager, provider, timeout=timeout)
        self._users = Users(manager, provider, timeout=timeout)
        # One callback per user at a time in this process: a duplicate waits, then re-reads.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __repr__(self) -> str:
        return f"FinApiCallbacks(provider={self.provider!r}, base_url={self.base_url!r})"

    # -- where finAPI sends them ---------------------------------------------------------------

    def url(self, kind: CallbackKind, user: str | None = None) -> str:
        """The URL of ``kind``'s route (with the user for ``web-form`` and ``task``)."""
        url = f"{self.base_url}/{kind}"
        return url if user is None else f"{url}?user={quote(user, safe='')}"

    def web_form_callbacks(self, user: str) -> WebFormCallbacks:
        """``callbacks`` for a web form of ``user``."""
        return WebFormCallbacks(self.url(CallbackKind.WEB_FORM, user))

    def task_callbacks(self, user: str) -> TaskCallbacks:
        """``callbacks`` for a background update of ``user`` (both to the task route)."""
        url = self.url(CallbackKind.TASK, user)
        return TaskCallbacks(finalised=url, web_form_required=url)

    def rule_handle(self, user: str) -> str:
        """A fresh ``callback_handle`` for a rule of ``user``: it names the user and is not
        guessable, and the rule read back must carry it."""
        return f"{_HANDLE_PREFIX}{user}:{secrets.token_urlsafe(12)}"

    # -- receiving -----------------------------------------------------------------------------

    async def receive(
        self, kind: CallbackKind, body: bytes, query: Mapping[str, str]
    ) -> CallbackResult:
        """Parse, confirm and apply one callback.

        Raises:
            CallbackTooLarge, MalformedCallback: The body or query cannot be taken.
            CallbackUnavailable: The confirmation failed for now.
        """
        callback = parse_callback(kind, body, limit=self.max_body)
        user = self._user(kind, callback, query)
        if user is None:
            return CallbackResult(kind, None, False, detail="not a handle of this app")
        async with self._lock(user):
            try:
                return await self._apply(kind, callback, user)
            except ReauthorizationRequired:
                return CallbackResult(kind, user, False, detail="no tokens for this user")
            except NotFoundError:
                return CallbackResult(kind, user, False, detail="not found for this user")
            except (ApiError, TransportError, UnexpectedResponseError, StoreError) as exc:
                raise CallbackUnavailable(f"{kind} callback: {type(exc).__name__}") from exc

    def _user(self, kind: CallbackKind, callback: Callback, query: Mapping[str, str]) -> str | None:
        if isinstance(callback, UserSynchronization):
            return callback.user_id
        if isinstance(callback, RuleNotification):
            handle = callback.callback_handle
            user, _, nonce = handle.removeprefix(_HANDLE_PREFIX).rpartition(":")
            return user if handle.startswith(_HANDLE_PREFIX) and user and nonce else None
        named = query.get("user")
        if not named:
            raise MalformedCallback(f"{kind} callback: the URL names no user")
        return named

    def _lock(self, user: str) -> asyncio.Lock:
        lock = self._locks.get(user)
        if lock is None:
            lock = self._locks[user] = asyncio.Lock()
        return lock

    async def _apply(self, kind: CallbackKind, callback: Callback, user: str) -> CallbackResult:
        if isinstance(callback, WebFormCallback | TaskCallback):
            return await self._update(kind, callback, user)
        if isinstance(callback, RuleNotification):
            return await self._notification(kind, callback, user)
        return await self._user_sync(kind, callback)

    async def _update(
        self, kind: CallbackKind, callback: WebFormCallback | TaskCallback, user: str
    ) -> CallbackResult:
        if isinstance(callback, WebFormCallback):
            form = await self._forms.get(user, callback.web_form_id)  # 404: not theirs
            connection = form.payload.bank_connection_id
            if not form.finished or connection is None:
                return CallbackResult(kind, user, True, detail=f"web form {form.status}")
            row = await self._observe(kind, user, connection)
            return CallbackResult(kind, user, True, (row,), f"web form {form.status}")
        task = await self._updates.get(user, callback.task_id)  # 404: not theirs
        outcome = outcome_of(task)
        if outcome is None or outcome.bank_connection_id is None:
            return CallbackResult(kind, user, True, detail=f"task {task.status}")

        async def link() -> str | None:  # read again beside the connection: one moment's view
            now = outcome_of(await self._updates.get(user, callback.task_id))
            return now.url if isinstance(now, WebFormRequired) else None

        row = await self._observe(kind, user, outcome.bank_connection_id, link)
        return CallbackResult(kind, user, True, (row,), f"task {task.status}")

    async def _notification(
        self, kind: CallbackKind, callback: RuleNotification, user: str
    ) -> CallbackResult:
        rule = await self._rules.get(user, callback.rule_id)  # 404: no such rule
        claimed = (callback.callback_handle, callback.trigger_event)
        if (rule.callback_handle, rule.trigger_event) != claimed:
            return CallbackResult(kind, user, False, detail="the rule says otherwise")
        # What the notification claims is not used: the connections are read instead.
        found = await self._data.bank_connections(user)
        rows = [await self._observe(kind, user, connection.id) for connection in found]
        return CallbackResult(kind, user, True, tuple(rows), rule.trigger_event)

    async def _observe(
        self,
        kind: CallbackKind,
        user: str,
        connection_id: int,
        link: Callable[[], Awaitable[str | None]] | None = None,
    ) -> ConnectionInfo:
        """Read the connection (and ``link``, a web form the bank wants the user in) and
        record it.

        Idempotent because it re-reads the API (no processed-callback mark is kept): the
        registry writes a record only when the reading changed it and claims each notice once
        per fleet, so a duplicate or a replay records what finAPI says now, once. The registry
        takes the reading after reading the record and again if another process wrote it
        first, so of two deliveries racing in two processes the older reading is not written
        last (the per-user lock orders them within a process).
        """

        async def read() -> Observation:
            url = None if link is None else await link()
            try:
                connection = await self._data.bank_connection(user, connection_id)
            except NotFoundError as exc:  # deleted at finAPI
                _gone(kind, exc)
                return Observation(blocked=ConnectionState.REVOKED, detail="deleted")
            now = dt.datetime.fromtimestamp(self.manager.clock.wall(), dt.UTC)
            observation = connection_state(connection, now).observation()
            if url is None:
                return observation
            blocked = observation.blocked or ConnectionState.ACTION_REQUIRED
            return attrs.evolve(observation, blocked=blocked, detail=url)  # the link to the user

        registry = self.manager.connections
        return await registry.observe(self.provider, user, str(connection_id), read)

    async def _user_sync(self, kind: CallbackKind, sync: UserSynchronization) -> CallbackResult:
        user = sync.user_id
        if sync.event != "DELETED":
            return CallbackResult(kind, user, False, detail=f"event {sync.event} not handled")
        try:
            await self._users.is_verified(user)  # with the client's token
        except NotFoundError as exc:
            _gone(kind, exc)
        except ValidationError:  # no finAPI user can have this id
            return CallbackResult(kind, user, False, detail="not a finAPI user id")
        else:
            return CallbackResult(kind, user, False, detail="finAPI still knows the user")
        # Each step is idempotent. finAPI sends this once and reads no answer, so a failure
        # half-way is not sent again: the connections go first, as nothing else would ever
        # revoke them; tokens left behind die at their next refresh, which finAPI refuses.
        registry, rows = self.manager.connections, []
        gone = Observation(blocked=ConnectionState.REVOKED, detail="finAPI user deleted")
        for row in await registry.list(provider=self.provider):
            if row.subject == user:
                rows.append(await registry.observe(self.provider, user, row.connection, gone))
        await self.manager.forget(self.provider, user)
        store = self.manager.store
        if isinstance(store, PendingAuthorizations):
            await store.take_pending(_password_key(self.provider, user))
        return CallbackResult(kind, user, True, tuple(rows), "user deleted")


class WebCallbacks:
    """The aiohttp.web routes of a :class:`FinApiCallbacks`; :meth:`setup` adds them.

    Args:
        callbacks: The receiver.
        path: Where the routes live on the app (its ``base_url`` as finAPI reaches it).
    """

    def __init__(self, callbacks: FinApiCallbacks, *, path: str = "/finapi/callbacks") -> None:
        self.callbacks = callbacks
        self.path = path.rstrip("/")

    def __repr__(self) -> str:
        return f"WebCallbacks(path={self.path!r})"

    def setup(self, app: web.Application) -> WebCallbacks:
        """Add ``POST {path}/{kind}`` for each :class:`CallbackKind` to ``app`` (the first
        mount's routes are named ``aiofinaccess-finapi-{kind}``).

        Raises:
            ConfigurationError: ``app`` serves one of these routes already.
        """
        routes = {kind: f"{self.path}/{kind}" for kind in CallbackKind}
        if {resource.canonical for resource in app.router.resources()} & set(routes.values()):
            raise ConfigurationError(
                f"finAPI callbacks are already served at {self.path or '/'} on this app: "
                "mount them once per path"
            )
        named = app.router.named_resources()
        for kind, route in routes.items():
            name = f"aiofinaccess-finapi-{kind}"
            app.router.add_post(route, self.handle, name=None if name in named else name)
        return self

    async def handle(self, request: web.Request) -> web.Response:
        """``POST``: read at most ``max_body`` bytes, receive, answer JSON."""
        kind = CallbackKind(request.path.rsplit("/", 1)[1])
        try:
            body = await read_bounded(request.content.iter_any(), self.callbacks.max_body)
            result = await self.callbacks.receive(kind, body, request.query)
        except CallbackRejected as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response(result.as_json())


class AsgiCallbacks:
    """The routes of a :class:`FinApiCallbacks` as an ASGI app, for Starlette and FastAPI
    (``app.mount(path, AsgiCallbacks(...))``) or any ASGI server; no framework imported.

    Args:
        receiver: The receiver, or a function returning it when the manager opens later (with
            :class:`~aiofinaccess.integrations.starlette.StarletteConnect`:
            ``lambda: FinApiCallbacks(connect.manager, base_url=...)``, called per request;
            :meth:`cached` builds one per manager).
    """

    def __init__(self, receiver: FinApiCallbacks | Callable[[], FinApiCallbacks]) -> None:
        self._receiver = receiver

    def __repr__(self) -> str:
        return "AsgiCallbacks()"

    @staticmethod
    def cached(manager: Callable[[], SessionManager], **options: Any) -> AsgiCallbacks:
        """Receive with a :class:`FinApiCallbacks` of ``manager()`` (``options`` are its
        arguments), built once per manager."""
        built: list[FinApiCallbacks] = []

        def receiver() -> FinApiCallbacks:
            current = manager()
            if not built or built[0].manager is not current:
                built[:] = [FinApiCallbacks(current, **options)]
            return built[0]

        return AsgiCallbacks(receiver)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """``POST .../{kind}``: read at most ``max_body`` bytes, receive, answer JSON."""
        if scope["type"] != "http":
            return
        found = self._receiver
        receiver = found if isinstance(found, FinApiCallbacks) else found()
        answer: dict[str, object] = {"error": "no such callback route"}
        status = 404
        try:
            kind = CallbackKind(scope["path"].rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            kind = None
        if kind is not None and scope["method"] != "POST":
            status, answer = 405, {"error": "POST only"}
        elif kind is not None:
            try:
                body = await read_bounded(_body(receive), receiver.max_body)
                query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
                result = await receiver.receive(kind, body, query)
                status, answer = 200, result.as_json()
            except CallbackRejected as exc:
                status, answer = exc.status, {"error": str(exc)}
        content = json.dumps(answer).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(content)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _gone(kind: CallbackKind, exc: NotFoundError) -> None:
    """Let through only finAPI's own "no such entity"; a bare 404 (a mistyped API URL, a
    proxy's page) would delete a user or revoke a connection on anyone's word."""
    if exc.code != "UNKNOWN_ENTITY":
        raise CallbackUnavailable(
            f"{kind} callback: the API answered 404 without finAPI's UNKNOWN_ENTITY: check the "
            "finAPI provider's api_url"
        ) from exc


def _base_url(text: str) -> str:
    url = URL(text)
    if url.scheme not in ("http", "https") or not url.host or url.query_string or url.fragment:
        raise ConfigurationError(
            "base_url must be the routes' absolute http(s) URL as finAPI reaches them, without "
            f"query or fragment (https://app.example/finapi/callbacks), not {text!r}"
        )
    return text.rstrip("/")


async def _body(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
