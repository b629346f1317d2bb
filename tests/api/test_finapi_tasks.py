"""Background updates of finAPI bank connections, and a connection's life on the sandbox's clock.

The request bodies and the reading of a task are tested as data; everything else runs over
real HTTP against the sandbox: an update that completes, a consent that ends 180 days on and is
renewed through the form a task asks for, an interface flipped to user-action-required, a
failing update, the deprecated update form. tests/api/test_finapi_tasks_contract.py validates
the same exchanges against finAPI's spec.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from aiofinaccess import ClientCredentials, FinApi, Schedule, SessionManager
from aiofinaccess.api.finapi.task_models import read_task
from aiofinaccess.api.pipeline import EndUser
from aiofinaccess.connections import ConnectionState
from aiofinaccess.core.errors import (
    ConfigurationError,
    LockedError,
    NotFoundError,
    UnexpectedResponseError,
    ValidationError,
)
from aiofinaccess.finapi import (
    BackgroundUpdate,
    ConnectionUpdates,
    FinApiData,
    TaskCallbacks,
    TaskStatus,
    UpdateCompleted,
    UpdateFailed,
    UpdateRoutes,
    WebFormRequired,
    WebForms,
    connection_state,
    outcome_of,
)
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.finapi_journey import import_connection, press

USER = "tasks-alice"
DAY = 86400.0
FAST = {"poll_interval": 0.01, "timeout": 10.0}


class TestBodies:
    def test_task_body_is_camel_case_with_user_metadata(self) -> None:
        update = BackgroundUpdate(
            7,
            import_new_accounts=True,
            account_types=("CHECKING",),
            manage_saved_settings=("CREDENTIALS",),
            callbacks=TaskCallbacks(web_form_required="https://app.example/wf"),
            redirect_url="https://app.example/back",
        )
        end_user = EndUser(ip_address="203.0.113.5", user_agent="Firefox", device_os="Linux")
        assert update.as_body(end_user) == {
            "bankConnectionId": 7,
            "importNewAccounts": True,
            "accountTypes": ["CHECKING"],
            "manageSavedSettings": ["CREDENTIALS"],
            "callbacks": {"webFormRequired": "https://app.example/wf"},
            "redirectUrl": "https://app.example/back",
            "userMetadata": {
                "ipAddress": "203.0.113.5",
                "deviceOs": "Linux",
                "userAgent": "Firefox",
            },
        }
        assert BackgroundUpdate(7).as_body(None) == {"bankConnectionId": 7}
        with pytest.raises(ValidationError, match="device_os"):
            BackgroundUpdate(7).as_body(EndUser(ip_address="203.0.113.5", user_agent="x"))

    def test_the_update_form_body_nests_the_bank(self) -> None:
        update = BackgroundUpdate(
            7, skip_positions_download=False, callbacks=TaskCallbacks("https://app.example/f")
        )
        assert update.as_form_body() == {
            "bank": {"bankConnectionId": 7},
            "skipPositionsDownload": False,
            "callbacks": {"finalised": "https://app.example/f"},
        }
        for refused in (
            BackgroundUpdate(7, redirect_url="https://app.example/back"),
            BackgroundUpdate(7, manage_saved_settings=("CREDENTIALS",)),
            BackgroundUpdate(7, callbacks=TaskCallbacks(web_form_required="https://a.example/w")),
        ):
            with pytest.raises(ValidationError):
                refused.as_form_body()

    @pytest.mark.parametrize(
        "make",
        [
            lambda: BackgroundUpdate(1, account_types="CHECKING"),
            lambda: BackgroundUpdate(1, account_types=("CHECKING", "CHECKING")),
            lambda: BackgroundUpdate(1, manage_saved_settings=("PIN",)),
            lambda: BackgroundUpdate(1, manage_saved_settings="CREDENTIALS"),
            lambda: BackgroundUpdate(1, profile_id="short"),
            lambda: BackgroundUpdate(1, redirect_url="http://app.example/back"),
            lambda: TaskCallbacks(finalised="ftp://app.example/f"),
            lambda: TaskCallbacks(web_form_required="https://" + "a" * 2048),
        ],
    )
    def test_limits_are_checked_before_sending(self, make: Any) -> None:
        with pytest.raises(ValidationError):
            make()


FORM = {"id": "f" * 36, "url": "https://webform-sandbox.finapi.io/wf/" + "f" * 36, "status": "X"}


@pytest.mark.parametrize(
    ("payload", "status", "want"),
    [
        ({"bankConnectionId": 3}, "COMPLETED", UpdateCompleted),
        (
            {"bankConnectionId": 3, "errorCode": "INVALID_TOKEN"},
            "COMPLETED_WITH_ERROR",
            UpdateFailed,
        ),
        ({"bankConnectionId": 3, "webForm": FORM}, "WEB_FORM_REQUIRED", WebFormRequired),
        ({"bankConnectionId": 3, "webForm": None}, "IN_PROGRESS", type(None)),
        (None, "NOT_YET_STARTED", type(None)),
        ({"bankConnectionId": 3}, "PAUSED_BY_BANK", type(None)),  # a status added later
    ],
)
def test_outcome_of_a_task(payload: Any, status: str, want: type) -> None:
    """Each status's outcome; a running or unknown one has none yet."""
    task = read_task({"id": "t" * 36, "status": status, "payload": payload}, "task")
    outcome = outcome_of(task)
    assert type(outcome) is want
    if isinstance(outcome, WebFormRequired):
        assert outcome.url == FORM["url"]
        assert outcome.task is task
    if isinstance(outcome, UpdateFailed):
        assert outcome.error_code == "INVALID_TOKEN"


def test_unreadable_tasks_are_typed_errors() -> None:
    for body in (
        b"not json",
        b"[]",
        b'{"status": "COMPLETED"}',
        b'{"id": "x", "payload": 1}',
        b'{"id": 5, "status": "COMPLETED"}',  # never str(5)
        b'{"id": "x", "status": null}',  # never "None"
        b'{"id": "x", "status": "COMPLETED", "payload": {"bankConnectionId": true}}',
        b'{"id": "x", "status": "WEB_FORM_REQUIRED", "payload": {"webForm": {"id": "f"}}}',
    ):
        with pytest.raises(UnexpectedResponseError):
            read_task(body, "task")
    needs_form = read_task({"id": "x", "status": "WEB_FORM_REQUIRED"}, "task")
    with pytest.raises(UnexpectedResponseError):
        outcome_of(needs_form)


# -- against the sandbox ---------------------------------------------------------------------------


@pytest.fixture(params=["v2", "v1"])
def sandbox_config(request: pytest.FixtureRequest) -> SandboxConfig:
    return SandboxConfig(finapi_version=request.param)


@pytest.fixture
async def connection_id(sandbox_manager: SessionManager) -> int:
    return await import_connection(sandbox_manager, USER)


@pytest.fixture
def updates(sandbox_manager: SessionManager) -> ConnectionUpdates:
    return ConnectionUpdates(sandbox_manager)


async def state_at_sandbox_now(
    sandbox: Sandbox, manager: SessionManager, connection_id: int
) -> tuple[ConnectionState, dt.datetime | None]:
    connection = await FinApiData(manager).bank_connection(USER, connection_id)
    now = dt.datetime.fromtimestamp(sandbox.state.clock.now(), dt.UTC)
    status = connection_state(connection, now)
    return status.state, status.expires_at


async def test_an_update_completes_in_the_background(
    sandbox: Sandbox,
    sandbox_manager: SessionManager,
    updates: ConnectionUpdates,
    connection_id: int,
) -> None:
    """New transactions, a manual update recorded OK, the consent left as it was."""
    data = FinApiData(sandbox_manager)
    before = await data.bank_connection(USER, connection_id)
    count = len([t async for t in data.transactions(USER)])
    outcome = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert isinstance(outcome, UpdateCompleted)
    assert outcome.bank_connection_id == connection_id
    assert outcome.task.status == TaskStatus.COMPLETED
    after = await data.bank_connection(USER, connection_id)
    [interface] = after.interfaces
    assert interface.last_manual_update is not None
    assert interface.last_manual_update.ok
    assert interface.ais_consent == before.interfaces[0].ais_consent
    assert len([t async for t in data.transactions(USER)]) == count + 10


async def test_a_consent_ends_after_180_days_and_the_user_renews_it(
    sandbox: Sandbox,
    sandbox_manager: SessionManager,
    updates: ConnectionUpdates,
    connection_id: int,
) -> None:
    """EXPIRING 14 days ahead, EXPIRED at the end; the update asks for a form; completing it
    renews the consent for another 180 days."""
    state, first_end = await state_at_sandbox_now(sandbox, sandbox_manager, connection_id)
    assert state == ConnectionState.ACTIVE
    sandbox.advance(170 * DAY)  # the user's access token ran out long ago: renewed on the way
    assert (await state_at_sandbox_now(sandbox, sandbox_manager, connection_id))[0] == (
        ConnectionState.EXPIRING
    )
    sandbox.advance(10 * DAY)
    assert (await state_at_sandbox_now(sandbox, sandbox_manager, connection_id))[0] == (
        ConnectionState.EXPIRED
    )
    outcome = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert isinstance(outcome, WebFormRequired)
    assert outcome.task is not None
    assert outcome.url.startswith(sandbox.base_url + "/wf/")
    form = await WebForms(sandbox_manager).get(USER, outcome.web_form.id)
    assert form.type == "BANK_CONNECTION_UPDATE"
    await press(outcome)
    done = await updates.wait(USER, outcome.task.id, through_web_form=True, **FAST)
    assert isinstance(done, UpdateCompleted)
    state, new_end = await state_at_sandbox_now(sandbox, sandbox_manager, connection_id)
    assert state == ConnectionState.ACTIVE
    assert first_end is not None
    assert new_end is not None
    renewed = dt.datetime.fromtimestamp(sandbox.state.clock.now(), dt.UTC)
    assert dt.timedelta(0) <= renewed + dt.timedelta(days=180) - new_end < dt.timedelta(seconds=5)
    assert new_end - first_end >= dt.timedelta(days=180)  # both UTC


async def test_user_action_required_flips_and_an_aborted_form_fails_the_task(
    sandbox: Sandbox,
    sandbox_manager: SessionManager,
    updates: ConnectionUpdates,
    connection_id: int,
) -> None:
    """The control route sets the flag; the update needs the user; they abort: the task fails
    and the connection still needs them."""
    async with aiohttp.ClientSession() as http:
        url = f"{sandbox.base_url}/_sandbox/finapi/bankConnections/{connection_id}"
        async with http.post(url, json={"userActionRequired": True}) as response:
            assert response.status == 200
        async with http.post(url, json={"userActionRequired": "yes"}) as response:
            assert response.status == 400
    state, _ = await state_at_sandbox_now(sandbox, sandbox_manager, connection_id)
    assert state == ConnectionState.ACTION_REQUIRED
    outcome = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert isinstance(outcome, WebFormRequired)
    assert outcome.task is not None
    await press(outcome, "abort")
    done = await updates.wait(USER, outcome.task.id, through_web_form=True, **FAST)
    assert isinstance(done, UpdateFailed)
    assert done.task.payload.web_form is not None
    assert done.task.payload.web_form.status == "ABORTED"
    state, _ = await state_at_sandbox_now(sandbox, sandbox_manager, connection_id)
    assert state == ConnectionState.ACTION_REQUIRED


async def test_a_rejected_update_fails_with_its_code(
    sandbox: Sandbox,
    sandbox_manager: SessionManager,
    updates: ConnectionUpdates,
    connection_id: int,
) -> None:
    sandbox.service("tasks").steer(connection_id, next_task="error")
    outcome = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert isinstance(outcome, UpdateFailed)
    assert outcome.error_code == "BANK_SERVER_REJECTION"
    connection = await FinApiData(sandbox_manager).bank_connection(USER, connection_id)
    last = connection.interfaces[0].last_manual_update
    assert last is not None
    assert last.result == "BANK_SERVER_REJECTION"
    assert last.error_type == "BUSINESS"


@pytest.mark.parametrize("sandbox_config", [SandboxConfig()])
async def test_locked_while_running_and_refusals(
    sandbox: Sandbox,
    sandbox_manager: SessionManager,
    updates: ConnectionUpdates,
    connection_id: int,
) -> None:
    """One task per connection at a time (423); no such connection or task (404)."""
    sandbox.config.finapi_task_seconds = 60.0
    task = await updates.start(USER, BackgroundUpdate(connection_id))
    assert task.status == TaskStatus.NOT_YET_STARTED
    assert (await updates.get(USER, task.id)).status == TaskStatus.IN_PROGRESS
    with pytest.raises(LockedError):
        await updates.start(USER, BackgroundUpdate(connection_id))
    with pytest.raises(TimeoutError, match="IN_PROGRESS"):
        await updates.wait(USER, task.id, poll_interval=0.01, timeout=0.05)
    with pytest.raises(ValidationError):
        await updates.wait(USER, task.id, poll_interval=0)
    with pytest.raises(NotFoundError):
        await updates.start(USER, BackgroundUpdate(4242))
    other = await import_connection(sandbox_manager, "tasks-bob")
    with pytest.raises(NotFoundError):
        await updates.start(USER, BackgroundUpdate(other))
    with pytest.raises(NotFoundError):
        await updates.get("tasks-bob", task.id)
    with pytest.raises(NotFoundError):
        await updates.get(USER, "00000000-0000-0000-0000-000000000000")


@attrs.define
class Hooks:
    url: str
    received: list[tuple[str, dict[str, Any]]]

    async def count(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        """The callbacks received once there are ``n`` (the sandbox sends them beside the
        task's status, so a poll may see the status first)."""
        async with asyncio.timeout(5):
            while len(self.received) < n:  # noqa: ASYNC110  (appended by the handler)
                await asyncio.sleep(0.01)
        return self.received


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    """The app's callback endpoints (http on loopback, which the sandbox accepts)."""
    received: list[tuple[str, dict[str, Any]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.match_info["name"], await request.json()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/{name}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Hooks(f"http://127.0.0.1:{runner.addresses[0][1]}/hooks", received)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("sandbox_config", [SandboxConfig()])
async def test_callbacks_say_when_the_user_is_needed_and_when_it_ended(
    sandbox: Sandbox,
    updates: ConnectionUpdates,
    connection_id: int,
    hooks: Hooks,
) -> None:
    sandbox.service("tasks").steer(connection_id, consent_expires_in=0)
    callbacks = TaskCallbacks(f"{hooks.url}/finalised", f"{hooks.url}/web-form")
    outcome = await updates.update(
        USER, BackgroundUpdate(connection_id, callbacks=callbacks), **FAST
    )
    assert isinstance(outcome, WebFormRequired)
    assert outcome.task is not None
    form = {"id": outcome.web_form.id, "url": outcome.url, "status": "NOT_YET_OPENED"}
    assert await hooks.count(1) == [
        ("web-form", {"taskId": outcome.task.id, "status": "WEB_FORM_REQUIRED", "webForm": form})
    ]
    await press(outcome)
    assert (await hooks.count(2))[1] == (
        "finalised",
        {
            "taskId": outcome.task.id,
            "status": "COMPLETED",
            "webForm": {**form, "status": "COMPLETED"},
        },
    )
    assert sandbox.stats()["task_callbacks"] == {"sent": 2}


async def test_the_deprecated_update_form_stays_an_option(
    sandbox: Sandbox, sandbox_manager: SessionManager, connection_id: int
) -> None:
    """``via="web_form"``: every update goes through the user, and renews the consent."""
    sandbox.advance(100 * DAY)
    updates = ConnectionUpdates(sandbox_manager, routes=UpdateRoutes(via="web_form"))
    outcome = await updates.update(USER, BackgroundUpdate(connection_id))
    assert isinstance(outcome, WebFormRequired)
    assert outcome.task is None
    await press(outcome)
    assert (await WebForms(sandbox_manager).get(USER, outcome.web_form.id)).status == "COMPLETED"
    _, end = await state_at_sandbox_now(sandbox, sandbox_manager, connection_id)
    assert end is not None
    sandbox_now = dt.datetime.fromtimestamp(sandbox.state.clock.now(), dt.UTC)
    assert end - sandbox_now > dt.timedelta(days=179)
    assert "web_form" in repr(updates)


async def test_updates_need_a_web_form_host() -> None:
    provider = attrs.evolve(FinApi.at("http://127.0.0.1:9"), web_form_url=None)
    async with SessionManager(schedule=Schedule(enabled=False)) as manager:
        manager.register(provider, ClientCredentials("id", "secret"))
        with pytest.raises(ConfigurationError):
            ConnectionUpdates(manager)
