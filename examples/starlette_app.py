"""A Starlette app that connects a user's bank, on :mod:`aiofinaccess.integrations.starlette`.

Needs the ``examples`` extra (``pip install -e '.[examples]'``; ``./dev`` installs it). Run::

    .venv/bin/python examples/starlette_app.py
        # starts the sandbox in the lifespan too; serves http://127.0.0.1:8001
    export AIOFINACCESS_SANDBOX_URL=http://127.0.0.1:8080 PORT=9001
    .venv/bin/python examples/starlette_app.py
        # uses a sandbox started with `aiofinaccess sandbox --port 8080`, on another port

Open the printed URL, click "Connect your bank", sign in as ``alice`` / ``alice-password``.
The integration mounts the connect, callback (code exchanged exactly once) and disconnect
routes and opens the manager in the lifespan. Tokens and pending logins live in SQLite
(``AIOFINACCESS_STORE``, else a file of this run's own), so ``uvicorn --workers`` can share
them. Who the user is, is the app's business: a cookie.
"""

from __future__ import annotations

import html
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from aiofinaccess import ClientCredentials, Everifin, ReauthorizationRequired, SQLiteStore
from aiofinaccess import SessionManager as Manager
from aiofinaccess.everifin import BankConnect
from aiofinaccess.integrations.starlette import StarletteConnect
from aiofinaccess.sandbox import SandboxConfig, run_sandbox

COOKIE = "example_user"
SANDBOX_URL = os.environ.get("AIOFINACCESS_SANDBOX_URL", "").rstrip("/")
STORE = os.environ.get("AIOFINACCESS_STORE", "")


def make_manager() -> Manager:
    # SQLite: every server process shares the tokens and the logins in flight.
    config, manager = SandboxConfig(), Manager(store=SQLiteStore(STORE))
    manager.register(
        Everifin.at(f"{SANDBOX_URL}/auth", SANDBOX_URL, realm=config.realm),
        ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
    )
    return manager


connect = StarletteConnect(make_manager, user_id=lambda request: request.cookies.get(COOKIE))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the sandbox unless one is given, then open the manager for the app's lifetime."""
    global SANDBOX_URL, STORE  # noqa: PLW0603  (the example's own are known only now)
    async with AsyncExitStack() as stack:
        if not STORE:
            STORE = os.path.join(stack.enter_context(tempfile.TemporaryDirectory()), "tokens.db")
        if not SANDBOX_URL:
            SANDBOX_URL = (await stack.enter_async_context(run_sandbox())).base_url
        await stack.enter_async_context(connect.open())
        print(f"sandbox: {SANDBOX_URL}", flush=True)
        yield


def page(body: str) -> HTMLResponse:
    html_page = f"<!doctype html><title>Your bank</title><h1>Your bank</h1>{body}"
    return HTMLResponse(html_page, headers={"Cache-Control": "no-store"})


async def index(request: Request) -> Response:
    user = request.cookies.get(COOKIE)
    link = f"<p><a id='connect' href='{connect.connect_url('everifin', '/')}'>Connect your bank"
    if user is None:
        response = page("<p>No bank connected yet.</p>" + link)
        response.set_cookie(COOKIE, f"user-{secrets.token_hex(8)}", httponly=True, samesite="lax")
        return response
    try:
        accounts = await BankConnect(connect.manager).accounts(user)
    except ReauthorizationRequired:
        return page("<p>No bank connected yet.</p>" + link)
    items = "".join(
        f"<li class='account'>{html.escape(a.name or a.id)} · {html.escape(a.iban or '')}</li>"
        for a in accounts
    )
    button = "<form method='post' action='/connect/everifin/disconnect'><button id='disconnect'>"
    return page(f"<ul id='accounts'>{items}</ul>{button}Disconnect</button></form>")


app = Starlette(
    routes=[Route("/", index), Mount("/connect", connect.routes())],
    lifespan=lifespan,
)

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8001"))
    print(f"app: http://127.0.0.1:{port}/  (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
