"""A worker process that syncs every connected user's transactions: plain asyncio.

It shares the web processes' token store (SQLite on one machine, Redis across machines), finds
the connected users there (``store.keys``), and runs the refresh scheduler, which web
processes leave off (``schedule=Schedule(enabled=False)``). A user whose grant died is
reported once per fleet through ``manager.connections`` (``ReconnectRequired``: email them)
and skipped until they connect again. Ctrl-C stops it, between or during rounds. Run::

    .venv/bin/python examples/worker.py --once
        # its own sandbox and temporary store, alice and bob connected headlessly, one round
    export AIOFINACCESS_SANDBOX_URL=http://127.0.0.1:8080 AIOFINACCESS_STORE=/srv/tokens.db
    .venv/bin/python examples/worker.py     # next to the web app: a round every 60 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from aiofinaccess import (
    ClientCredentials,
    Everifin,
    ReauthorizationRequired,
    Schedule,
    SessionManager,
    SQLiteStore,
)
from aiofinaccess.connections import ConnectionEvent, ReconnectRequired
from aiofinaccess.everifin import BankConnect, TransactionSync
from aiofinaccess.sandbox import SandboxConfig, headless_login, run_sandbox
from aiofinaccess.stores import TokenStore

#: Users synced at once (each is a handful of API calls in a row).
CONCURRENCY = 8


def make_manager(sandbox_url: str, store: TokenStore) -> SessionManager:
    """The worker's manager: the shared store, the scheduler on, idle sessions kept alive."""
    config = SandboxConfig()
    manager = SessionManager(store=store, schedule=Schedule(keep_alive=True))
    manager.register(
        Everifin.at(f"{sandbox_url}/auth", sandbox_url, realm=config.realm),
        ClientCredentials(config.everifin_client_id, config.everifin_client_secret),
    )
    return manager


async def sync_user(bank: BankConnect, user: str, cursors: dict[str, dt.datetime]) -> int:
    """Fetch what changed in the user's active accounts since the last round; count it."""
    changed = 0
    for account in await bank.accounts(user):
        if not account.active:
            continue  # the user activates accounts in the web app (consent is theirs)
        sync = TransactionSync(bank, user, account.id, cursor=cursors.get(account.id))
        async for _transaction in sync.changes(per_page=500):
            changed += 1  # a real worker upserts the transaction here, by its id
        if sync.cursor is not None:
            cursors[account.id] = sync.cursor  # ... and stores the cursor with it
    return changed


async def sync_all(manager: SessionManager, cursors: dict[str, dt.datetime]) -> dict[str, int]:
    """One round over every user with tokens in the store: changes per user."""
    bank, limit = BankConnect(manager), asyncio.Semaphore(CONCURRENCY)
    counts: dict[str, int] = {}

    async def one(user: str) -> None:
        async with limit:
            # A dead grant: ReconnectRequired has told the user; skipped until they reconnect.
            with contextlib.suppress(ReauthorizationRequired):
                counts[user] = await sync_user(bank, user, cursors)

    async with asyncio.TaskGroup() as group:
        async for key in manager.store.keys("everifin"):
            if key.subject is not None:
                group.create_task(one(key.subject))
    return counts


async def connect_demo_users(manager: SessionManager, users: list[str]) -> None:
    """What the web app does when a user connects; here headless, for a one-command run."""
    for user in users:
        request = manager.authorization_request("everifin", "http://127.0.0.1/callback")
        async with aiohttp.ClientSession() as browser:
            callback = await headless_login(browser, request.url, user, f"{user}-password")
        await manager.complete_authorization("everifin", user, str(callback), request)
        bank = BankConnect(manager)
        inactive = [a.id for a in await bank.accounts(user) if not a.active]
        await bank.activate_accounts(user, inactive)


async def main(once: bool, interval: float) -> None:
    async with AsyncExitStack() as stack:
        url = os.environ.get("AIOFINACCESS_SANDBOX_URL", "").rstrip("/")
        path = os.environ.get("AIOFINACCESS_STORE")
        if path is None:  # the demo's store: private, and gone when the worker stops
            path = str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "tokens.db")
        if not url:  # the one-command demo: a sandbox, and users a web app would connect
            url = (await stack.enter_async_context(run_sandbox())).base_url
            async with make_manager(url, SQLiteStore(path)) as web:
                await connect_demo_users(web, ["alice", "bob"])
        worker = await stack.enter_async_context(make_manager(url, SQLiteStore(path)))

        def reconnect(event: ConnectionEvent) -> None:
            if isinstance(event, ReconnectRequired):
                print(f"ask {event.subject} to reconnect their bank ({event.detail})", flush=True)

        worker.connections.subscribe(reconnect)
        cursors: dict[str, dt.datetime] = {}
        while True:
            counts = await sync_all(worker, cursors)
            print(f"synced {len(counts)} users: {sum(counts.values())} changes", flush=True)
            if once:
                return
            await asyncio.sleep(interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between rounds")
    arguments = parser.parse_args()
    # A shell starts background jobs with SIGINT ignored, and asyncio.run() only turns SIGINT into
    # a cancellation where Python's own handler is installed: install it, so SIGINT stops us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # Ctrl-C: asyncio.run() cancels main(), whose exit closes the store and sandbox
        asyncio.run(main(arguments.once, arguments.interval))
    except KeyboardInterrupt:
        print("stopped", flush=True)
