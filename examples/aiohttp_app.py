"""An aiohttp.web app where a user connects their bank through Everifin, on the offline sandbox.

Run it from the repository (after ``./dev test`` or ``./dev demo`` made ``.venv``)::

    .venv/bin/python examples/aiohttp_app.py
        # starts the sandbox in-process too; serves http://127.0.0.1:8000
    AIOFINACCESS_SANDBOX_URL=http://127.0.0.1:8080 .venv/bin/python examples/aiohttp_app.py
        # uses a sandbox started with `aiofinaccess sandbox --port 8080`
    PORT=9000 AIOFINACCESS_STORE=/tmp/example-tokens.db .venv/bin/python examples/aiohttp_app.py
        # another port, and tokens kept in SQLite across restarts

Open the printed URL, click "Connect your bank", and sign in on the sandbox's login page as
``alice`` / ``alice-password``. The app lists the accounts and latest transactions; a reload
of the callback URL changes nothing; "Disconnect" revokes the grant and deletes the tokens.

Who the user is, is this app's business: here a random id in a cookie stands in for a login.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from aiohttp import web

from aiofinaccess import (
    AiofinaccessError,
    AuthorizationFlowError,
    ClientCredentials,
    Everifin,
    MemoryStore,
    ReauthorizationRequired,
    SessionManager,
    SQLiteStore,
)
from aiofinaccess.errors import AuthorizationDenied
from aiofinaccess.everifin import Account, BankConnect, Transaction
from aiofinaccess.integrations.web import Connected, ConnectFlow, WebConnect
from aiofinaccess.sandbox import SandboxConfig, run_sandbox
from aiofinaccess.stores import TokenStore

logger = logging.getLogger("example")
USER: web.RequestKey[str] = web.RequestKey("user", str)
BANK: web.AppKey[BankConnect] = web.AppKey("bank", BankConnect)
MANAGER: web.AppKey[SessionManager] = web.AppKey("manager", SessionManager)
CONNECT: web.AppKey[WebConnect] = web.AppKey("connect", WebConnect)
COOKIE = "example_user"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every browser a user id in a cookie (a real app has its own login)."""
    known = request.cookies.get(COOKIE)
    request[USER] = known or f"user-{secrets.token_hex(8)}"
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects are raised: they need the cookie too
        if not known:
            exc.set_cookie(COOKIE, request[USER], httponly=True, samesite="Lax")
        raise
    if not known:
        response.set_cookie(COOKIE, request[USER], httponly=True, samesite="Lax")
    return response


def page(title: str, body: str) -> web.Response:
    """A small HTML page (no caching: it shows account data)."""
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:46em;margin:2em auto}"
        "table{border-collapse:collapse;width:100%}td,th{padding:.2em .5em;text-align:left}"
        "tr:nth-child(even){background:#f3f3f3}.amount{text-align:right}.error{color:#b00}"
        "button,#connect{margin-top:1.5em;font-size:1.1em}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})


def account_html(account: Account, latest: list[Transaction]) -> str:
    rows = "".join(
        f"<tr class='transaction'><td>{tx.booking_date}</td>"
        f"<td>{html.escape(tx.counterparty_name or '')}</td>"
        f"<td>{html.escape(tx.remittance_information or '')}</td>"
        f"<td class='amount'>{tx.amount:,.2f} {html.escape(tx.currency)}</td></tr>"
        for tx in latest
    )
    name = html.escape(f"{account.name or 'Account'} · {account.iban or account.id}")
    return (
        f"<section class='account' data-id='{html.escape(account.id)}'><h2>{name}</h2>"
        f"<p>{html.escape(account.bank_name or '')}, {html.escape(account.currency or '')}</p>"
        f"<table><tr><th>Booked</th><th>Counterparty</th><th>Reference</th>"
        f"<th class='amount'>Amount</th></tr>{rows}</table></section>"
    )


async def latest_transactions(bank: BankConnect, user: str, account: Account) -> list[Transaction]:
    """The five most recent transactions (the API lists them oldest change first)."""
    found = [tx async for tx in bank.transactions(user, account.id, per_page=500)]
    found.sort(key=lambda tx: (tx.booking_date or dt.date.min, tx.last_updated), reverse=True)
    return found[:5]


async def index(request: web.Request) -> web.StreamResponse:
    """The accounts page, or a "connect" button for a user without tokens."""
    bank, user = request.app[BANK], request[USER]
    try:
        accounts = [a for a in await bank.accounts(user) if a.active]
    except ReauthorizationRequired:  # nothing stored for this user, or the grant died
        button = "<p><a id='connect' href='/connect/everifin?next=/'>Connect your bank</a></p>"
        return page("Your bank", "<p>No bank connected yet.</p>" + button)
    latest = await asyncio.gather(*(latest_transactions(bank, user, a) for a in accounts))
    sections = "".join(account_html(a, txs) for a, txs in zip(accounts, latest, strict=True))
    disconnect = (
        "<form method='post' action='/disconnect'>"
        "<button id='disconnect' type='submit'>Disconnect</button></form>"
    )
    return page("Your bank", f"<div id='accounts'>{sections}</div>{disconnect}")


async def disconnect(request: web.Request) -> web.StreamResponse:
    """Revoke the grant at Everifin and delete the stored tokens (same-origin forms only)."""
    if not request.app[CONNECT].same_origin(request):  # a cross-site form must not log out
        raise web.HTTPForbidden(text="cross-origin request refused")
    manager, user = request.app[MANAGER], request[USER]
    try:
        await manager.revoke("everifin", user)  # revokes the refresh token, deletes the set
    except AiofinaccessError as exc:  # the provider is down: at least forget the tokens here
        logger.warning("revocation failed (%s); forgetting the tokens", type(exc).__name__)
        await manager.forget("everifin", user)
    raise web.HTTPSeeOther("/")


async def on_connected(request: web.Request, connected: Connected) -> web.StreamResponse:
    """Activate new accounts once, then show them. A reload skips straight to the page."""
    if not connected.replayed:
        bank = request.app[BANK]
        inactive = [a.id for a in await bank.accounts(connected.subject) if not a.active]
        if inactive:
            await bank.activate_accounts(connected.subject, inactive)
    raise web.HTTPFound(connected.next_url)


async def on_error(request: web.Request, error: AuthorizationFlowError) -> web.StreamResponse:
    """Typed errors from the callback: say what happened, offer to try again."""
    if isinstance(error, AuthorizationDenied):
        reason = "You cancelled the connection at your bank."
    else:
        reason = f"The connection failed: {error}"
    retry = "<p><a id='connect' href='/connect/everifin?next=/'>Try again</a></p>"
    return page("Your bank", f"<p class='error'>{html.escape(reason)}</p>{retry}")


def create_app(manager: SessionManager) -> web.Application:
    """The app, for a manager with Everifin registered as ``everifin`` (open while it runs)."""
    app = web.Application(middlewares=[identify])
    app[MANAGER] = manager
    app[BANK] = BankConnect(manager)
    flow = ConnectFlow(manager, "everifin", success_url="/")
    connect = app[CONNECT] = WebConnect(
        flow, user_id=lambda request: request[USER], on_connected=on_connected, on_error=on_error
    )
    connect.setup(app)
    app.router.add_get("/", index)
    app.router.add_post("/disconnect", disconnect)
    return app


def sandbox_manager(sandbox_url: str, store: TokenStore | None = None) -> SessionManager:
    """A manager with the sandbox's Everifin registered (its fixed, public test client)."""
    config = SandboxConfig()
    manager = SessionManager(store=store)
    manager.register(
        Everifin.at(f"{sandbox_url}/auth", sandbox_url, realm=config.realm),
        ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
    )
    return manager


async def main() -> None:
    """Start the sandbox (unless given), the manager and the app; serve until Ctrl-C."""
    async with AsyncExitStack() as stack:
        sandbox_url = os.environ.get("AIOFINACCESS_SANDBOX_URL", "").rstrip("/")
        if not sandbox_url:
            sandbox_url = (await stack.enter_async_context(run_sandbox())).base_url
        path = os.environ.get("AIOFINACCESS_STORE")
        store = SQLiteStore(path) if path else MemoryStore()
        manager = await stack.enter_async_context(sandbox_manager(sandbox_url, store))
        runner = web.AppRunner(create_app(manager), handle_signals=False, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        port = int(os.environ.get("PORT", "8000"))
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"sandbox: {sandbox_url}\napp: http://127.0.0.1:{port}/  (Ctrl-C stops)")
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
