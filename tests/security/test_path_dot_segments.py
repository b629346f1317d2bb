"""Attack: an id of ``.`` or ``..`` walks the request to another resource with the same token.

``DELETE /api/v2/users/.`` is ``DELETE /api/v2/users/`` to a server or proxy that normalises
paths (RFC 3986 5.2.4); ``GET /v1/accounts/../balances`` is ``GET /v1/balances``. Percent
encoding does not help (``%2E`` is an unreserved character, equivalent to ``.``), so every
path parameter that is a dot segment, or empty, is refused with ``UsageError`` before any
request is sent. The API host here records every path it receives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess import (
    ApiClient,
    ClientCredentials,
    Endpoint,
    Everifin,
    FinApi,
    SessionManager,
    UsageError,
)
from aiofinaccess.everifin import BankConnect
from aiofinaccess.finapi import Users, WebForms
from tests.support.fake_provider import CLIENT_ID, CLIENT_SECRET, USERS, FakeProvider

DOTS = [".", "..", ""]


@pytest.fixture
async def api() -> AsyncIterator[tuple[SessionManager, list[str]]]:
    """finAPI and Everifin providers on one recording host, alice logged in at both."""
    paths: list[str] = []

    async def record(request: web.Request) -> web.Response:
        paths.append(request.raw_path)
        return web.json_response({})

    fake = FakeProvider()
    app = fake.app()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    fake.base_url = base
    credentials = ClientCredentials(CLIENT_ID, CLIENT_SECRET)
    async with SessionManager() as manager:
        manager.register(FinApi.at(base), credentials)
        manager.register(Everifin.at(base, base, realm="test"), credentials)
        for provider in ("finapi", "everifin"):
            await manager.login_with_password(provider, "alice", USERS["alice"])
        try:
            yield manager, paths
        finally:
            await server.close()


Call = Callable[[SessionManager, str], Awaitable[object]]
CALLS: dict[str, Call] = {
    "users.delete_unverified": lambda m, v: Users(m).delete_unverified(v),
    "users.verify": lambda m, v: Users(m).verify(v),
    "bankconnect.account": lambda m, v: BankConnect(m).account("alice", v),
    "bankconnect.balances": lambda m, v: BankConnect(m).balances("alice", v),
    "bankconnect.transaction": lambda m, v: BankConnect(m).transaction("alice", v),
    "webforms.get": lambda m, v: WebForms(m).get("alice", v),
    "pipeline": lambda m, v: ApiClient(m, "finapi").call(
        Endpoint("GET", "/accounts/{id}/balances"), subject="alice", path_params={"id": v}
    ),
}


@pytest.mark.parametrize("value", DOTS, ids=["dot", "dotdot", "empty"])
@pytest.mark.parametrize("call", CALLS)
async def test_dot_segment_id_is_refused_before_sending(
    api: tuple[SessionManager, list[str]], call: str, value: str
) -> None:
    """No request with a dot-segment (or empty) path parameter reaches the server."""
    manager, paths = api
    before = list(paths)
    with pytest.raises(UsageError, match=r"path parameter|user id must be"):
        await CALLS[call](manager, value)
    assert paths == before


async def test_ids_with_dots_inside_still_work(api: tuple[SessionManager, list[str]]) -> None:
    """Only whole dot segments are refused: ``a.b`` or ``...`` are ordinary ids."""
    manager, paths = api
    await ApiClient(manager, "finapi").call(
        Endpoint("GET", "/x/{a}/{b}"), subject="alice", path_params={"a": "a.b", "b": "..."}
    )
    assert paths[-1] == "/api/v2/x/a.b/..."
