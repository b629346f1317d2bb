"""A Starlette app that opens the session manager in its lifespan and connects a user's bank.

Needs the ``examples`` extra (``pip install -e '.[examples]'``; ``./dev`` installs it). Run::

    .venv/bin/python examples/starlette_app.py
        # starts the sandbox in the lifespan too; serves http://127.0.0.1:8001
    export AIOFINACCESS_SANDBOX_URL=http://127.0.0.1:8080 PORT=9001
    .venv/bin/python examples/starlette_app.py
        # uses a sandbox started with `aiofinaccess sandbox --port 8080`, on another port

Open the printed URL, click "Connect your bank", sign in as ``alice`` / ``alice-password``.

:class:`aiofinaccess.web.ConnectFlow` is framework-free: ``begin`` returns the provider URL,
``finish`` exchanges the callback's code exactly once (a reload ends where the first request
ended) and raises typed errors. Who the user is, is the app's business: a cookie here.
"""

from __future__ import annotations

import html
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypedDict

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from aiofinaccess import (
    AuthorizationFlowError,
    BankConnect,
    ClientCredentials,
    Everifin,
    ReauthorizationRequired,
    SessionManager,
)
from aiofinaccess.sandbox import SandboxConfig, run_sandbox
from aiofinaccess.web import ConnectFlow

COOKIE = "example_user"


class State(TypedDict):
    """What the lifespan opens; Starlette hands it to every request as ``request.state``."""

    manager: SessionManager
    flow: ConnectFlow
    bank: BankConnect


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    """Open the sandbox (unless given) and the session manager for the app's lifetime."""
    async with AsyncExitStack() as stack:
        url = os.environ.get("AIOFINACCESS_SANDBOX_URL", "").rstrip("/")
        if not url:
            url = (await stack.enter_async_context(run_sandbox())).base_url
        config = SandboxConfig()
        manager = await stack.enter_async_context(SessionManager())
        manager.register(
            Everifin.at(f"{url}/auth", url, realm=config.realm),
            ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
        )
        flow = ConnectFlow(manager, "everifin", success_url="/")
        stack.push_async_callback(flow.aclose)  # let callbacks in flight finish first
        print(f"sandbox: {url}", flush=True)
        yield {"manager": manager, "flow": flow, "bank": BankConnect(manager)}


def user_of(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>Your bank</title><h1>Your bank</h1>{body}",
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def index(request: Request) -> Response:
    user = user_of(request)
    connect = "<p><a id='connect' href='/connect'>Connect your bank</a></p>"
    if user is None:
        response = page("<p>No bank connected yet.</p>" + connect)
        response.set_cookie(COOKIE, f"user-{secrets.token_hex(8)}", httponly=True, samesite="lax")
        return response
    try:
        accounts = await request.state.bank.accounts(user)
    except ReauthorizationRequired:
        return page("<p>No bank connected yet.</p>" + connect)
    items = "".join(
        f"<li class='account'>{html.escape(a.name or a.id)} · {html.escape(a.iban or '')}</li>"
        for a in accounts
    )
    button = "<form method='post' action='/disconnect'><button id='disconnect'>Disconnect</button>"
    return page(f"<ul id='accounts'>{items}</ul>{button}</form>")


async def connect(request: Request) -> Response:
    user = user_of(request)
    if user is None:
        return RedirectResponse("/", status_code=303)
    callback = str(request.url_for("callback"))
    location = await request.state.flow.begin(user, callback, next_url="/")
    return RedirectResponse(str(location), status_code=302, headers={"Cache-Control": "no-store"})


async def callback(request: Request) -> Response:
    user = user_of(request)
    if user is None:
        return page("<p class='error'>Your session ended; start again.</p>", status=400)
    try:
        connected = await request.state.flow.finish(user, request.query_params)
    except AuthorizationFlowError as exc:  # AuthorizationDenied, StateMismatchError, ...
        return page(f"<p class='error'>{html.escape(str(exc))}</p>", status=400)
    return RedirectResponse(connected.next_url, status_code=302)


async def disconnect(request: Request) -> Response:
    user = user_of(request)
    if user is not None:
        await request.state.manager.revoke("everifin", user)  # and deletes the tokens
    return RedirectResponse("/", status_code=303)


app = Starlette(
    routes=[
        Route("/", index),
        Route("/connect", connect),
        Route("/callback", callback, name="callback"),
        Route("/disconnect", disconnect, methods=["POST"]),
    ],
    lifespan=lifespan,
)

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8001"))
    print(f"app: http://127.0.0.1:{port}/  (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
