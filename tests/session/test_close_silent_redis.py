"""``aclose()`` keeps its documented bound (``close_timeout`` + ``pending_write_timeout``) when
Redis goes silent (issue 22, finding 18b).

A renewal holds a Redis lease; its token endpoint stops Redis (SIGSTOP: the socket stays open,
nothing comes back) and refuses the refresh. The renewal leaves its lease, and the release is
sent to the silent server; closing then waited for that release: 4.7 to 5.0 s against a bound of
2 s with redis-py 8, which gives up after its default ``socket_timeout`` of 5 s; redis-py 5 has
no default timeout, so there it waited for as long as Redis stayed silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable

import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess import ClientCredentials, Everifin, Schedule, SessionManager, Timeouts, TokenSet
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis

CLOSE_TIMEOUT = 1.0
PENDING_WRITE_TIMEOUT = 1.0
#: Over the documented bound: what a loaded 2-core machine may add to timers and scheduling.
SLACK = 1.5


@contextlib.asynccontextmanager
async def refusing_token_endpoint(on_request: Callable[[], None]) -> AsyncIterator[str]:
    """An HTTP server that calls ``on_request`` and refuses the client; yields its base URL."""

    async def refuse(request: web.Request) -> web.Response:
        on_request()
        return web.json_response({"error": "invalid_client"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_aclose_keeps_its_bound_when_redis_goes_silent() -> None:
    refused = asyncio.Event()
    pid = 0

    def silence_redis() -> None:
        os.kill(pid, signal.SIGSTOP)
        refused.set()

    async with running_redis() as url, refusing_token_endpoint(silence_redis) as idp:
        async with redis.from_url(url) as probe:
            pid = int((await probe.info("server"))["process_id"])
        manager = SessionManager(
            store=RedisStore(url, prefix="silent:"),
            timeouts=Timeouts(close=CLOSE_TIMEOUT, pending_write=PENDING_WRITE_TIMEOUT),
            schedule=Schedule(enabled=False),
        )
        try:
            manager.register(Everifin.at(f"{idp}/auth", idp), ClientCredentials("c", "s"))
            await manager.start()
            now = time.time()
            stale = TokenSet("AT-0", issued_at=now - 400, expires_at=now - 100, refresh_token="R")
            await manager.store_token_set("everifin", "alice", stale)
            renewal = asyncio.ensure_future(manager.access_token("everifin", "alice"))
            async with asyncio.timeout(10):
                await refused.wait()  # Redis is silent; the lease release is on its way
            await asyncio.sleep(0.1)
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):  # the test's own limit
                    await manager.aclose()
            took = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.gather(renewal, return_exceptions=True)
    assert took <= CLOSE_TIMEOUT + PENDING_WRITE_TIMEOUT + SLACK, f"aclose took {took:.1f} s"
