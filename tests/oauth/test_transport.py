"""Tests for aiofinaccess.oauth.transport against real sockets: what failed, and was it sent?"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from aiofinaccess import Secret, TransportError
from aiofinaccess.oauth.transport import HttpRequest, send


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 65536)
        return response

    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * 200_000)

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/declared", declared)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connection_was_not_sent() -> None:
    """A closed port proves the server never saw the request."""
    url = URL(f"http://127.0.0.1:{_free_port()}/token")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError) as info:
            await send(session, HttpRequest("POST", url, form=(("a", "b"),)))
    assert info.value.request_sent is False
    assert info.value.retryable


async def test_timeout_after_sending_may_have_been_processed(server: TestServer) -> None:
    """A read timeout is ambiguous: the refresh token may be spent."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError) as info:
            await send(session, HttpRequest("POST", server.make_url("/slow")), timeout=0.2)
    assert info.value.request_sent is True


@pytest.mark.parametrize("path", ["/big", "/declared"])
async def test_oversized_bodies_are_refused(server: TestServer, path: str) -> None:
    """Streamed or declared, a body over the limit is not buffered."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError, match="limit") as info:
            await send(session, HttpRequest("GET", server.make_url(path)), max_body=100_000)
    assert not info.value.retryable


async def test_query_secrets_stay_out_of_the_message() -> None:
    """finAPI v1 revocation puts the token in the query; errors must not repeat it."""
    url = URL(f"http://127.0.0.1:{_free_port()}/oauth/revoke")
    request = HttpRequest("POST", url, query=(("token", Secret("tok-in-query-123")),))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError) as info:
            await send(session, request)
    assert "tok-in-query-123" not in str(info.value)
    assert "tok-in-query-123" not in repr(request)
