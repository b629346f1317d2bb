"""The app's callbacks and start-up fail early, with the message a user sees (issue 14).

Sync/async mix-ups: a plain ``password_lookup`` works like an async one; ``subscribe`` refuses
a coroutine function at once. Start-up: an unreachable store fails ``async with`` with a typed
``StoreError`` naming the store; ``ready()`` is what a readiness probe awaits. Re-authorization:
events and errors name the provider and the app's user, logs only the hash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aioresponses import aioresponses

from aiofinaccess import (
    GrantLost,
    ReauthorizationRequired,
    RedisStore,
    Schedule,
    SessionManager,
    StoreError,
    TokenKey,
    TokenSet,
    TokenState,
    UsageError,
)
from aiofinaccess.connections import ConnectionEvent, ReconnectRequired
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.session.events import ManagerEvent
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock
from tests.support.tokens import (
    EVERIFIN,
    EVERIFIN_CLIENT,
    FINAPI,
    FINAPI_CLIENT,
    expired_set,
    token_body,
    token_url,
)

#: Nobody listens on port 1: connecting is refused at once.
UNREACHABLE = "redis://127.0.0.1:1/0"
USER = "customer-4711@example.org"


def fresh(clock: FakeClock) -> TokenSet:
    now = clock.wall()
    return TokenSet("AT-0", issued_at=now, expires_at=now + 3600, refresh_token="RT-0")


# -- sync/async mix-ups ---------------------------------------------------------------------------


async def test_a_plain_password_lookup_is_called_and_used(
    mocked: aioresponses, clock: FakeClock
) -> None:
    """``password_lookup=lambda u: "pw"`` used to fail at first use with "object str can't be
    used in 'await' expression"; a plain function now works like an async one."""
    asked: list[str] = []
    async with SessionManager(clock=clock, schedule=Schedule(enabled=False)) as manager:
        manager.register(
            FINAPI, FINAPI_CLIENT, password_lookup=lambda user: asked.append(user) or "pw-plain"
        )
        mocked.post(token_url(FINAPI), payload=token_body("UT-1", "URT-1", expires_in=3600))
        await manager.login_with_password(FINAPI, USER, "pw-initial")
        clock.advance(3600)
        mocked.post(token_url(FINAPI), status=400, payload={"error": "invalid_grant"})
        mocked.post(token_url(FINAPI), payload=token_body("UT-2", "URT-2", expires_in=3600))
        assert await manager.access_token(FINAPI, USER) == "UT-2"
    forms = [dict(call.kwargs["data"]) for key, calls in mocked.requests.items() for call in calls]
    assert forms[-1]["grant_type"] == "password"
    assert forms[-1]["password"] == "pw-plain"
    assert asked == [USER]


async def test_an_async_subscriber_is_refused_at_subscribe(manager: SessionManager) -> None:
    """``subscribe(async def ...)`` used to register and never run (a RuntimeWarning at each
    event); now it fails at once and says what to do instead."""

    async def handle(event: ManagerEvent) -> None:  # pragma: no cover  (never called)
        del event

    with pytest.raises(ConfigurationError) as info:
        manager.subscribe(handle)
    assert str(info.value) == (
        "subscribe() calls its callback synchronously, so the coroutine function "
        "test_an_async_subscriber_is_refused_at_subscribe.<locals>.handle would never run: "
        "subscribe a plain function, iterate 'async for event in manager.events()', or use "
        "manager.connections.subscribe(), which awaits async callbacks"
    )


async def test_a_lambda_returning_a_coroutine_is_closed_and_logged(
    manager: SessionManager,
    mocked: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plain function that returns a coroutine passes subscribe(); at the event its coroutine
    is closed (no "never awaited" warning, which this suite turns into an error) and logged."""
    ran: list[ManagerEvent] = []

    async def handle(event: ManagerEvent) -> None:  # pragma: no cover  (closed, never run)
        ran.append(event)

    manager.subscribe(lambda event: handle(event))  # noqa: PLW0108  (the point of the test)
    await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
    mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
    with caplog.at_level(logging.ERROR, logger="aiofinaccess"):
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
    assert ran == []
    assert any("returned an awaitable, which never runs" in r.message for r in caplog.records)


# -- start-up -------------------------------------------------------------------------------------


async def test_an_unreachable_store_fails_at_start_naming_the_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``async with SessionManager(store=RedisStore(<unreachable>))`` used to enter, and the
    first ``register()`` printed "Task exception was never retrieved"."""
    with pytest.raises(StoreError) as info:
        async with SessionManager(store=RedisStore(UNREACHABLE)) as manager:
            manager.register(FINAPI, FINAPI_CLIENT)  # pragma: no cover
    message = str(info.value)
    assert message.startswith(
        "token store RedisStore(redis://127.0.0.1:1/0, prefix='aiofinaccess:') cannot be read: "
    )
    assert message.endswith("failed (ConnectionError)")
    await asyncio.sleep(0.05)
    assert not any("never retrieved" in record.getMessage() for record in caplog.records)


async def test_providers_registered_before_start_fail_at_start_too() -> None:
    manager = SessionManager(store=RedisStore(UNREACHABLE))
    manager.register(FINAPI, FINAPI_CLIENT)
    pattern = r"^token store RedisStore\(redis://127\.0\.0\.1:1/0"
    with pytest.raises(StoreError, match=pattern):
        await manager.start()
    with pytest.raises(StoreError, match=pattern):
        await manager.ready()  # the readiness probe says so too
    await manager.aclose()
    with pytest.raises(UsageError, match="closed"):
        await manager.ready()


class UnreadableStore(MemoryStore):
    """A memory store whose listing fails once ``broken`` is set."""

    broken = False

    def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        if self.broken:
            raise OSError("connection reset")
        return super().keys(provider)


async def test_ready_raises_the_restore_error_naming_the_store(clock: FakeClock) -> None:
    """A store that fails after start: ``ready()`` (the readiness probe) says which one."""
    store = UnreadableStore()
    async with SessionManager(
        store=store, clock=clock, schedule=Schedule(enabled=False)
    ) as manager:
        store.broken = True
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        with pytest.raises(StoreError) as info:
            await manager.ready()
    assert str(info.value) == (
        "token store MemoryStore(token_sets=0) cannot be read: token store failed: OSError"
    )


async def test_ready_waits_for_the_restore_of_stored_sets(clock: FakeClock) -> None:
    store = MemoryStore()
    async with SessionManager(store=store, clock=clock, schedule=Schedule(enabled=False)) as first:
        first.register(EVERIFIN, EVERIFIN_CLIENT)
        await first.store_token_set(EVERIFIN, USER, fresh(clock))
    manager = SessionManager(store=store, clock=clock, schedule=Schedule(enabled=False))
    with pytest.raises(UsageError, match=r"not started \(use 'async with' or start\(\)\)"):
        await manager.ready()
    async with manager:
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        assert "token_sets=0" in repr(manager)
        await manager.ready()
        assert "token_sets=1" in repr(manager)
        assert manager.state(EVERIFIN, USER) is TokenState.FRESH


# -- "please reconnect your bank" -----------------------------------------------------------------


async def test_reauth_hook_names_the_user_and_logs_keep_the_hash(
    manager: SessionManager,
    mocked: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dead grant reaches ``manager.connections`` as ``ReconnectRequired`` (async callback)
    with provider and user id; the error names them too; no log record and no ``repr`` holds
    the user id."""
    emailed: list[tuple[str, str | None, str]] = []
    seen: list[ManagerEvent] = []

    async def ask_to_reconnect(event: ConnectionEvent) -> None:
        await asyncio.sleep(0)  # an email goes out here
        assert isinstance(event, ReconnectRequired)
        emailed.append((event.provider, event.subject, event.detail))

    manager.connections.subscribe(ask_to_reconnect)
    manager.subscribe(seen.append)
    await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
    mocked.post(token_url(EVERIFIN), status=400, payload={"error": "invalid_grant"})
    caplog.set_level(logging.DEBUG, logger="aiofinaccess")  # whatever an earlier test set
    with pytest.raises(ReauthorizationRequired) as info:
        await manager.access_token(EVERIFIN, USER)
    await manager.wait_idle()
    assert emailed == [("everifin", USER, "invalid_grant")]
    assert (info.value.provider, info.value.subject) == ("everifin", USER)
    key_hash = manager.key(EVERIFIN, USER).hashed
    assert info.value.key == key_hash
    assert USER in str(info.value)  # for the app, which knows its users (issue 24, item 3)
    assert USER not in repr(info.value)  # what the SDK's logs print
    (event,) = [e for e in seen if isinstance(e, GrantLost)]
    assert (event.key, event.subject) == (key_hash, USER)
    assert USER not in repr(event)
    # Later calls are refused without a request, and still name the user.
    with pytest.raises(ReauthorizationRequired) as again:
        await manager.access_token(EVERIFIN, USER)
    assert again.value.subject == USER
    texts = [record.getMessage() for record in caplog.records]
    assert any(key_hash in text for text in texts)
    assert not [text for text in texts if USER in text]


async def test_every_renewal_event_carries_the_subject(
    manager: SessionManager, mocked: aioresponses, clock: FakeClock
) -> None:
    seen: list[ManagerEvent] = []
    unsubscribe = manager.subscribe(seen.append)
    await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
    mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
    assert await manager.access_token(EVERIFIN, USER) == "AT-1"
    unsubscribe()
    assert [type(event).__name__ for event in seen] == ["Refreshed", "Rotated"]
    assert {event.subject for event in seen} == {USER}


async def test_a_failing_reauth_callback_is_logged_without_the_user(
    manager: SessionManager,
    mocked: aioresponses,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(event: ConnectionEvent) -> None:
        raise RuntimeError(f"mail server down for {event.subject}")

    caplog.set_level(logging.DEBUG, logger="aiofinaccess")
    manager.connections.subscribe(broken)
    await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
    mocked.post(token_url(EVERIFIN), status=400, payload={"error": "invalid_grant"})
    with pytest.raises(ReauthorizationRequired):
        await manager.access_token(EVERIFIN, USER)
    await manager.wait_idle()
    texts = [record.getMessage() for record in caplog.records]
    assert "connection event callback failed (RuntimeError): it will be delivered again" in texts
    assert not [text for text in texts if USER in text]
    (row,) = await manager.connections.list(needs_action=True)
    assert (row.provider, row.subject, row.episode) == ("everifin", USER, 1)
