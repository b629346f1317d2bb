"""Fixtures shared by the suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aioresponses import aioresponses

from aiofinaccess import ClientCredentials, Everifin, FinApi, Provider, SessionManager
from aiofinaccess.stores.memory import MemoryStore

from . import aioresponses_shim
from .fakes import FakeClock

aioresponses_shim.install()

FINAPI = FinApi.sandbox()
EVERIFIN = Everifin.stage()
FINAPI_CLIENT = ClientCredentials("finapi-client", "finapi-client-secret-123")
EVERIFIN_CLIENT = ClientCredentials("everifin-client", "everifin-client-secret-456")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def manager(clock: FakeClock, store: MemoryStore) -> AsyncIterator[SessionManager]:
    async with SessionManager(store=store, clock=clock, scheduler=False) as manager:
        manager.register(FINAPI, FINAPI_CLIENT)
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        yield manager


def token_body(
    access: str = "AT-1", refresh: str | None = "RT-1", expires_in: int = 300, **extra: object
) -> dict[str, object]:
    body: dict[str, object] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    body.update(extra)
    return body


def token_url(provider: Provider) -> str:
    return str(provider.token_url)
