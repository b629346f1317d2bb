"""Attack: the API host (hostile, compromised, or just redirecting) sends the client elsewhere.

A bank token must only ever reach the provider's API origin(s): never another origin on the
first request, and never on a redirect hop (aiohttp runs client middlewares again on every
hop and strips ``Authorization`` across origins; a middleware that puts it back leaks it).

Real servers on different ports of 127.0.0.1 are different origins (RFC 6454: scheme, host,
port). The *API host* is the fake provider (token endpoint) plus routes that answer 302 to
the *other origin*, which records the headers of every request it receives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from aiofinaccess import (
    ApiClient,
    ApiError,
    BearerAuth,
    ClientCredentials,
    Endpoint,
    Everifin,
    FinApi,
    Oidc,
    SessionManager,
)
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.everifin import BankConnect
from aiofinaccess.finapi import Users
from aiofinaccess.oauth.transport import HttpRequest, send
from tests.support.fake_provider import CLIENT_ID, CLIENT_SECRET, USERS, FakeProvider


@attrs.define
class Hosts:
    api: str  # the provider's API origin (and its token endpoint)
    other: str  # any other origin
    seen: list[dict[str, str]]  # headers of every request the other origin received
    api_auth: list[str | None]  # Authorization of every redirect-target request on the API


@pytest.fixture
async def hosts() -> AsyncIterator[Hosts]:
    seen: list[dict[str, str]] = []
    api_auth: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"id": "x"})

    other_app = web.Application()
    other_app.router.add_route("*", "/{tail:.*}", record)
    other = TestServer(other_app, host="127.0.0.1")
    await other.start_server()
    other_url = str(other.make_url("")).rstrip("/")

    fake = FakeProvider()
    api_app = fake.app()  # token endpoints first: they win over the catch-alls below

    async def echo(request: web.Request) -> web.Response:
        api_auth.append(request.headers.get("Authorization"))
        return web.json_response({"ok": True})

    async def same_origin_hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    async def to_other(request: web.Request) -> web.Response:
        raise web.HTTPFound(other_url + request.path)

    api_app.router.add_get("/echo", echo)
    api_app.router.add_get("/hop", same_origin_hop)
    api_app.router.add_route("*", "/{tail:.*}", to_other)
    api = TestServer(api_app, host="127.0.0.1")
    await api.start_server()
    fake.base_url = str(api.make_url("")).rstrip("/")
    try:
        yield Hosts(fake.base_url, other_url, seen, api_auth)
    finally:
        await api.close()
        await other.close()


def _bearers(hosts: Hosts) -> list[str]:
    return [h["Authorization"] for h in hosts.seen if "Authorization" in h]


async def _kc_manager(hosts: Hosts, **extra: object) -> SessionManager:
    manager = SessionManager()
    provider = Oidc.keycloak(hosts.api, "test", name="kc", api_url=hosts.api)
    manager.register(attrs.evolve(provider, **extra), ClientCredentials(CLIENT_ID, CLIENT_SECRET))
    await manager.login_with_password("kc", "alice", USERS["alice"])
    return manager


async def test_bearer_auth_redirect_to_another_origin_never_carries_the_token(
    hosts: Hosts,
) -> None:
    """An API answering 302 to another origin does not hand that origin the user's token."""
    async with await _kc_manager(hosts) as manager:
        auth = BearerAuth(manager, "kc", "alice")
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(hosts.api + "/accounts") as response,
        ):
            assert response.status == 200  # the redirect was followed...
    assert len(hosts.seen) == 1  # ...to the other origin...
    assert _bearers(hosts) == []  # ...without the token


async def test_bearer_auth_first_request_to_another_origin_gets_no_token(hosts: Hosts) -> None:
    """A session with the middleware that also talks to another site never sends it the token."""
    async with await _kc_manager(hosts) as manager:
        auth = BearerAuth(manager, "kc", "alice")
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(hosts.other + "/collect") as response,
        ):
            assert response.status == 200
    assert len(hosts.seen) == 1
    assert _bearers(hosts) == []


async def test_bearer_auth_same_origin_redirect_keeps_the_token(hosts: Hosts) -> None:
    """A redirect within the API origin still carries the token (the binding is not a ban)."""
    async with await _kc_manager(hosts) as manager:
        auth = BearerAuth(manager, "kc", "alice")
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(hosts.api + "/hop") as response,
        ):
            assert response.status == 200
    assert len(hosts.api_auth) == 1
    assert (hosts.api_auth[0] or "").startswith("Bearer ")


async def test_an_extra_trusted_origin_gets_the_token(hosts: Hosts) -> None:
    """An origin the app trusts explicitly (``Provider.extra_api_origins``) gets the token."""
    async with await _kc_manager(hosts, extra_api_origins=(hosts.other,)) as manager:
        auth = BearerAuth(manager, "kc", "alice")
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(hosts.api + "/accounts") as response,
        ):
            assert response.status == 200
    assert len(_bearers(hosts)) == 1


async def test_bearer_auth_without_any_api_origin_fails_at_construction(hosts: Hosts) -> None:
    """A provider with no API origin cannot say where its token may go: refused up front."""
    async with SessionManager() as manager:
        manager.register(
            Oidc.keycloak(hosts.api, "test", name="kc"), ClientCredentials(CLIENT_ID, CLIENT_SECRET)
        )
        with pytest.raises(ConfigurationError, match="API origin"):
            BearerAuth(manager, "kc", "alice")


async def test_pipeline_redirect_to_another_origin_is_not_followed(hosts: Hosts) -> None:
    """The resource modules (finAPI users) never follow an API redirect to another origin."""
    async with SessionManager() as manager:
        manager.register(FinApi.at(hosts.api), ClientCredentials(CLIENT_ID, CLIENT_SECRET))
        await manager.login_with_password("finapi", "alice", USERS["alice"])
        with pytest.raises(ApiError) as caught:
            await Users(manager).get("alice")
        assert caught.value.status == 302
    assert hosts.seen == []


async def test_bankconnect_redirect_to_another_origin_is_not_followed(hosts: Hosts) -> None:
    """Everifin BankConnect (through the pipeline) does not follow a redirect either."""
    async with SessionManager() as manager:
        provider = Everifin.at(hosts.api, hosts.api, realm="test", api_prefix="/v1")
        manager.register(provider, ClientCredentials(CLIENT_ID, CLIENT_SECRET))
        await manager.login_with_password("everifin", "alice", USERS["alice"])
        with pytest.raises(ApiError) as caught:
            await BankConnect(manager).accounts("alice")
        assert caught.value.status == 302
    assert hosts.seen == []


async def test_pipeline_base_url_on_another_origin_never_gets_the_token(hosts: Hosts) -> None:
    """An ``ApiClient`` pointed at another origin refuses instead of sending it the token."""
    async with SessionManager() as manager:
        manager.register(FinApi.at(hosts.api), ClientCredentials(CLIENT_ID, CLIENT_SECRET))
        await manager.login_with_password("finapi", "alice", USERS["alice"])

        async def call_other_origin() -> None:
            client = ApiClient(manager, "finapi", base_url=hosts.other)
            await client.call(Endpoint("GET", "/users"), subject="alice")

        with pytest.raises(ConfigurationError, match="API origin"):
            await call_other_origin()
    assert _bearers(hosts) == []


async def test_sdk_requests_never_follow_redirects(hosts: Hosts) -> None:
    """Every SDK request (token, revocation, API) goes through ``send``, which never follows."""
    async with aiohttp.ClientSession() as session:
        response = await send(session, HttpRequest("GET", URL(hosts.api + "/anything")))
    assert response.status == 302
    assert hosts.seen == []
