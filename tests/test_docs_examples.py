"""Every ```python block of README.md and docs/ runs, as written, against the sandbox.

A block that breaks (a missing import, a renamed method, a flow that no longer works) fails
here. Blocks that cannot run (real credentials, a server that runs forever) are marked
``<!-- example: not-run: REASON -->``, counted, and still compiled. See
tests/support/docs_examples.py.
"""

from __future__ import annotations

import asyncio
import inspect
import shlex
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiofinaccess import SessionManager
from aiofinaccess.cli.config import FIELDS
from aiofinaccess.cli.main import _parser as cli_parser
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import SandboxConfig, headless_login, run_sandbox
from tests.support.docs_examples import (
    ROOT,
    SETUPS,
    App,
    Block,
    all_blocks,
    compile_block,
    documents,
    fenced,
    run_block,
)

BLOCKS = all_blocks()
RUN = [block for block in BLOCKS if block.not_run is None]
NOT_RUN = [block for block in BLOCKS if block.not_run is not None]


async def _connect_through(app: web.Application, manager: SessionManager | None) -> None:
    """Drive a ``WebConnect`` the block set up: connect, log in, callback, tokens stored."""
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as browser:
        async with browser.get(server.make_url("/connect/everifin"), allow_redirects=False) as r:
            assert r.status == 302
            location = r.headers["Location"]
        callback = await headless_login(browser, location, "alice", "alice-password")
        async with browser.get(callback, allow_redirects=False) as r:
            assert r.status == 302, await r.text()
            assert "/connect/" not in r.headers["Location"]  # on to the app, not an error
    if manager is not None:  # else the app's own manager, closed with it
        assert await manager.access_token("everifin", "alice")


async def _serve_asgi_and_connect(app: Any, connect: str = "/connect") -> None:
    """Serve a Starlette/FastAPI block's ``app`` with uvicorn; connect (at ``connect``), then
    read /accounts."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.get_running_loop().create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:  # noqa: ASYNC110  (uvicorn has no "started" event)
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as browser:
            async with browser.get(f"{base}{connect}", allow_redirects=False) as r:
                assert r.status == 302, await r.text()
                location = r.headers["Location"]
            callback = await headless_login(browser, location, "alice", "alice-password")
            async with browser.get(callback) as r:  # on to /accounts
                assert r.status == 200, await r.text()
                assert str(r.url) == f"{base}/accounts"
                assert len(await r.json()) >= 1
            if any(getattr(route, "path", None) == "/finapi/accounts" for route in app.routes):
                await _connect_finapi(browser, base)
    finally:
        server.should_exit = True
        await serving


async def _connect_finapi(browser: aiohttp.ClientSession, base: str) -> None:
    """The finAPI connect route: the Web Form (Complete), back to the app, /finapi/accounts."""
    connect = f"{base}/connect/finapi?next=/finapi/accounts"
    async with browser.get(connect, allow_redirects=False) as r:
        assert r.status == 302, await r.text()
        form = r.headers["Location"]
    async with browser.get(form) as page:
        assert page.status == 200
    async with browser.post(form, data={"action": "complete"}) as r:  # back, on to the page
        assert r.status == 200, await r.text()
        assert str(r.url) == f"{base}/finapi/accounts"
        assert len(await r.json()) >= 1


async def _run_documented_tests(namespace: dict[str, Any]) -> int:
    """Call the ``test_*`` coroutines a block defines, with the shipped fixtures' values."""
    tests = [
        value
        for name, value in namespace.items()
        if name.startswith("test_") and inspect.iscoroutinefunction(value)
    ]
    override = namespace.get("sandbox_config")
    config = override.__wrapped__() if override is not None else SandboxConfig()
    for test in tests:
        async with run_sandbox(config) as sandbox, SessionManager() as manager:
            for provider, credentials in sandbox_providers(sandbox):
                manager.register(provider, credentials)
            fixtures = {"sandbox": sandbox, "sandbox_manager": manager}
            await test(**{name: fixtures[name] for name in inspect.signature(test).parameters})
    return len(tests)


@pytest.mark.parametrize("block", RUN, ids=lambda block: block.id)
async def test_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a block's files (tokens.db) land in the test's own directory
    app = App()
    async with SETUPS[block.setup](app) as names:
        namespace: dict[str, Any] = {"__name__": "__docs_example__", **names}
        await run_block(block, namespace)
        web_app = namespace.get("app")
        if isinstance(web_app, web.Application) and "aiofinaccess-connect-everifin" in (
            web_app.router.named_resources()
        ):
            await _connect_through(web_app, namespace.get("manager"))
        if isinstance(web_app, web.Application) and "aiofinaccess-connect-finapi" in (
            web_app.router.named_resources()
        ):
            async with (
                TestServer(web_app, host="127.0.0.1") as server,
                aiohttp.ClientSession() as browser,
            ):
                await _connect_finapi(browser, str(server.make_url("")).rstrip("/"))
        await _run_documented_tests(namespace)
        if block.setup == "starlette-app":
            await _serve_asgi_and_connect(namespace["app"])
        if block.setup == "fastapi-app":
            await _serve_asgi_and_connect(namespace["app"], "/connect/everifin")


@pytest.mark.parametrize("block", NOT_RUN, ids=lambda block: block.id)
def test_blocks_not_run_compile_and_say_why(block: Block) -> None:
    assert block.not_run, "a not-run marker must give its reason"
    compile_block(block)


def test_every_block_is_run_or_explicitly_not_run() -> None:
    """The counts the documentation promises; an unknown setup is an error, not a skip."""
    assert {block.setup for block in RUN} <= set(SETUPS)
    assert len(RUN) + len(NOT_RUN) == len(BLOCKS)
    assert len(RUN) >= 30, f"only {len(RUN)} blocks run"
    assert len(NOT_RUN) <= 8, [block.id for block in NOT_RUN]
    assert {block.path.name for block in RUN} >= {"README.md", "quickstart.md"}


async def test_a_missing_import_fails(tmp_path: Path) -> None:
    """The collector is not lenient: the BankConnect block without ``from datetime import date``."""
    broken = Block(tmp_path / "x.md", 1, "await bank.accounts('alice')\nday = date(2026, 1, 1)\n")

    class Bank:
        async def accounts(self, user: str) -> list[str]:
            return []

    with pytest.raises(NameError, match="'date' is not defined"):
        await run_block(broken, {"bank": Bank()})


COMMAND_LINES = [
    (f"{path.relative_to(ROOT)}:{start + offset}", line.split("  #")[0].strip())
    for path in documents()
    for start, text in fenced(path, "sh")
    for offset, line in enumerate(text.splitlines(), 1)
    if line.startswith("aiofinaccess ")
]


@pytest.mark.parametrize(("where", "line"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_documented_command_lines_parse(where: str, line: str) -> None:
    """Every ``aiofinaccess ...`` line in a ```sh block is accepted by the CLI's parser."""
    args = shlex.split(line)[1:]
    if "--version" in args or "--help" in args:  # these print and exit 0
        with pytest.raises(SystemExit) as exited:
            cli_parser().parse_args(args)
        assert exited.value.code == 0, f"{where}: {line}"
    else:  # a refused option would exit 2
        command = next(arg for arg in args if not arg.startswith("-"))
        assert cli_parser().parse_args(args).command == command, f"{where}: {line}"


def test_documented_config_files_are_valid() -> None:
    """Every ```toml block is TOML whose provider tables use only known settings."""
    tables = [text for path in documents() for _, text in fenced(path, "toml")]
    assert tables
    for text in tables:
        providers = tomllib.loads(text).get("providers", {})
        for name, settings in providers.items():
            assert set(settings) <= set(FIELDS), (name, set(settings) - set(FIELDS))
