"""finAPI's callbacks received (aiohttp.web): the sandbox delivers each one with a lost answer
(so it is sent again) and two duplicates, and each still has one effect on the connection
registry; forged bodies change nothing the API does not confirm; oversized and malformed
bodies get typed answers."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import attrs
import pytest
from aiohttp import web

from aiofinaccess import SessionManager
from aiofinaccess.connections import (
    ConnectionEvent,
    ConnectionState,
    Observation,
    ReconnectRequired,
)
from aiofinaccess.finapi import (
    BackgroundUpdate,
    BankConnectionImport,
    ConnectionUpdates,
    NotificationRules,
    TriggerEvent,
    WebFormRequired,
    WebForms,
)
from aiofinaccess.integrations.finapi_callback_bodies import (
    CallbackKind,
    CallbackTooLarge,
    MalformedCallback,
    RuleNotification,
    parse_callback,
)
from aiofinaccess.integrations.finapi_callbacks import FinApiCallbacks, WebCallbacks
from aiofinaccess.integrations.webform_flow import _password_key
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.sandbox.state import CallbackFaults
from tests.support.finapi_journey import import_connection, press

USER = "callback-user"
FAST = {"poll_interval": 0.01, "timeout": 10.0}
#: Each callback: its first answer lost (sent again), then two duplicates: four deliveries.
FAULTS = CallbackFaults(attempts=3, lost_answers=1, duplicates=2)


@attrs.define
class App:
    """The app: its callback routes on loopback, what reached them, what the registry told."""

    url: str
    receiver: FinApiCallbacks
    deliveries: Counter[str]
    events: list[ConnectionEvent]

    async def post(self, kind: str, body: bytes, query: str = "") -> tuple[int, dict[str, object]]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/{kind}{query}", data=body) as response,
        ):
            return response.status, await response.json()

    async def settle(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not check():  # noqa: ASYNC110  (the sandbox posts beside the test)
                await asyncio.sleep(0.01)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(callbacks=FAULTS)


@pytest.fixture
async def app(sandbox: Sandbox, sandbox_manager: SessionManager) -> AsyncIterator[App]:
    deliveries: Counter[str] = Counter()
    events: list[ConnectionEvent] = []

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        deliveries[request.path.rsplit("/", 1)[1]] += 1
        return await handler(request)

    server = web.Application(middlewares=[count])
    runner = web.AppRunner(server, access_log=None)
    receiver = FinApiCallbacks(sandbox_manager, base_url="http://127.0.0.1:1/hooks")
    WebCallbacks(receiver, path="/hooks").setup(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    receiver.base_url = url
    sandbox.config.finapi_notification_url = f"{url}/notification"
    sandbox.config.finapi_user_sync_url = f"{url}/user-sync"
    sandbox_manager.connections.subscribe(events.append)
    try:
        yield App(url, receiver, deliveries, events)
    finally:
        await runner.cleanup()


async def bank_connections(manager: SessionManager) -> list[tuple[str, str, ConnectionState]]:
    """The registry's bank connections (the login, connection ``""``, left out)."""
    rows = await manager.connections.list()
    return [(r.subject, r.connection, r.state) for r in rows if r.connection]


def kinds(events: list[ConnectionEvent]) -> list[str]:
    return [type(event).__name__ for event in events]


async def test_a_task_needing_the_user_and_its_end_each_give_one_event(
    sandbox: Sandbox, sandbox_manager: SessionManager, app: App
) -> None:
    """``webFormRequired`` (4 deliveries) -> one ReconnectRequired carrying the form's link;
    ``finalised`` (4 deliveries) -> one ConnectionRepaired; a replay of the first -> nothing."""
    connection_id = await import_connection(sandbox_manager, USER)
    sandbox.service("tasks").steer(connection_id, user_action_required=True)
    update = BackgroundUpdate(connection_id, callbacks=app.receiver.task_callbacks(USER))
    outcome = await ConnectionUpdates(sandbox_manager).update(USER, update, **FAST)
    assert isinstance(outcome, WebFormRequired)
    await app.settle(lambda: app.deliveries["task"] == 4)
    assert kinds(app.events) == ["ReconnectRequired"]
    reconnect = app.events[0]
    assert isinstance(reconnect, ReconnectRequired)
    assert reconnect.state is ConnectionState.ACTION_REQUIRED
    assert reconnect.detail == outcome.url
    assert reconnect.connection == str(connection_id)
    await press(outcome)
    await app.settle(lambda: app.deliveries["task"] == 8)
    assert kinds(app.events) == ["ReconnectRequired", "ConnectionRepaired"]
    assert outcome.task is not None
    replay = json.dumps({"taskId": outcome.task.id, "status": "WEB_FORM_REQUIRED"}).encode()
    status, answer = await app.post("task", replay, f"?user={USER}")
    assert (status, answer["confirmed"]) == (200, True)
    assert answer == {"confirmed": True}  # and it says nothing more to whoever replays it
    assert kinds(app.events) == ["ReconnectRequired", "ConnectionRepaired"]
    row = await sandbox_manager.connections.get("finapi", USER, str(connection_id))
    assert row is not None
    assert row.state is ConnectionState.ACTIVE
    assert row.episode == 1


async def test_a_web_form_callback_records_the_imported_connection_once(
    sandbox: Sandbox, sandbox_manager: SessionManager, app: App
) -> None:
    await import_connection(sandbox_manager, USER)  # the user and their tokens
    forms = WebForms(sandbox_manager)
    details = BankConnectionImport(callbacks=app.receiver.web_form_callbacks(USER))
    form = await forms.import_bank_connection(USER, details)
    await press(form)
    await app.settle(lambda: app.deliveries["web-form"] == 4)
    connection_id = (await forms.get(USER, form.id)).payload.bank_connection_id
    assert await bank_connections(sandbox_manager) == [
        (USER, str(connection_id), ConnectionState.ACTIVE)
    ]
    assert app.events == []
    other = json.dumps({"webFormId": form.id, "status": "COMPLETED"}).encode()
    status, answer = await app.post("web-form", other, "?user=someone-else")
    assert (status, answer["confirmed"]) == (200, False)  # not their form: nothing read


async def test_notifications_are_confirmed_by_the_api_and_forgeries_change_nothing(
    sandbox: Sandbox, sandbox_manager: SessionManager, app: App
) -> None:
    connection_id = await import_connection(sandbox_manager, USER)
    rules = NotificationRules(sandbox_manager)
    handle = app.receiver.rule_handle(USER)
    rule = await rules.create(USER, TriggerEvent.BANK_LOGIN_ERROR, callback_handle=handle)
    service = sandbox.service("rules")
    # finAPI (or a forger replaying its body) claims a login error the API does not show.
    assert await service.fire(USER, "BANK_LOGIN_ERROR", bankConnectionId=connection_id) == 1
    assert app.deliveries["notification"] == 4
    assert app.events == []
    assert await bank_connections(sandbox_manager) == [
        (USER, str(connection_id), ConnectionState.ACTIVE)
    ]
    forgeries = [
        RuleNotification(rule.id, "BANK_LOGIN_ERROR", app.receiver.rule_handle(USER)),
        RuleNotification(rule.id, "NEW_TRANSACTIONS", handle),
        RuleNotification(rule.id + 1, "BANK_LOGIN_ERROR", handle),
        RuleNotification(rule.id, "BANK_LOGIN_ERROR", f"someone-else:{handle}"),
    ]
    sandbox.service("tasks").steer(connection_id, user_action_required=True)  # now it is true
    for forged in forgeries:
        body = {
            "notificationRuleId": forged.rule_id,
            "triggerEvent": forged.trigger_event,
            "callbackHandle": forged.callback_handle,
        }
        status, answer = await app.post("notification", json.dumps(body).encode())
        assert (status, answer["confirmed"]) == (200, False), forged
    assert app.events == []  # nothing read, nothing changed
    async with (  # the sandbox's batch update, over its control route this time
        aiohttp.ClientSession() as http,
        http.post(
            sandbox.base_url + "/_sandbox/finapi/notify",
            json={"userId": USER, "triggerEvent": "BANK_LOGIN_ERROR"},
        ) as response,
    ):
        assert (await response.json())["sent"] == 1
    assert app.deliveries["notification"] == 4 + len(forgeries) + 4
    assert kinds(app.events) == ["ReconnectRequired"]  # four deliveries, one event


async def test_a_deleted_user_is_forgotten_once_and_a_forged_deletion_is_not(
    sandbox: Sandbox, sandbox_manager: SessionManager, app: App
) -> None:
    connection_id = await import_connection(sandbox_manager, USER)
    registry = sandbox_manager.connections
    await registry.observe("finapi", USER, str(connection_id), Observation())  # known to it
    store = sandbox_manager.store
    password = _password_key("finapi", USER)  # as WebFormFlow keeps it
    await store.put_pending(password, b'{"password": "kept-password"}', ttl=600)
    for user, event in ((USER, "DELETED"), (USER, "RENAMED"), ("no such user!", "DELETED")):
        forged = json.dumps({"userId": user, "event": event}).encode()
        status, answer = await app.post("user-sync", forged)
        assert (status, answer) == (200, {"received": True})  # the same for a real deletion
    key = sandbox_manager.key("finapi", USER)
    assert await store.get(key) is not None
    assert await store.get_pending(password) is not None
    token = await sandbox_manager.access_token("finapi", USER)
    async with (  # deleted behind the manager's back: only the callback tells it
        aiohttp.ClientSession() as http,
        http.delete(
            sandbox.base_url + "/api/v2/users", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 200
    await app.settle(lambda: sandbox.state.counters["user_sync.sent"] == 1)
    assert app.deliveries["user-sync"] == 7  # the forgeries, then four
    assert await store.get(key) is None
    assert await store.get_pending(password) is None
    # One event per connection of the user (the login's, "", among them), four deliveries.
    assert sorted(
        (type(e).__name__, e.connection, getattr(e, "state", None)) for e in app.events
    ) == [
        ("ReconnectRequired", "", ConnectionState.REVOKED),
        ("ReconnectRequired", str(connection_id), ConnectionState.REVOKED),
    ]


@pytest.mark.parametrize(
    ("kind", "body", "query", "status"),
    [
        ("task", b"x" * 20_000, "?user=u", 413),
        ("task", b"not json", "?user=u", 400),
        ("task", b"[]", "?user=u", 400),
        ("task", b'{"taskId": 7, "status": "COMPLETED"}', "?user=u", 400),
        ("task", b'{"taskId": "t", "status": "COMPLETED"}', "", 400),
        ("web-form", b'{"webFormId": "f"}', "?user=u", 400),
        ("notification", b'{"notificationRuleId": true}', "", 400),
        ("user-sync", b"[" * 10_000, "", 400),
    ],
)
async def test_oversized_and_malformed_bodies_get_typed_answers(
    app: App, kind: str, body: bytes, query: str, status: int
) -> None:
    answer_status, answer = await app.post(kind, body, query)
    assert answer_status == status
    assert isinstance(answer["error"], str)
    assert app.events == []


def test_parse_callback_is_typed() -> None:
    assert parse_callback(
        CallbackKind.NOTIFICATION,
        b'{"notificationRuleId": 3, "triggerEvent": "NEW_TRANSACTIONS", "callbackHandle": "h",'
        b' "newTransactions": 5}',
    ) == RuleNotification(3, "NEW_TRANSACTIONS", "h")
    with pytest.raises(CallbackTooLarge):
        parse_callback(CallbackKind.TASK, b"{}", limit=1)
    for body in (b"", b"{", b'{"userId": "", "event": "DELETED"}', b"[[[" * 5000):
        with pytest.raises(MalformedCallback):
            parse_callback(CallbackKind.USER_SYNC, body)
