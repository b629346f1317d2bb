"""An operator's typos and stale settings around finAPI's callback receiver are typed errors
when it is built or mounted, saying what to fix, not broken URLs handed to finAPI or a 500 at
the first callback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import aiohttp
import pytest
from aiohttp import web

from aiofinaccess import ClientCredentials, SessionManager
from aiofinaccess.core.tokens import TokenKey, TokenSet
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.integrations.finapi_callbacks import FinApiCallbacks, WebCallbacks
from aiofinaccess.oauth.presets import FinApi
from aiofinaccess.stores.memory import MemoryStore
from aiofinaccess.stores.protocol import Lease, Versioned


class TokensOnly:
    """A third-party store that keeps token sets and nothing else."""

    def __init__(self) -> None:
        self._memory = MemoryStore()

    async def get(self, key: TokenKey) -> Versioned | None:
        return await self._memory.get(key)

    async def put(self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None) -> int:
        return await self._memory.put(key, token_set, expected_version=expected_version)

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        return await self._memory.delete(key, expected_version=expected_version)

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[Lease]:
        return self._memory.lease(key, ttl=ttl)

    def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        return self._memory.keys(provider)

    async def aclose(self) -> None:
        await self._memory.aclose()


async def manager_on(store: object | None = None) -> SessionManager:
    manager = SessionManager(store=store)  # type: ignore[arg-type]
    manager.register(FinApi.at("http://127.0.0.1:1"), ClientCredentials("id", "secret"))
    return manager


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with await manager_on() as opened:
        yield opened


@pytest.mark.parametrize(
    "base_url",
    [
        "app.example/finapi/callbacks",  # no scheme: finAPI cannot call it
        "https:///finapi/callbacks",  # no host
        "ftp://app.example/finapi/callbacks",
        "https://app.example/finapi/callbacks?tenant=7",  # the routes' ?user= would follow it
        "https://app.example/finapi/callbacks#top",
    ],
)
def test_a_base_url_finapi_cannot_call_is_refused(manager: SessionManager, base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        FinApiCallbacks(manager, base_url=base_url)


async def test_a_store_without_connection_records_is_refused_when_built() -> None:
    async with await manager_on(TokensOnly()) as manager:
        with pytest.raises(ConfigurationError, match="TokensOnly keeps no connection records"):
            FinApiCallbacks(manager, base_url="https://app.example/finapi/callbacks")


async def test_mounting_twice_at_one_path_is_refused_and_at_two_paths_serves_both(
    manager: SessionManager,
) -> None:
    receiver = FinApiCallbacks(manager, base_url="https://app.example/hooks")
    app = web.Application()
    WebCallbacks(receiver, path="/hooks").setup(app)
    with pytest.raises(ConfigurationError, match="/hooks"):
        WebCallbacks(receiver, path="/hooks/").setup(app)
    WebCallbacks(receiver, path="/old-hooks").setup(app)  # a second path (a move, a client)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as http:
            for path in ("/hooks", "/old-hooks"):
                async with http.post(f"{url}{path}/task?user=u", data=b"[]") as response:
                    assert response.status == 400  # parsed by the receiver: not a JSON object
    finally:
        await runner.cleanup()
