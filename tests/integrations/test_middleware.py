"""Tests for aiofinaccess.integrations.middleware against a real local server.

aioresponses bypasses client middlewares, so these tests use real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from aiofinaccess import BearerAuth, ClientCredentials, Oidc, SessionManager, UsageError
from tests.support.fake_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    USERS,
    FakeProvider,
    running_provider,
)


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with running_provider() as provider:
        yield provider


async def _manager(
    provider: FakeProvider, session: aiohttp.ClientSession | None = None
) -> SessionManager:
    manager = SessionManager(session=session)
    manager.register(
        Oidc.keycloak(provider.base_url, "test", name="kc", api_url=provider.base_url),
        ClientCredentials(CLIENT_ID, CLIENT_SECRET),
    )
    await manager.login_with_password("kc", "alice", USERS["alice"])
    return manager


async def test_bearer_is_injected(provider: FakeProvider) -> None:
    """Test that a user's own session gets the user's bearer token."""
    async with await _manager(provider) as manager:
        auth = BearerAuth(manager, "kc", "alice")
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(provider.base_url + "/api/resource") as response,
        ):
            assert response.status == 200
            assert await response.json() == {"user": "alice"}


async def test_401_refreshes_once_and_replays_once(provider: FakeProvider) -> None:
    """Test that 50 requests hitting 401 together cause one refresh and all succeed."""
    async with await _manager(provider) as manager:
        auth = BearerAuth(manager, "kc", "alice")
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            async with session.get(provider.base_url + "/api/resource") as response:
                assert response.status == 200
            provider.revoke_all_access()

            async def fetch() -> int:
                async with session.get(provider.base_url + "/api/resource") as response:
                    return response.status

            statuses = await asyncio.gather(*(fetch() for _ in range(50)))
        assert set(statuses) == {200}
        assert provider.grants["refresh_token"] == 1
        assert provider.reuse_violations == 0


async def test_a_second_401_is_returned_not_looped(provider: FakeProvider) -> None:
    """Test that the middleware makes two rounds at most and hands back the second 401."""
    async with await _manager(provider) as manager:
        auth = BearerAuth(manager, "kc", "alice")
        provider.reject_all = True
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(provider.base_url + "/api/resource") as response,
        ):
            assert response.status == 401
    assert provider.resource_calls == 2
    assert provider.grants["refresh_token"] == 1


async def test_token_calls_bypass_the_middleware_on_a_shared_session(
    provider: FakeProvider,
) -> None:
    """Test that a manager sharing a session whose middleware is ours does not recurse."""
    auth_holder: list[BearerAuth] = []

    async def app_middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        return await auth_holder[0](request, handler)

    async with (
        aiohttp.ClientSession(middlewares=(app_middleware,)) as session,
        await _manager(provider, session) as manager,
    ):
        auth_holder.append(BearerAuth(manager, "kc", "alice"))
        provider.revoke_all_access()  # the next request needs a refresh through the session
        async with session.get(provider.base_url + "/api/resource") as response:
            assert response.status == 200
    assert provider.grants["refresh_token"] == 1
    assert provider.token_endpoint_bearers == 0


async def test_unknown_provider_fails_at_construction(provider: FakeProvider) -> None:
    """Test that a misconfigured middleware fails before the first request."""
    async with SessionManager() as manager:
        with pytest.raises(UsageError, match="not registered"):
            BearerAuth(manager, "nope")


def test_realm_constant_matches() -> None:
    """Test that the fake serves the realm the tests name."""
    assert REALM.endswith("/test")
