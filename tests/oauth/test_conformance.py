"""The same scenarios against the sandbox and against a real, independent OIDC server.

The independent server is panva's certified ``oidc-provider`` (npm), configured with refresh
token rotation and reuse detection (tests/oidc_provider). The SDK talks to both through its
generic OIDC provider built by issuer discovery, and must behave the same way: if the sandbox
drifted from real server behaviour, these tests would disagree.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import attrs
import pytest

from aiofinaccess import (
    ClientCredentials,
    Provider,
    ReauthorizationRequired,
    SessionManager,
    TokenSet,
    TokenState,
)
from aiofinaccess.errors import InvalidClientError, OAuthError
from aiofinaccess.oauth import discover
from aiofinaccess.sandbox import headless_login as sandbox_login
from aiofinaccess.sandbox import run_sandbox
from tests.support import oidc_harness

USER = "alice"


@attrs.frozen
class Idp:
    name: str
    provider: Provider
    credentials: ClientCredentials
    redirect_uri: str
    login: Callable[[aiohttp.ClientSession, str], Awaitable[str]]


@pytest.fixture(params=["sandbox", "oidc-provider"])
async def idp(request: pytest.FixtureRequest) -> AsyncIterator[Idp]:
    async with aiohttp.ClientSession() as session:
        if request.param == "sandbox":
            async with run_sandbox() as sandbox:
                provider = await discover(session, sandbox.issuer, name="idp")
                config = sandbox.config

                async def login(browser: aiohttp.ClientSession, url: str) -> str:
                    return str(await sandbox_login(browser, url, USER, config.everifin_users[USER]))

                credentials = ClientCredentials(
                    config.everifin_client_id, config.everifin_client_secret
                )
                yield Idp("sandbox", provider, credentials, "http://127.0.0.1/callback", login)
            return
        if oidc_harness.ensure_installed() is None:
            if os.environ.get("CI"):
                pytest.fail("node and npm are required in CI")
            pytest.skip("node and npm are not installed")
        async with oidc_harness.running_oidc_provider() as oidc:
            provider = await discover(session, oidc.issuer, name="idp")
            yield Idp(
                "oidc-provider",
                provider,
                ClientCredentials(oidc_harness.CLIENT_ID, oidc_harness.CLIENT_SECRET),
                oidc_harness.REDIRECT_URI,
                oidc_harness.headless_login,
            )


@pytest.fixture
async def manager(idp: Idp) -> AsyncIterator[SessionManager]:
    async with SessionManager() as manager:
        manager.register(idp.provider, idp.credentials)
        yield manager


async def connect(idp: Idp, manager: SessionManager) -> tuple[TokenSet, str]:
    request = manager.authorization_request("idp", idp.redirect_uri, scopes=("openid",))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        callback = await idp.login(browser, str(request.url))
    token_set = await manager.complete_authorization("idp", USER, callback, request)
    return token_set, callback


async def test_code_exchange_and_rotation(idp: Idp, manager: SessionManager) -> None:
    """Both servers issue a refresh token and rotate it on every refresh."""
    first, _ = await connect(idp, manager)
    second = await manager.refresh("idp", USER)
    third = await manager.refresh("idp", USER)
    assert first.refresh_token is not None
    assert first.id_token is not None
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert len({first.access_token, second.access_token, third.access_token}) == 3


async def test_replaying_a_rotated_refresh_token_kills_the_grant(
    idp: Idp, manager: SessionManager
) -> None:
    """A replay is invalid_grant, and afterwards the newest refresh token is dead too."""
    first, _ = await connect(idp, manager)
    await manager.refresh("idp", USER)
    assert first.refresh_token is not None
    with pytest.raises(ReauthorizationRequired) as replay:
        await manager.oauth("idp").refresh(first.refresh_token)
    assert replay.value.cause is not None
    assert replay.value.cause.code == "invalid_grant"
    with pytest.raises(ReauthorizationRequired) as newest:
        await manager.refresh("idp", USER)
    assert newest.value.reason == "invalid_grant"
    assert manager.state("idp", USER) is TokenState.REAUTH_REQUIRED


async def test_an_authorization_code_works_once(idp: Idp, manager: SessionManager) -> None:
    """Exchanging the same code again is refused with invalid_grant."""
    request = manager.authorization_request("idp", idp.redirect_uri, scopes=("openid",))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        callback = await idp.login(browser, str(request.url))
    await manager.complete_authorization("idp", USER, callback, request)
    with pytest.raises(OAuthError) as info:
        await manager.complete_authorization("idp", "someone-else", callback, request)
    assert info.value.error == "invalid_grant"


async def test_concurrent_refreshes_share_one_request(idp: Idp, manager: SessionManager) -> None:
    """50 concurrent refreshes get one new token set, and the grant stays alive."""
    await connect(idp, manager)
    results = await asyncio.gather(*(manager.refresh("idp", USER) for _ in range(50)))
    assert len({result.refresh_token for result in results}) == 1
    # Had any caller replayed the old refresh token, the server would have killed the grant.
    after = await manager.refresh("idp", USER)
    assert after.refresh_token not in {result.refresh_token for result in results}


async def test_a_revoked_refresh_token_needs_reauthorization(
    idp: Idp, manager: SessionManager
) -> None:
    """RFC 7009 revocation through the discovered endpoint."""
    first, _ = await connect(idp, manager)
    await manager.revoke("idp", USER)
    assert first.refresh_token is not None
    with pytest.raises(ReauthorizationRequired):
        await manager.oauth("idp").refresh(first.refresh_token)


async def test_a_wrong_client_secret_is_invalid_client(idp: Idp) -> None:
    """Both answer 401 and the SDK types it."""
    async with SessionManager() as manager:
        manager.register(idp.provider, ClientCredentials(idp.credentials.client_id, "wrong-secret"))
        with pytest.raises(InvalidClientError):
            await connect(idp, manager)
