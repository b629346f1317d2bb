"""Collect and run the ```python blocks of README.md and docs/ against the sandbox.

A block runs as written, with top-level ``await`` allowed, in a namespace that holds only
what its *setup* provides: never the SDK's names, so a missing import fails. The setup is
named by an HTML comment on the line before the fence (invisible on GitHub and in MkDocs):

* ``<!-- example: setup=NAME -->``: one of :data:`SETUPS` (default ``manager``);
* ``<!-- example: not-run: REASON -->``: deliberately not run (real credentials, a server
  that runs forever); such blocks are counted, and still must compile.

Every setup starts its own sandbox. The names a setup provides besides ``sandbox`` and
``manager`` stand for the reader's own app (``decrypt``, ``upsert``, ``redirect_user_to``...);
docs/index.md lists them.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from cryptography.fernet import Fernet

from aiofinaccess import ClientCredentials, SessionManager
from aiofinaccess.finapi import NewUser, Users
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, headless_login, run_sandbox

ROOT = Path(__file__).resolve().parents[2]
_MARKER = re.compile(r"<!-- example: (?P<spec>.+?) -->")


@attrs.frozen
class Block:
    """One ```python block: where it is, its code, and how to run it."""

    path: Path
    line: int
    code: str
    setup: str = "manager"
    not_run: str | None = None

    @property
    def id(self) -> str:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{where}:{self.line}"


def documents() -> list[Path]:
    """README.md and every Markdown page of the site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The ```python blocks of one Markdown file, with their markers."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```python":
            index += 1
            continue
        start = index
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
        indent = len(lines[start]) - len(lines[start].lstrip())
        code = "\n".join(line[indent:] for line in lines[start + 1 : end]) + "\n"
        before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        options: dict[str, Any] = {}
        if marker := _MARKER.fullmatch(before.strip()):
            spec = marker["spec"]
            if spec.startswith("not-run:"):
                options["not_run"] = spec.removeprefix("not-run:").strip()
            elif spec.startswith("setup="):
                options["setup"] = spec.removeprefix("setup=")
            else:
                raise ValueError(f"{path}:{start + 1}: unknown example marker {spec!r}")
        found.append(Block(path, start + 1, code, **options))
        index = end + 1
    return found


def fenced(path: Path, language: str) -> list[tuple[int, str]]:
    """The ```LANGUAGE blocks of a Markdown file: (first line number, text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, start = [], None
    for number, line in enumerate(lines, 1):
        if start is None and line.strip() == f"```{language}":
            start, indent = number, len(line) - len(line.lstrip())
        elif start is not None and line.strip() == "```":
            found.append((start, "\n".join(text[indent:] for text in lines[start : number - 1])))
            start = None
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks_of(path)]


def compile_block(block: Block) -> Any:
    """The block's code object (top-level ``await`` allowed)."""
    return compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def run_block(block: Block, namespace: dict[str, Any]) -> None:
    """Run ``block`` in ``namespace``: awaited when it awaits, in a thread when it calls
    ``asyncio.run`` (a program of its own), else directly on this loop."""
    code = compile_block(block)
    if code.co_flags & inspect.CO_COROUTINE:
        await eval(code, namespace)  # noqa: S307  (our own documentation's code)
    elif "asyncio.run(" in block.code:
        await asyncio.to_thread(exec, code, namespace)
    else:
        exec(code, namespace)  # noqa: S102


# -- what the reader's app provides ---------------------------------------------------------------


async def _complete_web_form(url: str) -> None:
    """The end user on the sandbox's Web Form page: press Complete."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url) as page:
            assert page.status == 200
        async with browser.post(url, data={"action": "complete"}, allow_redirects=False) as done:
            assert done.status in (200, 303)


@attrs.define
class App:
    """Records what the examples hand to "the app"; a user who completes Web Forms."""

    redirects: list[str] = attrs.Factory(list)
    upserted: list[Any] = attrs.Factory(list)
    counted: list[str] = attrs.Factory(list)
    users: set[asyncio.Task[None]] = attrs.Factory(set)

    def redirect_user_to(self, url: str) -> None:
        self.redirects.append(url)
        if "/wf/" in url:  # the sandbox's Web Form: the user fills it in, a moment later
            task = asyncio.get_running_loop().create_task(_complete_web_form(url))
            self.users.add(task)
            task.add_done_callback(self.users.discard)

    def names(self, sandbox: Sandbox) -> dict[str, Any]:
        config = sandbox.config

        class Metrics:
            def count(self_, name: str) -> None:
                self.counted.append(name)

        return {
            "decrypt": lambda token: token,  # the sandbox does not encrypt it
            "redirect_user_to": self.redirect_user_to,
            "upsert": self.upserted.append,
            "load_cursor": lambda: None,
            "save_cursor": lambda cursor: None,
            "ip": "203.0.113.7",
            "agent": "Mozilla/5.0 (docs example)",
            "client_id": config.everifin_client_id,
            "client_secret": config.everifin_client_secret,
            "new_key": Fernet.generate_key(),
            "old_key": Fernet.generate_key(),
            "metrics": Metrics(),
        }


Setup = Callable[[App], AbstractAsyncContextManager[dict[str, Any]]]


@asynccontextmanager
async def _standalone(app: App) -> AsyncIterator[dict[str, Any]]:
    """Nothing: the block is a program of its own (it starts its sandbox)."""
    yield {}


@asynccontextmanager
async def _manager(app: App) -> AsyncIterator[dict[str, Any]]:
    """``sandbox`` and ``manager`` (finapi and everifin registered), and the app's names."""
    async with run_sandbox() as sandbox, SessionManager() as manager:
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        yield {"sandbox": sandbox, "manager": manager, **app.names(sandbox)}


@asynccontextmanager
async def _app_server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """The reader's app as a server (``app_url``): it takes Web Form callbacks and returns."""
    hooks: list[web.Request] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(request)
        return web.Response(text="ok")

    async def back(request: web.Request) -> web.Response:
        return web.Response(text="connected")

    server = web.Application()
    server.router.add_post("/hooks/wf", hook)
    server.router.add_get("/connected", back)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", hooks
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _finapi_user(app: App) -> AsyncIterator[dict[str, Any]]:
    """``manager`` with the finAPI user ``alice`` logged in, and ``app_url``."""
    async with _manager(app) as names, _app_server() as (app_url, hooks):
        await Users(names["manager"]).create_and_login(NewUser(id="alice", password="s3cret-pw"))
        yield {**names, "app_url": app_url, "hooks": hooks}


@asynccontextmanager
async def _finapi_connected(app: App) -> AsyncIterator[dict[str, Any]]:
    """``manager`` with the finAPI user ``alice`` and one bank connection imported."""
    from tests.support.finapi_journey import import_connection  # noqa: PLC0415

    async with _manager(app) as names:
        await import_connection(names["manager"], "alice")
        yield names


@asynccontextmanager
async def _everifin_user(app: App) -> AsyncIterator[dict[str, Any]]:
    """``manager`` with ``alice`` connected at Everifin (the login page, headless)."""
    async with _manager(app) as names:
        manager: SessionManager = names["manager"]
        request = manager.authorization_request("everifin", "http://127.0.0.1/callback")
        async with aiohttp.ClientSession() as browser:
            callback = await headless_login(browser, request.url, "alice", "alice-password")
        await manager.complete_authorization("everifin", "alice", callback, request)
        yield names


@asynccontextmanager
async def _everifin_pis(app: App) -> AsyncIterator[dict[str, Any]]:
    """``manager`` with ``alice`` logged in at Everifin with scope ``pis``, and Paygate."""
    from tests.support.everifin_journey import pis_user, with_paygate  # noqa: PLC0415

    async with _manager(app) as names:
        await pis_user(names["manager"], names["sandbox"], "alice")
        with_paygate(names["manager"], names["sandbox"])
        yield names


@asynccontextmanager
async def _aiohttp_app(app: App) -> AsyncIterator[dict[str, Any]]:
    """``manager``, an empty aiohttp.web ``app`` and ``current_user`` (the app's login: alice)."""
    async with _manager(app) as names:
        yield {**names, "app": web.Application(), "current_user": lambda request: "alice"}


@asynccontextmanager
async def _sandbox_only(app: App) -> AsyncIterator[dict[str, Any]]:
    """``sandbox``, and the sandbox's credentials as ``finapi_credentials``."""
    async with run_sandbox() as sandbox:
        config = sandbox.config
        yield {
            "sandbox": sandbox,
            "finapi_credentials": ClientCredentials(
                config.finapi_client_id, config.finapi_client_secret
            ),
            **app.names(sandbox),
        }


@asynccontextmanager
async def _starlette_app(app: App) -> AsyncIterator[dict[str, Any]]:
    """``sandbox``, the app's names and ``current_user`` (alice); the block builds ``app``."""
    async with _sandbox_only(app) as names:
        yield {**names, "current_user": lambda request: "alice"}


@asynccontextmanager
async def _redis(app: App) -> AsyncIterator[dict[str, Any]]:
    """``sandbox``, the app's names and ``redis_url`` (a throwaway redis-server)."""
    from tests.support.redis_server import running_redis  # noqa: PLC0415  (skips without redis-server)

    async with running_redis() as redis_url, _sandbox_only(app) as names:
        yield {**names, "redis_url": redis_url}


@asynccontextmanager
async def _postgres(app: App) -> AsyncIterator[dict[str, Any]]:
    """``sandbox``, the app's names and ``postgres_url`` (a throwaway PostgreSQL cluster)."""
    from tests.support.postgres_server import running_postgres  # noqa: PLC0415  (skips without it)

    with running_postgres() as server:
        async with _sandbox_only(app) as names:
            yield {**names, "postgres_url": server.url}


SETUPS: dict[str, Setup] = {
    "redis": _redis,
    "postgres": _postgres,
    "starlette-app": _starlette_app,
    # The same names; the block mounts aiofinaccess.integrations.starlette at /connect.
    "fastapi-app": _starlette_app,
    "standalone": _standalone,
    "manager": _manager,
    "finapi-user": _finapi_user,
    "finapi-connected": _finapi_connected,
    "everifin-user": _everifin_user,
    "everifin-pis": _everifin_pis,
    "aiohttp-app": _aiohttp_app,
    "sandbox": _sandbox_only,
}
