"""POST /connect/{provider}/disconnect answers only requests from the app's own origin.

A form on another site can post to the route with the user's cookies (SameSite=None cookies,
or a browser or app that sets none): without a check, any page disconnects the user's bank.
The app's origin is ``redirect_base`` when it is configured (never the Host header then),
else the request's own URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from aiofinaccess import Schedule, Secret, SessionManager, TokenSet
from aiofinaccess.integrations.starlette import StarletteConnect
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox

USER = "alice"
APP = "https://app.example"
DISCONNECT = "/connect/everifin/disconnect"


@asynccontextmanager
async def serving(
    sandbox: Sandbox, redirect_base: str | None
) -> AsyncIterator[tuple[httpx.AsyncClient, StarletteConnect]]:
    """The app at ``https://app.example``, its connect routes mounted at ``/connect``."""

    def make_manager() -> SessionManager:
        manager = SessionManager(schedule=Schedule(enabled=False))
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        return manager

    def user_id(request: Request) -> str | None:
        return request.headers.get("x-user")

    connect = StarletteConnect(make_manager, user_id=user_id, redirect_base=redirect_base)
    app = Starlette(routes=[Mount("/connect", connect.routes())])
    transport = httpx.ASGITransport(app=app)
    async with connect.open(), httpx.AsyncClient(transport=transport, base_url=APP) as client:
        yield client, connect


@pytest.fixture(params=[APP, None], ids=["redirect_base", "request-url"])
async def http(
    request: pytest.FixtureRequest, sandbox: Sandbox
) -> AsyncIterator[tuple[httpx.AsyncClient, StarletteConnect]]:
    """The app with ``redirect_base`` naming its origin, and without (the request's URL)."""
    async with serving(sandbox, request.param) as served:
        yield served


async def _connected(connect: StarletteConnect) -> None:
    tokens = TokenSet(access_token=Secret("at"), refresh_token=Secret("rt"), expires_at=None)
    await connect.manager.store_token_set("everifin", USER, tokens)


async def _stored(connect: StarletteConnect) -> int:
    return len([key async for key in connect.manager.store.keys("everifin")])


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "https://app.example.evil.example"},
        {"origin": "http://app.example"},  # another scheme is another origin
        {"referer": "https://evil.example/page"},
        {},  # neither Origin nor Referer: nothing shows the request is our own
        {"origin": "null", "sec-fetch-site": "cross-site"},  # a sandboxed frame elsewhere
        {"referer": f"{APP}/accounts", "sec-fetch-site": "cross-site"},
    ],
    ids=repr,
)
async def test_a_cross_origin_disconnect_is_refused(
    http: tuple[httpx.AsyncClient, StarletteConnect], headers: dict[str, str]
) -> None:
    client, connect = http
    await _connected(connect)
    refused = await client.post(DISCONNECT, headers={"x-user": USER, **headers})
    assert refused.status_code == 403
    assert await _stored(connect) == 1  # still connected


async def test_a_spoofed_host_does_not_make_an_origin_ours(sandbox: Sandbox) -> None:
    """With ``redirect_base`` set, the Host header does not decide what "our origin" is."""
    async with serving(sandbox, APP) as (client, connect):
        await _connected(connect)
        headers = {"x-user": USER, "host": "evil.example", "origin": "https://evil.example"}
        refused = await client.post(DISCONNECT, headers=headers)
        assert refused.status_code == 403
        assert await _stored(connect) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": APP},
        {"origin": "HTTPS://APP.EXAMPLE:443"},  # the same origin, spelled otherwise
        {"referer": f"{APP}/accounts?tab=1"},  # Origin absent: the Referer's origin
        {"origin": APP, "sec-fetch-site": "same-origin"},
        {"origin": "null", "sec-fetch-site": "same-origin"},  # Referrer-Policy: no-referrer
    ],
    ids=repr,
)
async def test_a_same_origin_disconnect_is_done(
    http: tuple[httpx.AsyncClient, StarletteConnect], headers: dict[str, str]
) -> None:
    client, connect = http
    await _connected(connect)
    done = await client.post(DISCONNECT, headers={"x-user": USER, **headers})
    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert await _stored(connect) == 0
