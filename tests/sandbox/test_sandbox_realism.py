"""The sandbox refuses what production refuses, and the SDK meets production's shapes.

Registered redirect URIs (Keycloak's exact match, its message), the Web Form's return to
``redirectUrl``, finAPI's 423 as ``LockedError``, a finAPI base path behind a proxy, RFC 8414
discovery against a real server (django-oauth-toolkit) and authorization URLs as ``str``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from yarl import URL

from aiofinaccess import ClientCredentials, ConnectFlow, FinApi, SessionManager
from aiofinaccess.errors import ConfigurationError, LockedError
from aiofinaccess.finapi import BankConnectionImport, NewUser, Users, WebForms
from aiofinaccess.oauth import discover
from aiofinaccess.oauth.authorization import build_authorization_request
from aiofinaccess.sandbox import Sandbox, SandboxConfig, headless_login
from aiofinaccess.sandbox.redirects import redirect_allowed

ROOT = Path(__file__).resolve().parents[2]
APP_CALLBACK = "https://app.example.com/callback"


async def _authorize(http: aiohttp.ClientSession, manager: SessionManager, redirect: str) -> str:
    """GET the sandbox's authorization URL for ``redirect``; return status and body."""
    request = manager.authorization_request("everifin", redirect)
    async with http.get(request.url, allow_redirects=False) as response:
        return f"{response.status} {await response.text()} {response.headers.get('Location')}"


# -- redirect URIs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("https://app.example.com/callback", True),
        ("https://app.example.com/callback/", False),  # exact: no trailing slash
        ("https://app.example.com/callback?x=1", False),
        ("https://app.example.com/callbackx", False),
        ("https://evil.example/cb", False),
        ("/callback", False),  # relative
        ("https://app.example.com/callback#frag", False),
        ("http://127.0.0.1:53121/cli/callback", True),  # loopback: any port (RFC 8252)
        ("http://localhost:8000/cli/anything", True),
        ("http://127.0.0.1.evil.example/cli/x", False),
        ("https://127.0.0.1:5/cli/x", False),  # the loopback rule is for http only
    ],
)
def test_redirect_matching_is_keycloaks(uri: str, allowed: bool) -> None:
    """Exact match, a trailing ``*`` by prefix, loopback on any port."""
    registered = (APP_CALLBACK, "http://127.0.0.1/cli/*", "http://localhost/cli/*")
    assert redirect_allowed(uri, registered) is allowed


async def test_an_unregistered_redirect_uri_is_refused_as_keycloak_does(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """``https://evil.example/cb`` gets Keycloak's 400 page and no redirect (it used to log in)."""
    async with aiohttp.ClientSession() as http:
        answer = await _authorize(http, sandbox_manager, "https://evil.example/cb")
    assert answer == "400 Invalid parameter: redirect_uri None"
    assert sandbox.stats()["redirect_uri"]["refused"] == 1


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(everifin_redirect_uris=(APP_CALLBACK,))])
async def test_a_registered_https_redirect_uri_must_match_exactly(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """Registered exactly: accepted; a longer path or a loopback URI: refused."""
    async with aiohttp.ClientSession() as http:
        assert (await _authorize(http, sandbox_manager, APP_CALLBACK)).startswith("200 ")
        for other in (APP_CALLBACK + "/x", "http://127.0.0.1:8000/callback"):
            assert await _authorize(http, sandbox_manager, other) == (
                "400 Invalid parameter: redirect_uri None"
            )
        request = sandbox_manager.authorization_request("everifin", APP_CALLBACK)
        callback = await headless_login(http, request.url, "alice", "alice-password")
    assert str(callback).startswith(APP_CALLBACK + "?")


async def test_a_relative_redirect_uri_is_refused_before_leaving_the_app(
    sandbox_manager: SessionManager, sandbox: Sandbox
) -> None:
    """``flow.begin("u1", "/callback")`` used to reach the provider; now it is a usage error."""
    flow = ConnectFlow(sandbox_manager, "everifin")
    with pytest.raises(ConfigurationError, match="absolute URL"):
        await flow.begin("u1", "/callback")
    with pytest.raises(ConfigurationError, match="absolute URL"):
        sandbox_manager.authorization_request("everifin", "callback")
    # and the sandbox itself refuses one sent by a client without that check
    query = {"client_id": sandbox.config.everifin_client_id, "response_type": "code"}
    url = URL(sandbox.issuer + "/protocol/openid-connect/auth").with_query(
        {**query, "redirect_uri": "/callback"}
    )
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as response:
        assert (response.status, await response.text()) == (400, "Invalid parameter: redirect_uri")


async def test_sandbox_cli_registers_redirect_uris_and_shows_its_clients() -> None:
    """``--redirect-uri`` replaces the loopback default; the clients are printed and served."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiofinaccess", "sandbox", "--redirect-uri", APP_CALLBACK,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        lines = [(await asyncio.wait_for(process.stdout.readline(), 20)).decode() for _ in range(7)]
        base = lines[0].strip()
        printed = "".join(lines)
        shown = (
            "finapi-sandbox-client", "finapi-sandbox-secret", "everifin-sandbox-client",
            "everifin-sandbox-secret", f"redirect URIs {APP_CALLBACK}\n", "alice/",
        )  # fmt: skip
        assert [text for text in shown if text not in printed] == []
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/") as response:
                index = await response.json()
            assert index["everifin"]["redirect_uris"] == [APP_CALLBACK]
            assert index["finapi"]["client_secret"] == "finapi-sandbox-secret"
            async with SessionManager() as manager:
                finapi = index["finapi"]
                manager.register(
                    FinApi.at(base), ClientCredentials(finapi["client_id"], finapi["client_secret"])
                )
                assert await manager.access_token("finapi")
    finally:
        process.terminate()
        await process.wait()


# -- finAPI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["complete", "abort"])
async def test_web_form_sends_the_user_back_to_redirect_url(
    sandbox: Sandbox, sandbox_manager: SessionManager, action: str
) -> None:
    """On completion and on abort, as finAPI does (the page used to stay put)."""
    await Users(sandbox_manager).create_and_login(NewUser(id="alice", password="s3cret-pw"))
    back = "http://127.0.0.1:9/connected"
    form = await WebForms(sandbox_manager).import_bank_connection(
        "alice", BankConnectionImport(redirect_url=back)
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(form.url) as page:
            assert page.status == 200
        async with http.post(form.url, data={"action": action}, allow_redirects=False) as done:
            assert (done.status, done.headers.get("Location")) == (303, back)
    finished = await WebForms(sandbox_manager).get("alice", form.id)
    assert finished.status == ("COMPLETED" if action == "complete" else "ABORTED")


@pytest.mark.parametrize(("action", "to"), [("complete", "ok"), ("abort", "error")])
async def test_web_form_page_sends_the_user_to_its_return_parameters(
    sandbox: Sandbox, sandbox_manager: SessionManager, action: str, to: str
) -> None:
    """The spec's ``redirectUrl`` and ``errorRedirectUrl`` on the form's URL (issue 24)."""
    await Users(sandbox_manager).create_and_login(NewUser(id="alice", password="s3cret-pw"))
    form = await WebForms(sandbox_manager).import_bank_connection("alice")
    ok, error = "http://127.0.0.1:9/ok?state=1", "http://127.0.0.1:9/error"
    url = URL(form.url).update_query(redirectUrl=ok, errorRedirectUrl=error)
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as page:
            assert "?redirectUrl=" in await page.text()  # the buttons keep them
        foreign = URL(form.url).update_query(redirectUrl="http://evil.example/")
        async with http.post(foreign, data={"action": action}) as refused:
            assert refused.status == 400
        async with http.post(url, data={"action": action}, allow_redirects=False) as done:
            expected = ok if to == "ok" else error
            assert (done.status, done.headers.get("Location")) == (303, expected)


async def test_locked_finapi_user_is_a_locked_error(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """finAPI's 423 from the token endpoint was a plain ApiError(423)."""
    await Users(sandbox_manager).create(NewUser(id="alice", password="s3cret-pw"))
    for _ in range(sandbox.config.finapi_max_login_attempts):
        with pytest.raises(Exception, match=r"400|401|403"):
            await sandbox_manager.login_with_password("finapi", "alice", "wrong-password")
    with pytest.raises(LockedError) as info:
        await sandbox_manager.login_with_password("finapi", "alice", "s3cret-pw")
    assert (info.value.status, info.value.code) == (423, "LOCKED")


def test_finapi_base_path_is_kept() -> None:
    """``FinApi.at("http://h/finapi")`` dropped ``/finapi``."""
    provider = FinApi.at("http://127.0.0.1:8080/finapi/")
    assert str(provider.token_url) == "http://127.0.0.1:8080/finapi/api/v2/oauth/token"
    assert str(provider.revocation_url) == "http://127.0.0.1:8080/finapi/api/v2/oauth/revoke"
    assert str(provider.api_url) == "http://127.0.0.1:8080/finapi/api/v2"
    v1 = FinApi.at("http://127.0.0.1:8080/finapi", api_version="v1")
    assert str(v1.token_url) == "http://127.0.0.1:8080/finapi/oauth/token"
    with pytest.raises(ConfigurationError, match="no query"):
        FinApi.at("http://127.0.0.1:8080/finapi?x=1")


@pytest_asyncio.fixture
async def proxy(sandbox: Sandbox) -> AsyncIterator[str]:
    """A reverse proxy serving the sandbox under ``/finapi`` (as an API gateway would)."""

    async def forward(request: web.Request) -> web.Response:
        target = sandbox.base_url + "/" + request.match_info["rest"]
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, URL(target).with_query(request.query),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                data=await request.read(),
            ) as answer,
        ):  # fmt: skip
            return web.Response(
                status=answer.status, body=await answer.read(),
                headers={"Content-Type": answer.headers.get("Content-Type", "text/plain")},
            )  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/finapi/{rest:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/finapi"
    finally:
        await runner.cleanup()


async def test_finapi_behind_a_proxy_path(sandbox: Sandbox, proxy: str) -> None:
    """Client token, user creation and the user's token, all through ``/finapi``."""
    config = sandbox.config
    async with SessionManager() as manager:
        credentials = ClientCredentials(config.finapi_client_id, config.finapi_client_secret)
        manager.register(FinApi.at(proxy), credentials)
        user = await Users(manager).create_and_login(NewUser(id="carol", password="s3cret-pw"))
        assert (await Users(manager).get(user.id)).id == "carol"
    assert sandbox.stats()["token_requests"]["finapi_client_credentials"] == 1


# -- discovery -----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def oauth_toolkit(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """django-oauth-toolkit, OIDC off: RFC 8414 metadata only. Fails if it is not installed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.oauth_toolkit_server", str(tmp_path / "dot.sqlite3"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line:
            error = (await process.stderr.read()).decode()
            pytest.fail(f"django-oauth-toolkit did not start: {error[-2000:]}")
        yield json.loads(line)
    finally:
        process.terminate()
        await process.wait()


async def test_discovery_falls_back_to_rfc8414(oauth_toolkit: dict[str, str]) -> None:
    """Only ``/.well-known/oauth-authorization-server/o`` exists; discovery finds it there."""
    issuer = oauth_toolkit["issuer"]
    async with SessionManager() as manager:
        session = manager.http_session()
        async with session.get(issuer + "/.well-known/openid-configuration") as response:
            assert response.status == 404  # the server really publishes no OIDC document
        provider = await discover(session, issuer, name="dot")
        assert str(provider.token_url) == issuer + "/token/"
        assert str(provider.authorization_url) == issuer + "/authorize/"
        manager.register(
            provider, ClientCredentials(oauth_toolkit["client_id"], oauth_toolkit["client_secret"])
        )
        token = await manager.access_token("dot")  # the discovered endpoint issues tokens
        assert len(token) >= 20


# -- authorization URLs --------------------------------------------------------------------------


async def test_authorization_urls_are_strings(sandbox_manager: SessionManager) -> None:
    """``urljoin(request.url, ...)`` raised on a yarl.URL; the URL object is still there."""
    request = sandbox_manager.authorization_request("everifin", "http://127.0.0.1/callback")
    assert isinstance(request.url, str)
    assert urljoin(request.url, "x").endswith("/protocol/openid-connect/x")
    assert request.yarl_url.query["redirect_uri"] == "http://127.0.0.1/callback"
    location = await ConnectFlow(sandbox_manager, "everifin").begin(
        "u1", "http://127.0.0.1/callback"
    )
    assert isinstance(location, str)
    assert URL(location).query["client_id"] == "everifin-sandbox-client"
    assert build_authorization_request(
        sandbox_manager.provider("everifin"), "c", "com.example.app:/cb"
    ).url.startswith("http")  # a native app's private-use scheme is absolute (RFC 8252 7.1)
