"""Issue 12, item 2: one end user's cookies must never go out with another user's request.

The manager's own aiohttp session serves every user (token requests, and the resource modules'
calls). With a normal cookie jar, a ``JSESSIONID`` an API set while serving alice went out with
bob's next request. The session the manager creates keeps no cookies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess import SessionManager


@pytest_asyncio.fixture
async def api() -> AsyncIterator[tuple[str, list[str]]]:
    """An API on ``localhost`` (a name: cookie jars keep its cookies) that sets a session
    cookie on one route and records the Cookie header of every request."""
    seen: list[str] = []

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="alice's page")
        response.set_cookie("JSESSIONID", "alice-session")
        return response

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie", ""))
        return web.Response(text="page")

    app = web.Application()
    app.router.add_get("/alice", login)
    app.router.add_get("/bob", page)
    server = TestServer(app, host="localhost")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), seen
    finally:
        await server.close()


async def test_a_cookie_set_for_one_user_never_reaches_another(
    api: tuple[str, list[str]],
) -> None:
    base, seen = api
    async with SessionManager() as manager:
        http = manager.http_session()
        async with http.get(base + "/alice") as response:
            assert "JSESSIONID" in response.headers.get("Set-Cookie", "")
        async with http.get(base + "/bob") as response:
            assert response.status == 200
    assert seen == [""]
