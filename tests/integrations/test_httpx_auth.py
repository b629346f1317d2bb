"""The httpx adapter against the sandbox (real HTTP) and a second, foreign local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web
from yarl import URL

from aiofinaccess import ClientCredentials, Oidc, Schedule, SessionManager, UsageError
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.integrations.httpx import HttpxAuth
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.oauth.providers import origin_of
from aiofinaccess.sandbox import Sandbox, headless_login
from tests.support.fake_provider import CLIENT_ID, CLIENT_SECRET, USERS, running_provider
from tests.support.fakes import FakeClock

USER = "alice"


@pytest.fixture
async def connected(sandbox: Sandbox, clock: FakeClock) -> AsyncIterator[SessionManager]:
    """A manager on a fake clock (so tokens can expire here too) with alice connected."""
    async with SessionManager(clock=clock, schedule=Schedule(enabled=False)) as manager:
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        request = manager.authorization_request("everifin", "http://127.0.0.1/callback")
        async with aiohttp.ClientSession() as browser:
            callback = await headless_login(browser, request.url, USER, "alice-password")
        await manager.complete_authorization("everifin", USER, str(callback), request)
        yield manager


def refreshes(sandbox: Sandbox) -> int:
    return int(sandbox.stats()["token_requests"].get("everifin_refresh_token", 0))


async def test_1000_concurrent_requests_on_an_expired_token_make_one_token_request(
    sandbox: Sandbox, connected: SessionManager, clock: FakeClock
) -> None:
    clock.advance(400)  # past the 300 s access token, here and at the sandbox
    sandbox.advance(400)
    auth = HttpxAuth(connected, "everifin", USER)
    # A thousand requests queue for a hundred connections: give the queue time.
    limits, timeout = httpx.Limits(max_connections=100), httpx.Timeout(120)
    async with httpx.AsyncClient(
        auth=auth, base_url=sandbox.api_url, limits=limits, timeout=timeout
    ) as client:
        responses = await asyncio.gather(*(client.get("/v1/accounts") for _ in range(1000)))
    assert {response.status_code for response in responses} == {200}
    assert len(responses[0].json()["data"]) == 3
    assert refreshes(sandbox) == 1
    assert sandbox.stats()["reuse_violations"] == 0


async def test_a_401_causes_one_renewal_and_one_replay(
    sandbox: Sandbox, connected: SessionManager
) -> None:
    seen: list[int] = []

    async def note(response: httpx.Response) -> None:
        seen.append(response.status_code)

    sandbox.advance(400)  # the sandbox refuses the token this manager still thinks fresh
    auth = HttpxAuth(connected, "everifin", USER)
    async with httpx.AsyncClient(
        auth=auth, base_url=sandbox.api_url, event_hooks={"response": [note]}
    ) as client:
        response = await client.get("/v1/accounts")
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]  # httpx keeps the first
        assert seen == [401, 200]
        assert refreshes(sandbox) == 1
        # Fifty requests that all get a 401 together: still one renewal, each replayed once.
        sandbox.advance(400)
        seen.clear()
        statuses = [
            r.status_code
            for r in await asyncio.gather(*(client.get("/v1/accounts") for _ in range(50)))
        ]
    assert set(statuses) == {200}
    assert sorted(seen) == [200] * 50 + [401] * 50
    assert refreshes(sandbox) == 2


@pytest.fixture
async def foreign() -> AsyncIterator[tuple[str, list[str | None]]]:
    """Two more origins on loopback: a trusted API host that redirects, and a foreign host.
    Yields the trusted host's URL and the Authorization headers each server saw."""
    seen: list[str | None] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(f"{request.host}{request.path} {request.headers.get('Authorization')}")
        return web.json_response({"ok": True})

    foreign_app = web.Application()
    foreign_app.router.add_get("/echo", echo)
    foreign_runner = web.AppRunner(foreign_app, access_log=None)
    await foreign_runner.setup()
    await web.TCPSite(foreign_runner, "127.0.0.1", 0).start()
    foreign_port = foreign_runner.addresses[0][1]

    async def away(request: web.Request) -> web.Response:
        seen.append(f"{request.host}{request.path} {request.headers.get('Authorization')}")
        raise web.HTTPFound(f"http://127.0.0.1:{foreign_port}/echo")

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    api_app = web.Application()
    api_app.router.add_get("/away", away)
    api_app.router.add_get("/hop", hop)
    api_app.router.add_get("/echo", echo)
    api_runner = web.AppRunner(api_app, access_log=None)
    await api_runner.setup()
    await web.TCPSite(api_runner, "127.0.0.1", 0).start()
    api_port = api_runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{api_port}", seen
    finally:
        await api_runner.cleanup()
        await foreign_runner.cleanup()


async def test_the_token_never_leaves_the_trusted_origins(
    connected: SessionManager, foreign: tuple[str, list[str | None]]
) -> None:
    api, seen = foreign
    token = await connected.access_token("everifin", USER)
    auth = HttpxAuth(connected, "everifin", USER, trusted_origins=[api])
    async with httpx.AsyncClient(auth=auth, follow_redirects=True) as client:
        # Same origin after a redirect: the token stays.
        assert (await client.get(f"{api}/hop")).status_code == 200
        # A redirect to another origin: httpx drops the header, and we never add it back.
        response = await client.get(f"{api}/away")
        assert response.status_code == 200
        foreign_host = response.url.netloc.decode()
        # A direct request to another origin: no token at all.
        assert (await client.get(f"http://{foreign_host}/echo")).status_code == 200
    api_host = api.removeprefix("http://")
    assert seen == [
        f"{api_host}/echo Bearer {token}",
        f"{api_host}/away Bearer {token}",
        f"{foreign_host}/echo None",
        f"{foreign_host}/echo None",
    ]
    # Without the app's say-so, its own API host is foreign too.
    untrusted = HttpxAuth(connected, "everifin", USER)
    async with httpx.AsyncClient(auth=untrusted) as client:
        await client.get(f"{api}/echo")
    assert seen[-1] == f"{api_host}/echo None"


async def test_origins_compare_scheme_host_and_port(connected: SessionManager) -> None:
    """Only the API origin itself: no other scheme, port, suffix, prefix or userinfo trick."""
    auth = HttpxAuth(connected, "everifin", USER, trusted_origins=["https://api.example.com"])
    token = await connected.access_token("everifin", USER)
    sent: dict[str, str | None] = {}
    for url in (
        "https://API.example.com:443/v1",
        "http://api.example.com/v1",
        "https://api.example.com:8443/v1",
        "https://api.example.com.evil.example/v1",
        "https://evil.example/https://api.example.com/",
        "https://api.example.com@evil.example/v1",
    ):
        flow = auth.async_auth_flow(httpx.Request("GET", url))
        sent[url] = (await anext(flow)).headers.get("Authorization")
        await flow.aclose()
    assert sent == {
        "https://API.example.com:443/v1": f"Bearer {token}",
        "http://api.example.com/v1": None,
        "https://api.example.com:8443/v1": None,
        "https://api.example.com.evil.example/v1": None,
        "https://evil.example/https://api.example.com/": None,
        "https://api.example.com@evil.example/v1": None,
    }


async def test_misuse_fails_early(connected: SessionManager) -> None:
    with pytest.raises(UsageError, match="not registered"):
        HttpxAuth(connected, "nope")
    with pytest.raises(ConfigurationError, match="is not an http"):
        HttpxAuth(connected, "everifin", USER, trusted_origins=["api.example.com"])
    everifin = connected.provider("everifin")
    assert everifin.api_origins() == {origin_of(URL(str(everifin.api_url)))}
    auth = HttpxAuth(connected, "everifin", USER)
    assert "alice" not in repr(auth)
    with pytest.raises(UsageError, match=r"httpx\.AsyncClient only"):
        next(auth.sync_auth_flow(httpx.Request("GET", "http://127.0.0.1:9/")))


async def test_a_second_401_is_returned_not_looped() -> None:
    """An API that refuses every token: two rounds (one renewal), then its 401 is returned."""
    async with running_provider() as provider, SessionManager() as manager:
        manager.register(
            Oidc.keycloak(provider.base_url, "test", name="kc"),
            ClientCredentials(CLIENT_ID, CLIENT_SECRET),
        )
        await manager.login_with_password("kc", "alice", USERS["alice"])
        provider.reject_all = True
        auth = HttpxAuth(manager, "kc", "alice", trusted_origins=[provider.base_url])
        async with httpx.AsyncClient(auth=auth) as client:
            response = await client.get(provider.base_url + "/api/resource")
    assert response.status_code == 401
    assert provider.resource_calls == 2
    assert provider.grants["refresh_token"] == 1
