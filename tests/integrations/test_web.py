"""aiofinaccess.integrations.web against the sandbox: connect, callback once, typed errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography.fernet import Fernet
from yarl import URL

from aiofinaccess import (
    AuthorizationFlowError,
    ClientCredentials,
    Everifin,
    MemoryStore,
    SessionManager,
    SQLiteStore,
    TokenKey,
    TokenState,
)
from aiofinaccess.errors import AuthorizationDenied, ConfigurationError, StateMismatchError
from aiofinaccess.everifin import BankConnect
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.integrations.web import Connected, ConnectFlow, ExchangeFailed, WebConnect
from aiofinaccess.sandbox import Sandbox, headless_login
from aiofinaccess.stores import FernetCodec, TokenStore
from aiofinaccess.stores.codec import JsonCodec
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import free_port, running_redis

ALICE = TokenKey("everifin", "alice")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@attrs.frozen
class App:
    """One app worker under test: its URL, manager, and what its hooks saw."""

    url: URL
    manager: SessionManager
    connector: WebConnect
    connected: list[Connected]
    errors: list[AuthorizationFlowError]


def user_from_header(request: web.Request) -> str:
    """The tests' notion of a logged-in user: a header (sync, to cover sync callables)."""
    user = request.headers.get("X-User")
    if not user:
        raise web.HTTPUnauthorized
    return user


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[URL]:
    """Serve ``app`` on a free loopback port; yield its base URL."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield URL(f"http://{host}:{port}")
    finally:
        await runner.cleanup()


@asynccontextmanager
async def sandbox_manager(
    sandbox: Sandbox, store: TokenStore | None
) -> AsyncIterator[SessionManager]:
    async with SessionManager(store=store) as manager:
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        yield manager


@asynccontextmanager
async def running_app(sandbox: Sandbox, store: TokenStore, **options: Any) -> AsyncIterator[App]:
    """A web app with the connect routes (hooks that record) and its own open manager."""
    async with sandbox_manager(sandbox, store) as manager:
        app = web.Application()
        connected: list[Connected] = []
        errors: list[AuthorizationFlowError] = []

        async def on_connected(request: web.Request, done: Connected) -> web.Response:
            connected.append(done)
            raise web.HTTPFound(done.next_url)

        async def on_error(request: web.Request, error: AuthorizationFlowError) -> web.Response:
            errors.append(error)
            return web.Response(status=400, text=type(error).__name__)

        connector = WebConnect(
            ConnectFlow(manager, "everifin", success_url="/done", **options),
            user_id=user_from_header,
            on_connected=on_connected,
            on_error=on_error,
        ).setup(app)
        async with serve(app) as url:
            yield App(url, manager, connector, connected, errors)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis_url() -> AsyncIterator[str]:
    async with running_redis() as url:
        yield url


def make_store(request: pytest.FixtureRequest, kind: str, path: Path) -> TokenStore:
    """A fresh store of ``kind``; stores of one test made with the same path share data."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(path)
    prefix = f"web-{hashlib.sha256(str(path).encode()).hexdigest()[:12]}:"
    return RedisStore(request.getfixturevalue("redis_url"), prefix=prefix)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TokenStore:
    return make_store(request, request.param, tmp_path / "tokens.db")


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def start(
    browser: aiohttp.ClientSession, app: App, user: str = "alice", path: str = ""
) -> URL:
    """GET the connect route; return the provider's authorization URL it redirects to."""
    target = app.url.with_path("/connect/everifin") if not path else app.url.join(URL(path))
    async with browser.get(target, headers={"X-User": user}, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        assert response.headers["Cache-Control"] == "no-store"
        return URL(response.headers["Location"])


async def call(browser: aiohttp.ClientSession, url: URL, user: str = "alice") -> tuple[int, str]:
    """GET a callback URL as ``user``; return the status and the Location (or body)."""
    async with browser.get(url, headers={"X-User": user}, allow_redirects=False) as response:
        return response.status, response.headers.get("Location") or await response.text()


async def login_alice(browser: aiohttp.ClientSession, app: App) -> URL:
    """Connect as the app's user alice, sign in as alice; return the callback URL."""
    return await headless_login(browser, await start(browser, app), "alice", "alice-password")


def exchanges(sandbox: Sandbox) -> int:
    return int(sandbox.stats().get("token_requests", {}).get("everifin_authorization_code", 0))


async def test_connect_login_callback_stores_tokens_and_a_reload_does_not_exchange_again(
    sandbox: Sandbox, store: TokenStore, browser: aiohttp.ClientSession
) -> None:
    async with running_app(sandbox, store) as app:
        authorize = await start(browser, app, path="/connect/everifin?next=/accounts?tab=1")
        assert authorize.query["redirect_uri"] == str(app.url / "connect/everifin/callback")
        assert authorize.query["code_challenge_method"] == "S256"
        callback = await headless_login(browser, authorize, "alice", "alice-password")

        assert await call(browser, callback) == (302, "/accounts?tab=1")
        assert app.manager.state("everifin", "alice") is TokenState.FRESH
        assert await store.get(ALICE) is not None
        assert exchanges(sandbox) == 1

        for _ in range(2):  # the browser reloads the callback URL
            assert await call(browser, callback) == (302, "/accounts?tab=1")
        assert exchanges(sandbox) == 1
        assert sandbox.stats().get("sessions_killed", 0) == 0
        assert [c.replayed for c in app.connected] == [False, True, True]
        assert {(c.subject, c.provider) for c in app.connected} == {("alice", "everifin")}
        assert await BankConnect(app.manager).accounts("alice")  # still connected
        assert app.errors == []


async def test_concurrent_duplicate_callbacks_exchange_once(
    sandbox: Sandbox, store: TokenStore, browser: aiohttp.ClientSession
) -> None:
    async with running_app(sandbox, store) as app:
        callback = await login_alice(browser, app)
        results = await asyncio.gather(*(call(browser, callback) for _ in range(5)))
        assert results == [(302, "/done")] * 5
        assert exchanges(sandbox) == 1
        assert sorted(c.replayed for c in app.connected).count(False) == 1


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_two_workers_sharing_a_store_exchange_once(
    sandbox: Sandbox,
    tmp_path: Path,
    browser: aiohttp.ClientSession,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    """The cross-process path: no shared memory, only the store decides who exchanges."""
    path = tmp_path / "shared.db"
    async with (
        running_app(sandbox, make_store(request, kind, path)) as first,
        running_app(sandbox, make_store(request, kind, path)) as second,
    ):
        callback = await login_alice(browser, first)
        on_second = second.url.with_path(callback.path).with_query(callback.query)
        results = await asyncio.gather(
            call(browser, callback), call(browser, on_second), call(browser, on_second)
        )
        assert list(results) == [(302, "/done")] * 3
        assert exchanges(sandbox) == 1
        assert sandbox.stats().get("sessions_killed", 0) == 0
        replayed = [c.replayed for c in first.connected + second.connected]
        assert replayed.count(False) == 1


async def test_forged_state_is_a_state_mismatch(
    sandbox: Sandbox, store: TokenStore, browser: aiohttp.ClientSession
) -> None:
    async with running_app(sandbox, store) as app:
        callback = await login_alice(browser, app)
        forged = callback.update_query(state="forged-state")
        assert await call(browser, forged) == (400, "StateMismatchError")
        assert await call(browser, callback.without_query_params("state")) == (
            400,
            "StateMismatchError",
        )
        assert [type(e) for e in app.errors] == [StateMismatchError] * 2
        assert exchanges(sandbox) == 0
        assert await call(browser, callback) == (302, "/done")  # the real one still works


async def test_a_state_issued_to_another_user_is_refused_and_not_spent(
    sandbox: Sandbox, store: TokenStore, browser: aiohttp.ClientSession
) -> None:
    """Login CSRF: alice's callback delivered to bob's session must not connect bob."""
    async with running_app(sandbox, store) as app:
        callback = await login_alice(browser, app)
        assert await call(browser, callback, user="bob") == (400, "StateMismatchError")
        assert "another user" in str(app.errors[0])
        assert exchanges(sandbox) == 0
        assert await call(browser, callback) == (302, "/done")
        assert await call(browser, callback, user="bob") == (400, "StateMismatchError")
        assert exchanges(sandbox) == 1
        assert await store.get(TokenKey("everifin", "bob")) is None


async def test_access_denied_reaches_the_app_typed_and_again_on_reload(
    sandbox: Sandbox, store: TokenStore, browser: aiohttp.ClientSession
) -> None:
    async with running_app(sandbox, store) as app:
        callback = await headless_login(browser, await start(browser, app), "", "", cancel=True)
        assert callback.query["error"] == "access_denied"
        assert await call(browser, callback) == (400, "AuthorizationDenied")
        assert await call(browser, callback) == (400, "AuthorizationDenied")
        denied = app.errors
        assert all(isinstance(e, AuthorizationDenied) for e in denied)
        assert [e.error for e in denied if isinstance(e, AuthorizationDenied)] == [
            "access_denied"
        ] * 2
        assert exchanges(sandbox) == 0
        assert await store.get(ALICE) is None


async def test_an_expired_pending_state_is_refused(
    sandbox: Sandbox, store: TokenStore, browser: aiohttp.ClientSession
) -> None:
    async with running_app(sandbox, store, pending_ttl=0.3) as app:
        callback = await login_alice(browser, app)
        await asyncio.sleep(0.5)
        assert await call(browser, callback) == (400, "StateMismatchError")
        assert "unknown or expired" in str(app.errors[0])
        assert exchanges(sandbox) == 0


async def test_a_failed_exchange_is_typed_and_a_reload_does_not_retry_it(
    sandbox: Sandbox, store: TokenStore, browser: aiohttp.ClientSession
) -> None:
    async with running_app(sandbox, store) as app:
        callback = await login_alice(browser, app)
        sandbox.advance(sandbox.config.code_ttl + 1)  # the code expires at the provider
        assert await call(browser, callback) == (400, "ExchangeFailed")
        assert await call(browser, callback) == (400, "ExchangeFailed")
        first, again = app.errors
        assert isinstance(first, ExchangeFailed)
        assert first.__cause__ is not None  # the live error, for the app's logs
        assert "OAuthError" in str(first) or "Reauthorization" in str(first)
        assert str(again) == str(first)
        assert exchanges(sandbox) == 1


async def test_next_must_be_a_local_path(sandbox: Sandbox, browser: aiohttp.ClientSession) -> None:
    """``?next=`` cannot turn the callback into an open redirect."""
    async with running_app(sandbox, MemoryStore()) as app:
        for target in (
            "//evil.example/x",
            "https://evil.example/",
            "/\\evil.example",
            "/%09/evil.example",
        ):
            authorize = await start(browser, app, path=f"/connect/everifin?next={target}")
            callback = await headless_login(browser, authorize, "alice", "alice-password")
            assert await call(browser, callback) == (302, "/done")


async def test_anonymous_users_get_the_apps_answer(
    sandbox: Sandbox, browser: aiohttp.ClientSession
) -> None:
    async with (
        running_app(sandbox, MemoryStore()) as app,
        browser.get(app.url / "connect/everifin", allow_redirects=False) as response,
    ):
        assert response.status == 401


async def test_the_default_hooks_redirect_or_answer_400(
    sandbox: Sandbox, browser: aiohttp.ClientSession
) -> None:
    async def user_id(request: web.Request) -> str:  # async callables work too
        return "alice"

    async with sandbox_manager(sandbox, None) as manager:
        app = web.Application()
        WebConnect(ConnectFlow(manager, "everifin"), user_id=user_id, path="/bank/").setup(app)
        async with serve(app) as base:
            async with browser.get(base / "bank", allow_redirects=False) as response:
                authorize = URL(response.headers["Location"])
            callback = await headless_login(browser, authorize, "alice", "alice-password")
            assert callback.path == "/bank/callback"
            async with browser.get(callback, allow_redirects=False) as response:
                assert (response.status, response.headers["Location"]) == (302, "/")
            async with browser.get(callback.update_query(state="x")) as response:
                assert response.status == 400
                assert "unknown or expired" in await response.text()


async def test_pending_records_are_encrypted_with_the_stores_codec(
    sandbox: Sandbox, tmp_path: Path, browser: aiohttp.ClientSession
) -> None:
    """With a FernetCodec the PKCE verifier never lies in the file in the clear."""
    path = tmp_path / "tokens.db"
    store = SQLiteStore(path, codec=FernetCodec([Fernet.generate_key()]))
    async with running_app(sandbox, store) as app:
        await start(browser, app)
        with closing(sqlite3.connect(path)) as db, db:
            rows = db.execute("SELECT state, data FROM pending_authorizations").fetchall()
        assert len(rows) == 2  # the request and its claim
        for state, data in rows:
            assert state.startswith("web:everifin:")
            assert bytes(data).startswith(b"gAAAAA")  # a Fernet token
            with pytest.raises(Exception, match="not JSON"):
                JsonCodec().decode(bytes(data), kind="pending", key=state)
        request_key = next(state for state, _ in rows if ":req:" in state)
        record = await store.get_pending(request_key)
        assert record is not None
        assert "code_verifier" in json.loads(record)["request"]


async def test_a_store_without_pending_support_is_refused() -> None:
    class Plain:  # a token store of old, without the pending-authorization methods
        async def get(self, key: TokenKey) -> None: ...

    async with SessionManager() as manager:
        manager.register(Everifin.stage(), ClientCredentials("id", "secret"))
        with pytest.raises(ConfigurationError, match="pending"):
            ConnectFlow(manager, "everifin", store=Plain())  # type: ignore[arg-type]


async def test_the_starlette_example_runs_with_one_command(sandbox: Sandbox) -> None:
    """``examples/starlette_app.py`` as a user runs it: lifespan, connect, reload, disconnect."""
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "AIOFINACCESS_SANDBOX_URL": sandbox.base_url}
    script = EXAMPLES / "starlette_app.py"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env, stdout=asyncio.subprocess.DEVNULL
    )
    base = URL(f"http://127.0.0.1:{port}")
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with asyncio.timeout(30):
                while True:  # until uvicorn listens
                    try:
                        async with browser.get(base) as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
            connect = base / "connect" / "everifin"
            async with browser.get(connect, allow_redirects=False) as response:
                authorize = URL(response.headers["Location"])
            callback = await headless_login(browser, authorize, "alice", "alice-password")
            for _ in range(2):  # the callback, then a reload of it
                async with browser.get(callback) as response:
                    assert response.url == base / ""
                    assert "id='accounts'" in await response.text()
            assert exchanges(sandbox) == 1
            # A browser form sends its page's Origin; the route refuses any other.
            origin = {"Origin": str(base.origin())}
            async with browser.post(connect / "disconnect", headers=origin) as response:
                assert "No bank connected" in await response.text()
            assert sandbox.stats()["token_requests"]["everifin_revoke"] == 1
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            await process.wait()
