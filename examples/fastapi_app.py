"""A FastAPI app where a user connects their banks through Everifin and finAPI, on the sandbox.

Built on :mod:`aiofinaccess.integrations.starlette`: the manager opens in the lifespan, the
connect/callback/disconnect routes of both providers are one ``mount``, and handlers get the
current user's connection with ``Depends``. Tokens, pending logins and the finAPI users'
passwords live in SQLite, so several server processes can share them. Run it from the
repository (``./dev`` made ``.venv``)::

    .venv/bin/python examples/fastapi_app.py       # the sandbox too; http://127.0.0.1:8002
    # Two workers, on a sandbox of your own (`aiofinaccess sandbox --port 8080`):
    export AIOFINACCESS_SANDBOX_URL=http://127.0.0.1:8080 AIOFINACCESS_STORE=/tmp/fastapi.db
    .venv/bin/uvicorn --factory --app-dir examples fastapi_app:app_from_env --workers 2 --port 8002

For Everifin, sign in as ``alice`` / ``alice-password``; for finAPI, press Complete on the
sandbox's Web Form (the finAPI user is created on the first connect). ``/`` shows the accounts
and latest transactions, ``/api/accounts`` and ``/api/accounts/{id}/transactions`` are the
Everifin ones as JSON and ``/api/finapi/accounts`` the finAPI ones (a user without tokens is
sent to connect), ``/ready`` is the readiness probe. Who the user is, is the app's business: a
random id in a cookie stands in for a login.
"""

import asyncio
import datetime as dt
import html
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse

from aiofinaccess import (
    ClientCredentials,
    Everifin,
    FinApi,
    ReauthorizationRequired,
    Schedule,
    SessionManager,
    SQLiteStore,
)
from aiofinaccess.everifin import BankConnect, Transaction
from aiofinaccess.finapi import FinApiData
from aiofinaccess.integrations.starlette import Connection, StarletteConnect
from aiofinaccess.integrations.web import Connected
from aiofinaccess.integrations.webform_flow import kept_passwords
from aiofinaccess.sandbox import SandboxConfig, run_sandbox

COOKIE = "example_user"


def make_manager(sandbox_url: str, store_path: str | Path) -> SessionManager:
    """Both providers of the sandbox, on a SQLite store every worker shares."""
    config = SandboxConfig()
    # A web process does not renew in the background (a worker does).
    store = SQLiteStore(store_path)
    manager = SessionManager(store=store, schedule=Schedule(enabled=False))
    manager.register(
        Everifin.at(f"{sandbox_url}/auth", sandbox_url, realm=config.realm),
        ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
    )
    manager.register(
        FinApi.at(sandbox_url),  # the sandbox serves the Web Form too
        ClientCredentials(config.finapi_client_id, config.finapi_client_secret),
        # The connect route's kept passwords: a dead refresh token needs no new Web Form.
        password_lookup=kept_passwords(store),
    )
    return manager


def create_app(sandbox_url: str, store_path: str | Path) -> FastAPI:
    """The app, talking to the sandbox at ``sandbox_url``, keeping tokens in ``store_path``."""

    async def on_connected(request: Request, connected: Connected) -> Response:
        """Activate new Everifin accounts once; a reload of the callback skips straight on."""
        if connected.provider == "everifin" and not connected.replayed:
            bank = BankConnect(connect.manager)
            inactive = [a.id for a in await bank.accounts(connected.subject) if not a.active]
            if inactive:
                await bank.activate_accounts(connected.subject, inactive)
        return Response(status_code=302, headers={"Location": connected.next_url})

    connect = StarletteConnect(
        lambda: make_manager(sandbox_url, store_path),
        user_id=lambda request: request.state.user,
        on_connected=on_connected,
    )
    app = FastAPI(lifespan=connect.lifespan, exception_handlers=connect.exception_handlers)
    app.state.connect = connect
    app.mount("/connect", connect.routes())
    app.add_route("/ready", connect.readiness)
    # FastAPI reads these when it builds the routes (so no "from __future__ import annotations").
    EverifinUser = Annotated[Connection, Depends(connect.connection("everifin"))]
    FinApiUser = Annotated[Connection, Depends(connect.connection("finapi"))]
    CurrentUser = Annotated[str, Depends(connect.current_user)]

    @app.middleware("http")
    async def identify(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        """Every browser gets a user id in a cookie (a real app has its own login)."""
        known = request.cookies.get(COOKIE)
        request.state.user = known or f"user-{secrets.token_hex(8)}"
        response = await call_next(request)
        if not known:
            response.set_cookie(COOKIE, request.state.user, httponly=True, samesite="lax")
        return response

    @app.get("/", response_class=HTMLResponse)
    async def index(user: CurrentUser) -> HTMLResponse:
        everifin, finapi = await asyncio.gather(everifin_part(user), finapi_part(user))
        return page(f"<h2>Everifin</h2>{everifin}<h2>finAPI</h2>{finapi}")

    async def everifin_part(user: str) -> str:
        bank = BankConnect(connect.manager)
        try:
            accounts = [a for a in await bank.accounts(user) if a.active]
        except ReauthorizationRequired:  # not connected yet, or the grant died
            link = connect.connect_url("everifin", "/")
            return f"<p>No bank connected yet.</p><a id='connect' href='{link}'>Connect</a>"
        latest = await asyncio.gather(*(newest(bank, user, a.id) for a in accounts))
        items = "".join(
            f"<li class='account'><b>{html.escape(f'{a.bank_name} · {a.iban or a.id}')}</b><ol>"
            + "".join(
                f"<li class='transaction'>{t.booking_date} {t.amount:,.2f} {t.currency} "
                f"{html.escape(t.counterparty_name or '')}</li>"
                for t in txs
            )
            + "</ol></li>"
            for a, txs in zip(accounts, latest, strict=True)
        )
        button = "<button id='disconnect'>Disconnect</button>"
        form = f"<form method='post' action='/connect/everifin/disconnect'>{button}</form>"
        return f"<ul id='accounts'>{items}</ul>{form}"

    async def finapi_part(user: str) -> str:
        try:
            accounts = await FinApiData(connect.manager).accounts(user)
        except ReauthorizationRequired:  # no finAPI tokens yet
            accounts = []
        link = connect.connect_url("finapi", "/")
        if not accounts:  # no finAPI user yet, or no bank imported through the Web Form
            return f"<p>No bank connected yet.</p><a id='connect-finapi' href='{link}'>Connect</a>"
        items = "".join(
            f"<li class='finapi-account'>{html.escape(a.account_name or str(a.id))} · "
            f"{html.escape(a.iban or '')} {a.balance} {html.escape(a.account_currency or '')}</li>"
            for a in accounts
        )
        more = f"<a id='connect-finapi' href='{link}'>Connect another bank</a>"
        return f"<ul id='finapi-accounts'>{items}</ul>{more}"

    @app.get("/api/accounts")
    async def accounts(bank: EverifinUser) -> list[dict[str, Any]]:
        return [dict(a.raw) for a in await bank.bank.accounts(bank.subject)]

    @app.get("/api/accounts/{account_id}/transactions")
    async def transactions(account_id: str, bank: EverifinUser) -> list[dict[str, Any]]:
        return [dict(t.raw) for t in await newest(bank.bank, bank.subject, account_id, 50)]

    @app.get("/api/finapi/accounts")
    async def finapi_accounts(bank: FinApiUser) -> list[dict[str, Any]]:
        return [a.to_dict() for a in await FinApiData(bank.manager).accounts(bank.subject)]

    return app


async def newest(bank: BankConnect, user: str, account: str, count: int = 5) -> list[Transaction]:
    """The latest ``count`` transactions of an account (the API lists oldest change first)."""
    found = [tx async for tx in bank.transactions(user, account, per_page=500)]
    found.sort(key=lambda tx: (tx.booking_date or dt.date.min, tx.last_updated), reverse=True)
    return found[:count]


def page(body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><meta charset='utf-8'><title>Your bank</title><h1>Your bank</h1>{body}",
        headers={"Cache-Control": "no-store"},
    )


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` (each worker calls it): the sandbox at
    ``AIOFINACCESS_SANDBOX_URL``, tokens in ``AIOFINACCESS_STORE``."""
    return create_app(os.environ["AIOFINACCESS_SANDBOX_URL"], os.environ["AIOFINACCESS_STORE"])


async def serve(sandbox_url: str, port: int, store_path: str | Path) -> None:
    # warning: uvicorn's access log would print each callback URL, its one-time code too.
    app = create_app(sandbox_url, store_path)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    print(f"sandbox: {sandbox_url}\napp: http://127.0.0.1:{port}/  (Ctrl-C stops)", flush=True)
    await uvicorn.Server(config).serve()


async def main() -> None:
    """Start the sandbox (unless given) and serve the app until Ctrl-C."""
    url = os.environ.get("AIOFINACCESS_SANDBOX_URL", "").rstrip("/")
    port = int(os.environ.get("PORT", "8002"))
    store = os.environ.get("AIOFINACCESS_STORE")
    if url:
        await serve(url, port, store or Path(tempfile.gettempdir()) / "fastapi-example.db")
        return
    # The sandbox forgets its users when it stops: so does a store of this run's own.
    with tempfile.TemporaryDirectory() as scratch:
        async with run_sandbox() as sandbox:
            await serve(sandbox.base_url, port, store or Path(scratch) / "tokens.db")


if __name__ == "__main__":
    asyncio.run(main())
