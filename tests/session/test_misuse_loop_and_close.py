"""A manager used from a second event loop, or after ``aclose()``, is refused at the door
(issue 24, item 5): the second loop ended in a raw ``RuntimeError: Event loop is closed``, and
after ``aclose()`` a cached token was still served and ``register()`` accepted while an
uncached token raised. No request leaves the process (``offline`` answers none)."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

from aiofinaccess import (
    BearerAuth,
    ClientCredentials,
    Everifin,
    FinApi,
    Schedule,
    Secret,
    SessionManager,
    TokenSet,
    UsageError,
)

USER = "user-1"
#: Every public call a closed manager, or one on another loop, must refuse.
CALLS: dict[str, Callable[[SessionManager], Any]] = {
    "access_token (cached)": lambda m: m.access_token("everifin", USER),
    "access_token (not cached)": lambda m: m.access_token("everifin", "nobody"),
    "token_set": lambda m: m.token_set("everifin", USER),
    "refresh": lambda m: m.refresh("everifin", USER),
    "renew_after_rejection": lambda m: m.renew_after_rejection("everifin", USER, "at"),
    "state": lambda m: m.state("everifin", USER),
    "state_counts": lambda m: m.state_counts(),
    "key": lambda m: m.key("everifin", USER),
    "provider": lambda m: m.provider("everifin"),
    "oauth": lambda m: m.oauth("everifin"),
    "http_session": lambda m: m.http_session(),
    "register": lambda m: m.register(FinApi.sandbox(), ClientCredentials("id", "secret")),
    "start": lambda m: m.start(),
    "ready": lambda m: m.ready(),
    "restore": lambda m: m.restore(),
    "subscribe": lambda m: m.subscribe(lambda event: None),
    "connections": lambda m: m.connections,
    "events": lambda m: m.events(),
    "wait_idle": lambda m: m.wait_idle(),
    "login_with_password": lambda m: m.login_with_password("everifin", USER, "pw"),
    "authorization_request": lambda m: m.authorization_request(
        "everifin", "https://app.example/cb"
    ),
    "complete_authorization": lambda m: m.complete_authorization(
        "everifin", USER, "https://app.example/cb?code=c&state=s", None
    ),
    "store_token_set": lambda m: m.store_token_set("everifin", USER, fresh()),
    "revoke": lambda m: m.revoke("everifin", USER),
    "logout": lambda m: m.logout("everifin", USER),
    "forget": lambda m: m.forget("everifin", USER),
    "BearerAuth()": lambda m: BearerAuth(m, "everifin", USER),
}


@pytest.fixture(autouse=True)
def offline() -> Iterator[None]:
    with aioresponses():
        yield


def fresh() -> TokenSet:
    now = time.time()
    return TokenSet(Secret("at"), "Bearer", now, now + 300, refresh_token=Secret("rt"))


async def started() -> SessionManager:
    manager = SessionManager(schedule=Schedule(enabled=False))
    manager.register(Everifin.stage(), ClientCredentials("id", "secret"))
    await manager.start()
    await manager.store_token_set("everifin", USER, fresh())
    assert await manager.access_token("everifin", USER) == "at"
    return manager


async def refusals(manager: SessionManager) -> dict[str, str]:
    """What each call did: the refusal's message, or how it went wrong instead."""
    seen: dict[str, str] = {}
    for name, call in CALLS.items():
        try:
            result = call(manager)
            if inspect.isawaitable(result):
                await result
            seen[name] = "accepted"
        except UsageError as exc:
            seen[name] = str(exc)
        except Exception as exc:
            seen[name] = f"{type(exc).__name__}: {exc}"
    return seen


def test_a_manager_used_from_a_second_event_loop_is_refused() -> None:
    first = asyncio.new_event_loop()
    try:
        manager = first.run_until_complete(started())
        seen = asyncio.run(refusals(manager))
        wrong = {name: what for name, what in seen.items() if "another event loop" not in what}
        assert wrong == {}
        # The loop it belongs to still gets its tokens, and closes it.
        assert first.run_until_complete(manager.access_token("everifin", USER)) == "at"
        first.run_until_complete(manager.aclose())
    finally:
        first.close()


def test_a_manager_whose_loop_runs_in_another_thread_is_refused_here() -> None:
    """Its loop still runs (a worker thread's): a cached token is refused all the same."""
    first = asyncio.new_event_loop()
    thread = threading.Thread(target=first.run_forever)
    thread.start()
    try:
        manager = asyncio.run_coroutine_threadsafe(started(), first).result(30)
        with pytest.raises(UsageError, match="another event loop"):
            asyncio.run(manager.access_token("everifin", USER))
        mine = asyncio.run_coroutine_threadsafe(manager.access_token("everifin", USER), first)
        assert mine.result(30) == "at"
        asyncio.run_coroutine_threadsafe(manager.aclose(), first).result(30)
    finally:
        first.call_soon_threadsafe(first.stop)
        thread.join(30)
        first.close()


def test_a_manager_whose_loop_has_ended_is_refused_in_the_next_one() -> None:
    """The issue's run: two ``asyncio.run`` calls with one manager."""
    manager = SessionManager(schedule=Schedule(enabled=False))
    manager.register(Everifin.stage(), ClientCredentials("id", "secret"))

    async def first() -> str:
        await manager.start()
        await manager.store_token_set("everifin", USER, fresh())
        return await manager.access_token("everifin", USER)

    async def second() -> None:
        await manager.refresh("everifin", USER)

    assert asyncio.run(first()) == "at"
    with pytest.raises(UsageError, match="another event loop") as caught:
        asyncio.run(second())
    assert "one manager per event loop" in str(caught.value)


async def test_every_public_call_after_aclose_is_refused() -> None:
    manager = await started()
    await manager.aclose()
    seen = await refusals(manager)
    wrong = {name: what for name, what in seen.items() if "manager is closed" not in what}
    assert wrong == {}
    await manager.aclose()  # closing again is still allowed


async def test_bearer_auth_of_a_closed_manager_refuses_to_send() -> None:
    """The middleware is called as aiohttp calls it (aioresponses would bypass middlewares)."""
    manager = await started()
    auth = BearerAuth(manager, "everifin", USER)
    await manager.aclose()
    request = SimpleNamespace(url=URL(f"{Everifin.stage().api_url}/accounts"), headers={})
    sent: list[object] = []

    async def handler(request: object) -> object:
        sent.append(request)
        return SimpleNamespace(status=200)

    with pytest.raises(UsageError, match="manager is closed"):
        await auth(request, handler)  # type: ignore[arg-type]
    assert sent == []


async def test_a_call_in_flight_when_aclose_begins_is_refused_after() -> None:
    """A caller that comes while the manager closes gets the same refusal."""
    manager = await started()
    closing = asyncio.create_task(manager.aclose())
    await asyncio.sleep(0)
    with pytest.raises(UsageError, match="manager is closed"):
        await manager.access_token("everifin", USER)
    await closing
