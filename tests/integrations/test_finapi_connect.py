"""The finAPI connect route (issue 24, item 1): a user without finAPI tokens is sent to connect,
and connecting creates their finAPI user and sends them to the Web Form.

Before the route existed, the reconnect redirect sent a finAPI user to ``/connect/finapi``,
which answered 500 ``ConfigurationError: provider finapi has no authorization_url``.
"""

# No "from __future__ import annotations": FastAPI reads the routes' Annotated[...] at once.
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.requests import Request

from aiofinaccess import Schedule, SessionManager
from aiofinaccess.integrations.starlette import Connection, StarletteConnect
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox

USER = "alice"


def build(sandbox: Sandbox) -> tuple[FastAPI, StarletteConnect]:
    def make_manager() -> SessionManager:
        manager = SessionManager(schedule=Schedule(enabled=False))
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        return manager

    def user_id(request: Request) -> str | None:
        return request.headers.get("x-user")

    connect = StarletteConnect(make_manager, user_id=user_id)
    app = FastAPI(exception_handlers=connect.exception_handlers)
    app.mount("/connect", connect.routes())
    finapi = connect.connection("finapi")

    @app.get("/finapi-page")
    async def finapi_page(bank: Annotated[Connection, Depends(finapi)]) -> str:
        return bank.subject

    return app, connect


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    app, connect = build(sandbox)
    transport = httpx.ASGITransport(app=app)
    async with connect.open(), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_a_finapi_user_sent_to_connect_reaches_the_web_form(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    who = {"x-user": USER}
    missing = await http.get("/finapi-page", headers=who)
    assert (missing.status_code, missing.headers["location"]) == (
        303,
        "/connect/finapi?next=/finapi-page",
    )
    started = await http.get(missing.headers["location"], headers=who)
    assert started.status_code == 302
    assert started.headers["location"].startswith(f"{sandbox.base_url}/wf/")
