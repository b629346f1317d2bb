"""The finAPI connect route (issue 24, item 1): a user without finAPI tokens is sent to connect,
and connecting creates their finAPI user and sends them to the Web Form.

Before the route existed, the reconnect redirect sent a finAPI user to ``/connect/finapi``,
which answered 500 ``ConfigurationError: provider finapi has no authorization_url``.
"""

# No "from __future__ import annotations": FastAPI reads the routes' Annotated[...] at once.
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import aiohttp
import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet
from fastapi import Depends, FastAPI
from starlette.requests import Request
from yarl import URL

from aiofinaccess import (
    ClientCredentials,
    MemoryStore,
    Provider,
    Schedule,
    SessionManager,
    SQLiteStore,
)
from aiofinaccess.api.finapi.users import NewUser, Users
from aiofinaccess.finapi import FinApiData
from aiofinaccess.integrations.starlette import Connection, StarletteConnect
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.integrations.web import WebConnect
from aiofinaccess.integrations.webform_flow import WebFormFlow, kept_passwords
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores import FernetCodec, TokenStore

USER = "alice"


def make_manager(sandbox: Sandbox, store: TokenStore | None = None) -> SessionManager:
    store = store or MemoryStore()
    manager = SessionManager(store=store, schedule=Schedule(enabled=False))
    for provider, credentials in sandbox_providers(sandbox):
        # The flow's kept passwords log a finAPI user in again when the refresh token is gone.
        lookup = kept_passwords(store) if provider.name == "finapi" else None
        manager.register(provider, credentials, password_lookup=lookup)
    # A provider no user can connect to: client credentials only.
    plain = Provider(name="plain", token_url=f"{sandbox.base_url}/nowhere/token")
    manager.register(plain, ClientCredentials("id", "secret"))
    return manager


def build(sandbox: Sandbox, store: TokenStore | None = None) -> tuple[FastAPI, StarletteConnect]:
    def user_id(request: Request) -> str | None:
        return request.headers.get("x-user")

    connect = StarletteConnect(lambda: make_manager(sandbox, store), user_id=user_id)
    app = FastAPI(exception_handlers=connect.exception_handlers)
    app.mount("/connect", connect.routes())
    finapi, plain = connect.connection("finapi"), connect.connection("plain")

    @app.get("/finapi-page")
    async def finapi_page(bank: Annotated[Connection, Depends(finapi)]) -> int:
        return len(await FinApiData(bank.manager).accounts(bank.subject))

    @app.get("/plain-page")
    async def plain_page(bank: Annotated[Connection, Depends(plain)]) -> str:
        return bank.subject  # pragma: no cover  (nobody connects to it)

    return app, connect


@pytest.fixture
async def app(sandbox: Sandbox) -> AsyncIterator[tuple[httpx.AsyncClient, StarletteConnect]]:
    fastapi, connect = build(sandbox)
    transport = httpx.ASGITransport(app=fastapi)
    async with (
        connect.open(),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c,
    ):
        yield c, connect


async def fill_in(form_url: str, action: str = "complete") -> str:
    """Press a button on the sandbox's Web Form page, as the user; return where it sends them
    (path and query on the app)."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(form_url) as page:
            assert page.status == 200
        async with browser.post(form_url, data={"action": action}, allow_redirects=False) as done:
            assert done.status == 303
            back = URL(done.headers["Location"])
    return f"{back.path}?{back.query_string}"


async def test_a_finapi_user_sent_to_connect_reaches_the_web_form(
    sandbox: Sandbox, app: tuple[httpx.AsyncClient, StarletteConnect]
) -> None:
    http, _ = app
    who = {"x-user": USER}
    missing = await http.get("/finapi-page", headers=who)
    assert (missing.status_code, missing.headers["location"]) == (
        303,
        "/connect/finapi?next=/finapi-page",
    )
    started = await http.get(missing.headers["location"], headers=who)
    assert started.status_code == 302
    assert started.headers["location"].startswith(f"{sandbox.base_url}/wf/")


async def test_connect_return_reload_then_reconnect_with_the_kept_password(
    sandbox: Sandbox, app: tuple[httpx.AsyncClient, StarletteConnect]
) -> None:
    http, connect = app
    who = {"x-user": USER}
    started = await http.get("/connect/finapi?next=/finapi-page", headers=who)
    back = await fill_in(started.headers["location"])
    assert back.startswith("/connect/finapi/callback?state=")
    for _ in range(2):  # the return, then a reload of it
        done = await http.get(back, headers=who)
        assert (done.status_code, done.headers["location"]) == (302, "/finapi-page")
    accounts = sandbox.config.finapi_accounts_per_connection
    assert (await http.get("/finapi-page", headers=who)).json() == accounts
    connections = sandbox.service("finapi_data").connections.values()
    assert [c.user_id for c in connections] == [USER]
    # Tokens gone (a disconnect): the next connect logs in with the kept password.
    await connect.manager.forget("finapi", USER)
    again = await http.get("/connect/finapi", headers=who)
    assert again.headers["location"].startswith(f"{sandbox.base_url}/wf/")
    stats = sandbox.stats()["token_requests"]
    assert stats["finapi_password"] == 2
    assert len(sandbox.service("finapi").users) == 1
    # finAPI killed every token of the user: the manager logs in again with the kept password.
    sandbox.service("finapi")._drop_user_tokens(USER)
    assert (await http.get("/finapi-page", headers=who)).json() == accounts
    assert sandbox.stats()["token_requests"]["finapi_password"] == 3
    # finAPI lost the user (a reset sandbox): created again with the kept password.
    kept = sandbox.service("finapi").users.pop(USER).password
    await connect.manager.forget("finapi", USER)
    again = await http.get("/connect/finapi", headers=who)
    assert again.headers["location"].startswith(f"{sandbox.base_url}/wf/")
    assert sandbox.service("finapi").users[USER].password == kept


async def test_a_foreign_return_an_abort_and_a_bad_user_id_are_refused(
    sandbox: Sandbox, app: tuple[httpx.AsyncClient, StarletteConnect]
) -> None:
    http, connect = app
    started = await http.get("/connect/finapi", headers={"x-user": USER})
    back = await fill_in(started.headers["location"])
    stolen = await http.get(back, headers={"x-user": "mallory"})
    assert stolen.status_code == 400
    assert "another user" in stolen.text
    forged = await http.get("/connect/finapi/callback?state=forged", headers={"x-user": USER})
    assert forged.status_code == 400
    assert "unknown or expired" in forged.text

    bob = {"x-user": "bob"}
    started = await http.get("/connect/finapi", headers=bob)
    aborted = await http.get(await fill_in(started.headers["location"], "abort"), headers=bob)
    assert aborted.status_code == 400
    assert "the web form was aborted" in aborted.text

    bad = await http.get("/connect/finapi", headers={"x-user": "not a finAPI id"})
    assert bad.status_code == 400
    assert "cannot be a finAPI user id" in bad.text

    await Users(connect.manager).create(NewUser(id="carol", password="elsewhere"))
    taken = await http.get("/connect/finapi", headers={"x-user": "carol"})
    assert taken.status_code == 400
    assert "keeps no password for it" in taken.text


async def test_reconnect_goes_only_to_a_provider_with_a_connect_route(
    app: tuple[httpx.AsyncClient, StarletteConnect],
) -> None:
    http, connect = app
    assert (connect.has_connect_route("finapi"), connect.has_connect_route("plain")) == (
        True,
        False,
    )
    page = await http.get("/plain-page", headers={"x-user": USER})
    assert page.status_code == 503
    assert page.text == (
        "Your plain connection must be renewed, but this app has no connect route for plain"
    )
    assert (await http.get("/connect/plain", headers={"x-user": USER})).status_code == 404


async def test_the_password_is_sealed_in_the_store_and_never_logged(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.db"
    store = SQLiteStore(path, codec=FernetCodec([Fernet.generate_key()]))
    fastapi, connect = build(sandbox, store)
    transport = httpx.ASGITransport(app=fastapi)
    with caplog.at_level(logging.DEBUG):
        async with (
            connect.open(),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
        ):
            started = await http.get("/connect/finapi", headers={"x-user": USER})
            back = await fill_in(started.headers["location"])
            assert (await http.get(back, headers={"x-user": USER})).status_code == 302
    password = sandbox.service("finapi").users[USER].password
    assert len(password) >= 24
    assert password.encode() not in path.read_bytes()
    assert all(password not in record.getMessage() for record in caplog.records)


async def test_the_aiohttp_integration_connects_through_the_web_form(sandbox: Sandbox) -> None:
    async def user_id(request: aiohttp.web.Request) -> str:
        return request.headers["x-user"]

    async with make_manager(sandbox) as manager:
        app = aiohttp.web.Application()
        WebConnect(WebFormFlow(manager, "finapi", success_url="/done"), user_id=user_id).setup(app)
        async with TestClient(TestServer(app)) as client:
            started = await client.get(
                "/connect/finapi", headers={"x-user": USER}, allow_redirects=False
            )
            assert started.status == 302
            back = await fill_in(started.headers["Location"])
            done = await client.get(back, headers={"x-user": USER}, allow_redirects=False)
            assert (done.status, done.headers["Location"]) == (302, "/done")
            stolen = await client.get(back, headers={"x-user": "mallory"}, allow_redirects=False)
            assert stolen.status == 400
        assert await manager.access_token("finapi", USER)
