"""What confirms a finAPI callback, when the confirmation fails or is misread. A user
synchronization is sent once (finAPI reads no answer, so a 503 brings no retry): when taking it
fails half-way, the connections (nothing else would revoke them) are already REVOKED; dead
tokens are put right by the next refresh. And only finAPI's own UNKNOWN_ENTITY means "gone": a
bare 404 (a mistyped API URL, a proxy's page) deletes no user and revokes no connection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from aiofinaccess import SessionManager
from aiofinaccess.connections import ConnectionEvent, ConnectionState, Observation
from aiofinaccess.errors import CallbackUnavailable, StoreError
from aiofinaccess.finapi import WebForms
from aiofinaccess.integrations.finapi_callback_bodies import CallbackKind
from aiofinaccess.integrations.finapi_callbacks import FinApiCallbacks, WebCallbacks
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox
from tests.support.finapi_journey import import_connection, press

USER = "sync-user"


async def test_a_deletion_whose_forgetting_fails_still_revokes_the_connections(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    connection_id = await import_connection(sandbox_manager, USER)
    registry = sandbox_manager.connections
    await registry.observe("finapi", USER, str(connection_id), Observation())
    events: list[ConnectionEvent] = []
    registry.subscribe(events.append)
    token = await sandbox_manager.access_token("finapi", USER)
    async with (  # deleted at finAPI; only the callback tells the app
        aiohttp.ClientSession() as http,
        http.delete(
            sandbox.base_url + "/api/v2/users", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 200

    async def failing(*args: object, **kwargs: object) -> None:
        raise StoreError("the store is failing for a moment")

    sandbox_manager.forget = failing  # type: ignore[method-assign]
    server = web.Application()
    receiver = FinApiCallbacks(sandbox_manager, base_url="http://127.0.0.1:1/hooks")
    WebCallbacks(receiver, path="/hooks").setup(server)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/user-sync"
        body = json.dumps({"userId": USER, "event": "DELETED"}).encode()
        async with aiohttp.ClientSession() as http, http.post(url, data=body) as response:
            assert response.status == 503
    finally:
        await runner.cleanup()
    row = await registry.get("finapi", USER, str(connection_id))
    assert row is not None
    assert row.state is ConnectionState.REVOKED
    assert [(type(e).__name__, e.connection) for e in events if e.connection] == [
        ("ReconnectRequired", str(connection_id))
    ]


@asynccontextmanager
async def mistyped(sandbox: Sandbox, store: Any) -> AsyncIterator[FinApiCallbacks]:
    """A receiver whose finAPI API URL has a typo: the token URL and the Web Form host work,
    every API path is a bare 404 (as behind a proxy's error page)."""
    async with SessionManager(store=store) as typo:
        for provider, credentials in sandbox_providers(sandbox):
            wrong = f"{sandbox.base_url}/api/v2-typo"
            named = provider.name == "finapi"
            typo.register(attrs.evolve(provider, api_url=wrong) if named else provider, credentials)
        yield FinApiCallbacks(typo, base_url="https://app.example/hooks")


async def test_a_404_that_is_not_finapis_unknown_user_confirms_no_deletion(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """A forged deletion must not read a bare 404 as "finAPI no longer knows the user" and
    forget real tokens."""
    await import_connection(sandbox_manager, USER)
    async with mistyped(sandbox, sandbox_manager.store) as receiver:
        body = json.dumps({"userId": USER, "event": "DELETED"}).encode()
        with pytest.raises(CallbackUnavailable, match="api_url"):  # 503, saying what to fix
            await receiver.receive(CallbackKind.USER_SYNC, body, {})
    assert await sandbox_manager.store.get(sandbox_manager.key("finapi", USER)) is not None


async def test_a_404_that_is_not_finapis_unknown_connection_revokes_nothing(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """A genuine Web Form callback (the form read on its own host) whose connection read is a
    bare 404 must not record the connection REVOKED."""
    await import_connection(sandbox_manager, USER)
    forms = WebForms(sandbox_manager)
    form = await forms.import_bank_connection(USER)
    await press(form)
    async with mistyped(sandbox, sandbox_manager.store) as receiver:
        body = json.dumps({"webFormId": form.id, "status": "COMPLETED"}).encode()
        with pytest.raises(CallbackUnavailable, match="api_url"):
            await receiver.receive(CallbackKind.WEB_FORM, body, {"user": USER})
    assert await sandbox_manager.connections.list(needs_action=True) == []


async def test_a_connection_finapi_says_is_gone_is_revoked(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """The other side of the rule: finAPI's UNKNOWN_ENTITY for a deleted connection revokes it."""
    await import_connection(sandbox_manager, USER)
    forms = WebForms(sandbox_manager)
    form = await forms.import_bank_connection(USER)
    await press(form)
    connection_id = (await forms.get(USER, form.id)).payload.bank_connection_id
    token = await sandbox_manager.access_token("finapi", USER)
    async with (
        aiohttp.ClientSession() as http,
        http.delete(
            f"{sandbox.base_url}/api/v2/bankConnections/{connection_id}",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status in (200, 204)
    receiver = FinApiCallbacks(sandbox_manager, base_url="https://app.example/hooks")
    body = json.dumps({"webFormId": form.id, "status": "COMPLETED"}).encode()
    result = await receiver.receive(CallbackKind.WEB_FORM, body, {"user": USER})
    assert [(row.connection, row.state) for row in result.connections] == [
        (str(connection_id), ConnectionState.REVOKED)
    ]
