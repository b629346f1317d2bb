"""End to end in a real headless browser: Debian's chromium, driven by Playwright for Python.

Against each example app (``examples/aiohttp_app.py``, ``examples/fastapi_app.py``) and the
sandbox: click connect, sign in on the sandbox's login page, land back on the app and see the
accounts; reload the callback URL and still see them (no second code exchange); disconnect.
Nothing is downloaded: Playwright launches ``/usr/bin/chromium`` (``.ci/run`` installs it).
Without chromium or Playwright the test is skipped on a laptop and fails when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from aiofinaccess import TokenKey
from aiofinaccess.sandbox import Sandbox
from tests.support.examples import load_example

CHROMIUM = Path("/usr/bin/chromium")
# Quiet and self-contained: no sandboxing a container cannot offer, no GPU, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def require_browser() -> Any:
    """Playwright's async API, or skip (fail in CI) when it or chromium is missing."""
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    async_api: Any = None
    try:
        from playwright import async_api  # noqa: PLC0415  (optional until CI installs it)
    except ImportError:
        problems.append("the playwright package is missing (pip install playwright)")
    if problems:
        reason = "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)
    return async_api


@asynccontextmanager
async def aiohttp_example(sandbox: Sandbox, _store: Path) -> AsyncIterator[tuple[str, Any]]:
    """The aiohttp example on a free port, with its manager open; yields (URL, manager)."""
    example = load_example("aiohttp_app")
    async with example.sandbox_manager(sandbox.base_url) as manager:
        runner = web.AppRunner(example.create_app(manager), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            yield f"http://{host}:{port}", manager
        finally:
            await runner.cleanup()


@asynccontextmanager
async def fastapi_example(sandbox: Sandbox, store: Path) -> AsyncIterator[tuple[str, Any]]:
    """The FastAPI example under uvicorn (lifespan and all) on a free port."""
    uvicorn = pytest.importorskip("uvicorn")
    app = load_example("fastapi_app").create_app(sandbox.base_url, store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.get_running_loop().create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:  # noqa: ASYNC110  (uvicorn has no event for it)
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", app.state.connect.manager
    finally:
        server.should_exit = True
        await serving


@pytest.fixture(params=["aiohttp", "fastapi"])
async def example_app(
    request: pytest.FixtureRequest, sandbox: Sandbox, tmp_path: Path
) -> AsyncIterator[tuple[str, Any]]:
    """Each example app on a free port, with its manager open; yields (URL, manager)."""
    run = aiohttp_example if request.param == "aiohttp" else fastapi_example
    async with run(sandbox, tmp_path / "tokens.db") as running:
        yield running


async def test_connect_reload_and_disconnect_in_chromium(
    sandbox: Sandbox, example_app: tuple[str, Any], tmp_path: Path
) -> None:
    async_api = require_browser()
    app_url, manager = example_app
    callbacks: list[str] = []
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(20_000)
            page.on("request", lambda request: note_callback(request.url, callbacks))

            await page.goto(app_url + "/")
            assert await page.inner_text("body") != ""
            await page.click("#connect")

            # The sandbox's login page (Keycloak's form ids), on the sandbox's host.
            await page.wait_for_selector("#kc-login")
            assert page.url.startswith(sandbox.idp_url)
            await page.fill("#username", "alice")
            await page.fill("#password", "alice-password")
            await page.click("#kc-login")

            # Back on the app: the accounts (all three, the example activates the inactive one).
            await page.wait_for_selector("#accounts")
            assert page.url == app_url + "/"
            assert await page.locator(".account").count() == 3
            assert await page.locator(".transaction").count() == 15
            assert "Everifin Test Bank" in await page.inner_text("#accounts")
            screenshot = tmp_path / "accounts.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000

            stored = await manager_store_keys(manager)
            assert len(stored) == 1
            user = stored[0].subject
            assert page.url.startswith(app_url)
            assert len(callbacks) == 1

            # Reload the callback URL: the same page, no second exchange, the session lives.
            await page.goto(callbacks[0])
            await page.wait_for_selector("#accounts")
            assert page.url == app_url + "/"
            assert await page.locator(".account").count() == 3
            await page.reload()
            await page.wait_for_selector("#accounts")
            stats = sandbox.stats()
            assert stats["token_requests"]["everifin_authorization_code"] == 1
            assert stats.get("sessions_killed", 0) == 0

            # Disconnect: revoked at the provider, tokens gone, the connect button is back.
            await page.click("#disconnect")
            await page.wait_for_selector("#connect")
            assert await page.locator("#accounts").count() == 0
            assert sandbox.stats()["token_requests"]["everifin_revoke"] == 1
            assert await manager_store_keys(manager) == []
            assert await manager.store.get(TokenKey("everifin", user)) is None
        finally:
            await browser.close()


def note_callback(url: str, seen: list[str]) -> None:
    """Remember the app's callback URL as the browser requested it."""
    if urlsplit(url).path == "/connect/everifin/callback":
        seen.append(url)


async def manager_store_keys(manager: Any) -> list[TokenKey]:
    return [key async for key in manager.store.keys("everifin")]
