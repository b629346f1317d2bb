"""finAPI's callbacks received in a FastAPI app (AsgiCallbacks mounted beside StarletteConnect),
against the sandbox: a task callback posted three times gives one ReconnectRequired; oversized
and malformed bodies get their typed answers (413, 400), other methods and paths 405 and 404."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from aiofinaccess import Schedule, SessionManager
from aiofinaccess.connections import ConnectionEvent, ReconnectRequired
from aiofinaccess.finapi import BackgroundUpdate, ConnectionUpdates, WebFormRequired
from aiofinaccess.integrations.finapi_callbacks import AsgiCallbacks, FinApiCallbacks
from aiofinaccess.integrations.starlette import StarletteConnect
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox
from tests.support.finapi_journey import import_connection

USER = "starlette-callbacks"
BASE = "https://app.example/finapi/callbacks"


@pytest.fixture
async def app(
    sandbox: Sandbox,
) -> AsyncIterator[tuple[httpx.AsyncClient, Callable[[], FinApiCallbacks]]]:
    def make_manager() -> SessionManager:
        manager = SessionManager(schedule=Schedule(enabled=False))
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        return manager

    def user_id(request: Request) -> str | None:
        return None

    connect = StarletteConnect(make_manager, user_id=user_id)
    callbacks = AsgiCallbacks.cached(lambda: connect.manager, base_url=BASE, max_body=1024)
    server = FastAPI()
    server.mount("/finapi/callbacks", callbacks)
    transport = httpx.ASGITransport(app=server)
    async with (
        connect.open(),
        httpx.AsyncClient(transport=transport, base_url="https://app.example") as client,
    ):
        yield client, lambda: FinApiCallbacks(connect.manager, base_url=BASE)


async def test_duplicates_give_one_event_and_bad_bodies_typed_answers(
    sandbox: Sandbox, app: tuple[httpx.AsyncClient, Callable[[], FinApiCallbacks]]
) -> None:
    client, receiver = app
    manager = receiver().manager
    events: list[ConnectionEvent] = []
    manager.connections.subscribe(events.append)
    connection_id = await import_connection(manager, USER)
    sandbox.service("tasks").steer(connection_id, user_action_required=True)
    # finAPI would POST to these URLs; the test posts instead (the sandbox cannot reach ASGI).
    outcome = await ConnectionUpdates(manager).update(
        USER, BackgroundUpdate(connection_id), poll_interval=0.01, timeout=10.0
    )
    assert isinstance(outcome, WebFormRequired)
    assert outcome.task is not None
    url = receiver().task_callbacks(USER).web_form_required
    assert url == f"{BASE}/task?user={USER}"
    body = json.dumps({"taskId": outcome.task.id, "status": "WEB_FORM_REQUIRED"})
    for _ in range(3):
        answer = await client.post(url, content=body)
        assert answer.status_code == 200
        assert answer.json() == {"confirmed": True}
    reconnects = [e for e in events if isinstance(e, ReconnectRequired) and e.connection]
    assert [(e.connection, e.detail) for e in reconnects] == [(str(connection_id), outcome.url)]
    too_big = await client.post(url, content=b"{" + b" " * 2000 + b"}")
    assert too_big.status_code == 413
    malformed = await client.post(f"{BASE}/notification", content=b'{"notificationRuleId": 0}')
    assert malformed.status_code == 400
    assert "notificationRuleId" in malformed.json()["error"]
    assert (await client.get(url)).status_code == 405
    assert (await client.post(f"{BASE}/weather", content=b"{}")).status_code == 404
