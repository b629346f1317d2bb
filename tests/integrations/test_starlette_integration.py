"""aiofinaccess.integrations.starlette in a FastAPI app, against the sandbox.

Requests go through httpx's ASGI transport to the app; the lifespan's work is done by
``StarletteConnect.open()`` around it, as a server would. The browser test drives the same
integration end to end (examples/fastapi_app.py under uvicorn).
"""

# No "from __future__ import annotations": FastAPI reads the routes' Annotated[...] at once.
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import aiohttp
import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.requests import Request

from aiofinaccess import RedisStore, Schedule, SessionManager, StoreError, UsageError
from aiofinaccess.integrations.starlette import Connection, StarletteConnect
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, SandboxConfig, headless_login

USER = "alice"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """The app's public callback (behind a proxy) registered at the sandbox's Everifin."""
    return SandboxConfig(everifin_redirect_uris=("https://app.example/connect/*",))


def build(sandbox: Sandbox, **options: Any) -> tuple[FastAPI, StarletteConnect]:
    def make_manager() -> SessionManager:
        manager = SessionManager(schedule=Schedule(enabled=False))
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        return manager

    def user_id(request: Request) -> str | None:
        return request.headers.get("x-user")

    connect = StarletteConnect(make_manager, user_id=user_id, **options)
    app = FastAPI(exception_handlers=connect.exception_handlers)
    app.mount("/connect", connect.routes())
    app.add_route("/ready", connect.readiness)
    everifin = connect.connection("everifin")
    bearer = connect.bearer("everifin")

    @app.get("/accounts")
    async def accounts(bank: Annotated[Connection, Depends(everifin)]) -> list[str]:
        return [account.id for account in await bank.bank.accounts(bank.subject)]

    @app.get("/raw-accounts")
    async def raw_accounts(headers: Annotated[dict[str, str], Depends(bearer)]) -> int:
        async with httpx.AsyncClient(base_url=sandbox.api_url) as client:
            return len((await client.get("/v1/accounts", headers=headers)).json()["data"])

    return app, connect


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[tuple[httpx.AsyncClient, StarletteConnect]]:
    app, connect = build(sandbox, redirect_base="https://app.example")
    transport = httpx.ASGITransport(app=app)
    # This client plays the browser: httpx logs each URL it requests, the callback's code too.
    quiet = logging.getLogger("httpx")
    level, quiet.level = quiet.level, logging.WARNING
    try:
        async with connect.open(), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c, connect
    finally:
        quiet.setLevel(level)


async def sign_in(client: httpx.AsyncClient, user: str, next_url: str = "/accounts") -> str:
    """Connect ``user`` through the routes; return the callback URL (path and query)."""
    started = await client.get(f"/connect/everifin?next={next_url}", headers={"x-user": user})
    assert started.status_code == 302
    assert started.headers["cache-control"] == "no-store"
    async with aiohttp.ClientSession() as browser:
        callback = await headless_login(
            browser, started.headers["location"], user, f"{user}-password"
        )
    assert str(callback).startswith("https://app.example/connect/everifin/callback?")
    return f"{callback.path}?{callback.query_string}"


async def test_connect_once_use_then_disconnect(
    sandbox: Sandbox, client: tuple[httpx.AsyncClient, StarletteConnect]
) -> None:
    http, connect = client
    who = {"x-user": USER}
    # Not connected: the dependency's ReauthorizationRequired becomes a redirect to connect.
    missing = await http.get("/accounts", headers=who)
    assert (missing.status_code, missing.headers["location"]) == (
        303,
        "/connect/everifin?next=/accounts",
    )
    callback = await sign_in(http, USER)
    for _ in range(2):  # the callback, then a reload of it: one exchange
        done = await http.get(callback, headers=who)
        assert (done.status_code, done.headers["location"]) == (302, "/accounts")
    stats = sandbox.stats()["token_requests"]
    assert stats["everifin_authorization_code"] == 1
    assert len((await http.get("/accounts", headers=who)).json()) == 3
    assert (await http.get("/raw-accounts", headers=who)).json() == 3
    # Disconnect (from a page of the app's origin, redirect_base): revoked and deleted; an
    # outside ?next= is not followed.
    page = {**who, "origin": "https://app.example"}
    gone = await http.post("/connect/everifin/disconnect?next=//evil.example/", headers=page)
    assert (gone.status_code, gone.headers["location"]) == (303, "/")
    assert sandbox.stats()["token_requests"]["everifin_revoke"] == 1
    assert [key async for key in connect.manager.store.keys("everifin")] == []
    assert (await http.get("/accounts", headers=who)).status_code == 303


async def test_anonymous_unknown_forged_and_readiness(
    client: tuple[httpx.AsyncClient, StarletteConnect],
) -> None:
    http, _connect = client
    assert (await http.get("/connect/everifin")).status_code == 401
    assert (await http.get("/accounts")).status_code == 401
    assert (await http.get("/connect/nope", headers={"x-user": USER})).status_code == 404
    forged = await http.get("/connect/everifin/callback?state=x&code=y", headers={"x-user": USER})
    assert forged.status_code == 400
    assert forged.text.startswith("Could not connect your account: ")
    ready = await http.get("/ready")
    assert (ready.status_code, ready.text) == (200, "ready")


async def test_another_users_callback_is_refused(
    client: tuple[httpx.AsyncClient, StarletteConnect],
) -> None:
    http, connect = client
    callback = await sign_in(http, USER)
    stolen = await http.get(callback, headers={"x-user": "mallory"})
    assert stolen.status_code == 400
    assert "another user" in stolen.text
    assert [key async for key in connect.manager.store.keys("everifin")] == []


async def test_the_manager_lives_only_as_long_as_the_app(sandbox: Sandbox) -> None:
    app, connect = build(sandbox)
    with pytest.raises(UsageError, match="not open"):
        connect.manager  # noqa: B018
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        ready = await http.get("/ready")
        assert ready.status_code == 503
        assert (
            ready.text
            == "not ready: the manager is not open: pass StarletteConnect.lifespan to the app"
        )
        async with connect.lifespan(app) as state:
            assert state["manager"] is connect.manager
            assert (await http.get("/ready")).status_code == 200
    with pytest.raises(UsageError):
        connect.manager  # noqa: B018


async def test_an_unreachable_store_stops_the_app_from_starting() -> None:
    connect = StarletteConnect(
        lambda: SessionManager(store=RedisStore("redis://127.0.0.1:1/0")), user_id=lambda r: None
    )
    with pytest.raises(StoreError, match=r"^token store RedisStore\(redis://127\.0\.0\.1:1/0"):
        async with connect.open():
            pass  # pragma: no cover
