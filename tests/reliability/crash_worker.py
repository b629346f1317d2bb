"""A worker for the crash test: a manager with its scheduler and a request load, until killed.

    python -m tests.reliability.crash_worker STORE_SPEC BASE_URL EVENTS_PATH USERS

It appends one byte per event to EVENTS_PATH with unbuffered writes, so what it did before a
SIGKILL is on disk: ``S`` a token request started, ``X`` one ended without a token to store
(error status or exception), ``P`` a renewed set was persisted, ``F`` a renewal failed,
``R`` the worker is ready. A failure is ``F`` only when it follows a 2xx answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
from types import SimpleNamespace

import aiohttp

from aiofinaccess import (
    AiofinaccessError,
    ClientCredentials,
    Everifin,
    Refreshed,
    RefreshFailed,
    RefreshPolicy,
    Schedule,
    SessionManager,
    Timeouts,
)
from aiofinaccess.session.events import ManagerEvent
from tests.support.multiprocess_worker import open_store

_AFTER_ANSWER = frozenset({"TokenResponseError", "UnexpectedResponseError", "StoreError"})
POLICY = RefreshPolicy(lead_fraction=0.3, min_lead=0.1, expiry_margin=0.05)


async def main(store_spec: str, base_url: str, events_path: str, users: int) -> None:
    fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def mark(code: bytes) -> None:
        os.write(fd, code)

    trace = aiohttp.TraceConfig()

    async def started(
        _session: object, _context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.url.path.endswith("/token"):
            mark(b"S")

    async def ended(
        _session: object, _context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.url.path.endswith("/token") and params.response.status != 200:
            mark(b"X")

    async def failed(
        _session: object, _context: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        if params.url.path.endswith("/token"):
            mark(b"X")

    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)

    def on_event(event: ManagerEvent) -> None:
        if isinstance(event, Refreshed) and event.grant != "adopted":
            mark(b"P")
        elif isinstance(event, RefreshFailed) and event.error in _AFTER_ANSWER:
            # Only failures that come after a 2xx answer close a window; a lease timeout or a
            # missing set sent nothing, and a refusal already closed it (X).
            mark(b"F")

    client_id, secret = os.environ["CRASH_CLIENT_ID"], os.environ["CRASH_CLIENT_SECRET"]
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as http,
        SessionManager(
            store=open_store(store_spec),
            session=http,
            policy=POLICY,
            schedule=Schedule(idle_after=None),
            # A killed holder's lease blocks its token set until it lapses, so keep it short;
            # but a token request must never time out here: a refresh the server processed
            # after the client gave up is a lost session (the window this test measures).
            timeouts=Timeouts(token=8.0, lease=10.0),
        ) as manager,
    ):
        manager.register(
            Everifin.at(base_url + "/auth", base_url), ClientCredentials(client_id, secret)
        )
        manager.subscribe(on_event)
        await manager.restore()
        mark(b"R")
        rng = random.Random()
        while True:
            with contextlib.suppress(AiofinaccessError):
                await manager.access_token("everifin", f"user-{rng.randrange(users)}")
            await asyncio.sleep(rng.uniform(0, 0.01))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
