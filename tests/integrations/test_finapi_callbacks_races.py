"""finAPI callbacks of one connection taken by two processes at once (two managers on one
store, each with its receiver on a real aiohttp server): the process holding the older reading
must not write it last, so a repair is not followed by a false second ``ReconnectRequired``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from aiofinaccess import SessionManager
from aiofinaccess.connections import ConnectionEvent, ConnectionState
from aiofinaccess.finapi import BackgroundUpdate, ConnectionUpdates, WebFormRequired
from aiofinaccess.integrations.finapi_callbacks import FinApiCallbacks, WebCallbacks
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox
from tests.support.finapi_journey import import_connection, press

USER = "race-user"
FAST = {"poll_interval": 0.01, "timeout": 10.0}


@asynccontextmanager
async def process(sandbox: Sandbox, store: Any) -> AsyncIterator[tuple[str, FinApiCallbacks]]:
    """One app process: its manager on the shared store, its callback routes on loopback."""
    async with SessionManager(store=store) as manager:
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        server = web.Application()
        receiver = FinApiCallbacks(manager, base_url="http://127.0.0.1:1/hooks")
        WebCallbacks(receiver, path="/hooks").setup(server)
        runner = web.AppRunner(server, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks", receiver
        finally:
            await runner.cleanup()


async def post_task(url: str, task_id: str, status: str) -> bool:
    body = json.dumps({"taskId": task_id, "status": status}).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/task?user={USER}", data=body) as response,
    ):
        assert response.status == 200
        return bool((await response.json())["confirmed"])


def kinds(events: list[ConnectionEvent]) -> list[str]:
    return [type(event).__name__ for event in events]


def held_after_reading(receiver: FinApiCallbacks) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``receiver``'s first read of a bank connection wait, once read, until released."""
    real: Callable[..., Any] = receiver._data.bank_connection
    read, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)
        if not read.is_set():
            read.set()
            await release.wait()
        return found

    receiver._data.bank_connection = held  # type: ignore[method-assign]
    return read, release


async def test_the_older_reading_of_two_racing_processes_is_not_written_last(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    events: list[ConnectionEvent] = []  # what either process told its app
    connection_id = await import_connection(sandbox_manager, USER)
    sandbox.service("tasks").steer(connection_id, user_action_required=True)
    updates = ConnectionUpdates(sandbox_manager)
    needs_form = await updates.update(USER, BackgroundUpdate(connection_id), **FAST)
    assert isinstance(needs_form, WebFormRequired)
    assert needs_form.task is not None
    task = needs_form.task.id
    store = sandbox_manager.store
    first: AbstractAsyncContextManager[tuple[str, FinApiCallbacks]] = process(sandbox, store)
    async with first as (url_a, receiver_a), process(sandbox, store) as (url_b, receiver_b):
        for receiver in (receiver_a, receiver_b):
            receiver.manager.connections.subscribe(events.append)
        assert await post_task(url_a, task, "WEB_FORM_REQUIRED")
        # A duplicate reaches process A, which reads the task and the connection: both still
        # say the bank wants the user. Then the user completes the form, and process B takes
        # the task's "finalised" callback: it reads the repair and records it.
        read, release = held_after_reading(receiver_a)
        duplicate = asyncio.create_task(post_task(url_a, task, "WEB_FORM_REQUIRED"))
        await read.wait()
        await press(needs_form)
        assert await post_task(url_b, task, "COMPLETED")
        release.set()
        await duplicate
    assert kinds(events) == ["ReconnectRequired", "ConnectionRepaired"]
    row = await sandbox_manager.connections.get("finapi", USER, str(connection_id))
    assert row is not None
    assert (row.state, row.episode) == (ConnectionState.ACTIVE, 1)
