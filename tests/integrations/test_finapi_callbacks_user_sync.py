"""A user synchronization is sent once (finAPI reads no answer, so a 503 brings no retry): when
taking it fails half-way, what nothing else would ever put right must already be done. Dead
tokens are put right by the next refresh (finAPI refuses it); connections recorded ACTIVE for
a deleted user are not, so they are marked REVOKED (and the app told) first."""

from __future__ import annotations

import json

import aiohttp
import attrs
import pytest
from aiohttp import web

from aiofinaccess import SessionManager
from aiofinaccess.connections import ConnectionEvent, ConnectionState, Observation
from aiofinaccess.errors import CallbackUnavailable, StoreError
from aiofinaccess.integrations.finapi_callback_bodies import CallbackKind
from aiofinaccess.integrations.finapi_callbacks import FinApiCallbacks, WebCallbacks
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox
from tests.support.finapi_journey import import_connection

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


async def test_a_404_that_is_not_finapis_unknown_user_confirms_no_deletion(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """An API URL with a typo (or a proxy's 404 page) answers every user lookup 404: a forged
    deletion must not read that as "finAPI no longer knows the user" and forget real tokens."""
    await import_connection(sandbox_manager, USER)
    async with SessionManager(store=sandbox_manager.store) as typo:
        for provider, credentials in sandbox_providers(sandbox):
            mistyped = f"{sandbox.base_url}/api/v2-typo"  # the token URL works, the API's not
            named = provider.name == "finapi"
            typo.register(
                attrs.evolve(provider, api_url=mistyped) if named else provider, credentials
            )
        receiver = FinApiCallbacks(typo, base_url="https://app.example/hooks")
        body = json.dumps({"userId": USER, "event": "DELETED"}).encode()
        with pytest.raises(CallbackUnavailable, match="api_url"):  # 503, saying what to fix
            await receiver.receive(CallbackKind.USER_SYNC, body, {})
    assert await sandbox_manager.store.get(sandbox_manager.key("finapi", USER)) is not None
