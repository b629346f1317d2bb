"""Failure policy and observability of the renewal path (aioresponses, fake clock)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from aiofinaccess import (
    ApiError,
    ClientCredentials,
    ReauthorizationRequired,
    RetryPolicy,
    Schedule,
    SessionManager,
    TokenKey,
    TokenSet,
    TransportError,
)
from aiofinaccess.session.events import GrantLost, ManagerEvent, Refreshed, RefreshFailed, Rotated
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock, eventually
from tests.support.tokens import (
    EVERIFIN,
    FINAPI,
    FINAPI_CLIENT,
    expired_set,
    token_body,
    token_requests,
    token_url,
)

USER = "user-1"
KEY = TokenKey(EVERIFIN.name, USER)


@pytest.fixture
async def manager(clock: FakeClock, store: MemoryStore) -> Any:
    async with SessionManager(
        store=store, clock=clock, schedule=Schedule(enabled=False)
    ) as manager:
        manager.register(EVERIFIN, ClientCredentials("c", "s"))
        manager.register(FINAPI, FINAPI_CLIENT)
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        yield manager


class TestRetries:
    async def test_connect_errors_are_retried_with_jittered_backoff(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """Surely-unsent requests are retried; waits stay inside the full-jitter window."""
        mocked.post(token_url(EVERIFIN), exception=aiohttp.ConnectionTimeoutError())
        mocked.post(token_url(EVERIFIN), exception=aiohttp.ConnectionTimeoutError())
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
        assert manager.stats.retries == 2
        assert len(clock.slept) == 2
        assert all(0 <= wait <= RetryPolicy().max_wait for wait in clock.slept)

    async def test_429_waits_for_retry_after(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """A short Retry-After is honoured exactly."""
        mocked.post(token_url(EVERIFIN), status=429, headers={"Retry-After": "2"}, payload={})
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
        assert clock.slept == [2.0]

    async def test_a_long_retry_after_is_left_to_the_scheduler(
        self, mocked: aioresponses, clock: FakeClock, store: MemoryStore
    ) -> None:
        """Retry-After beyond max_retry_after fails the call; the scheduler retries after it."""
        async with SessionManager(store=store, clock=clock) as manager:
            manager.register(EVERIFIN, ClientCredentials("c", "s"))
            await store.put(KEY, expired_set(clock), expected_version=None)
            failures: list[ManagerEvent] = []
            manager.subscribe(failures.append)
            mocked.post(token_url(EVERIFIN), status=429, headers={"Retry-After": "30"}, payload={})
            mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
            started = clock.monotonic()
            await manager.restore()
            await eventually(lambda: len(token_requests(mocked, token_url(EVERIFIN))) == 2)
            await manager.wait_idle()
            assert clock.monotonic() - started >= 30
            failed = [event for event in failures if isinstance(event, RefreshFailed)]
            assert len(failed) == 1
            assert failed[0].retry_in is not None
            assert failed[0].retry_in >= 30
            assert await manager.access_token(EVERIFIN, USER) == "AT-1"


class TestAmbiguousRotatingRefresh:
    async def test_a_late_success_elsewhere_is_adopted_not_replayed(
        self, manager: SessionManager, mocked: aioresponses, store: MemoryStore, clock: FakeClock
    ) -> None:
        """Read timeout after sending: re-read the store, find the rotated set, send nothing."""

        async def rotated_elsewhere_then_timeout(url: URL, **kwargs: Any) -> CallbackResult:
            current = await store.get(KEY)
            assert current is not None
            other = TokenSet(
                access_token="AT-OTHER",
                refresh_token="RT-OTHER",
                issued_at=clock.wall(),
                expires_at=clock.wall() + 300,
            )
            await store.put(KEY, other, expected_version=current.version)
            raise TimeoutError

        mocked.post(token_url(EVERIFIN), callback=rotated_elsewhere_then_timeout)
        assert await manager.access_token(EVERIFIN, USER) == "AT-OTHER"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 1

    async def test_retried_at_most_once(
        self, manager: SessionManager, mocked: aioresponses
    ) -> None:
        """Two ambiguous failures in a row: two requests, then a typed error, never a third."""
        mocked.post(token_url(EVERIFIN), exception=TimeoutError(), repeat=True)
        with pytest.raises(TransportError) as info:
            await manager.access_token(EVERIFIN, USER)
        assert info.value.request_sent is True
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 2

    async def test_a_500_is_ambiguous_too(
        self, manager: SessionManager, mocked: aioresponses
    ) -> None:
        """A 500 on a rotating refresh may have rotated it: one retry at most."""
        mocked.post(token_url(EVERIFIN), status=500, payload={"error": "server_error"}, repeat=True)
        with pytest.raises(ApiError):
            await manager.access_token(EVERIFIN, USER)
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 2

    async def test_non_rotating_grants_use_every_attempt(
        self, manager: SessionManager, mocked: aioresponses
    ) -> None:
        """client_credentials spends nothing: ambiguous failures are retried up to attempts."""
        mocked.post(token_url(FINAPI), exception=TimeoutError(), repeat=True)
        with pytest.raises(TransportError):
            await manager.access_token(FINAPI)
        assert len(token_requests(mocked, token_url(FINAPI))) == RetryPolicy().attempts


class TestDeadGrants:
    async def test_invalid_grant_is_not_hammered_and_is_forgotten_everywhere(
        self, mocked: aioresponses, clock: FakeClock, store: MemoryStore
    ) -> None:
        """One request, a GrantLost event, the stored set deleted; no scheduled retries."""
        events: list[ManagerEvent] = []
        async with SessionManager(store=store, clock=clock) as manager:
            manager.register(EVERIFIN, ClientCredentials("c", "s"))
            manager.subscribe(events.append)
            mocked.post(
                token_url(EVERIFIN), status=400, payload={"error": "invalid_grant"}, repeat=True
            )
            await store.put(KEY, expired_set(clock), expected_version=None)
            await manager.restore()
            await eventually(lambda: any(isinstance(event, GrantLost) for event in events))
            clock.advance(3600)
            for _ in range(100):
                await asyncio.sleep(0)
            with pytest.raises(ReauthorizationRequired):
                await manager.access_token(EVERIFIN, USER)
            assert len(token_requests(mocked, token_url(EVERIFIN))) == 1
            assert await store.get(KEY) is None
            assert manager.stats.reauth_required == 1

    async def test_one_failing_set_does_not_stop_the_scheduler(
        self, mocked: aioresponses, clock: FakeClock, store: MemoryStore
    ) -> None:
        """A set whose endpoint fails keeps failing alone; another set renews on schedule."""
        async with SessionManager(store=store, clock=clock) as manager:
            manager.register(EVERIFIN, ClientCredentials("c", "s"))
            manager.register(FINAPI, FINAPI_CLIENT)
            mocked.post(
                token_url(EVERIFIN), status=400, payload={"error": "invalid_grant"}, repeat=True
            )
            issued = clock.wall()
            await store.put(KEY, expired_set(clock), expected_version=None)
            client_set = TokenSet(access_token="CT-0", issued_at=issued, expires_at=issued + 100)
            await store.put(manager.key(FINAPI), client_set, expected_version=None)
            mocked.post(
                token_url(FINAPI), payload=token_body("CT-1", None, expires_in=100), repeat=True
            )
            await manager.restore()
            await eventually(lambda: len(token_requests(mocked, token_url(FINAPI))) >= 3)
            assert len(token_requests(mocked, token_url(EVERIFIN))) == 1


class TestObservability:
    async def test_events_and_counters(self, manager: SessionManager, mocked: aioresponses) -> None:
        """Refreshed and Rotated reach callbacks and iterators; counters move; no user ids."""
        seen: list[ManagerEvent] = []
        manager.subscribe(seen.append)
        iterator = manager.events()
        collected: list[ManagerEvent] = []

        async def collect() -> None:
            async for event in iterator:
                collected.append(event)

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0)
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
        await manager.access_token(EVERIFIN, USER)
        await asyncio.sleep(0)
        kinds = [type(event) for event in seen]
        assert kinds == [Refreshed, Rotated]
        refreshed = seen[0]
        assert isinstance(refreshed, Refreshed)
        assert refreshed.key == KEY.hashed
        assert refreshed.grant == "refresh_token"
        assert USER not in repr(seen)
        assert manager.stats.rotations == 1
        assert manager.stats.as_dict()["renewals"] == 1
        await manager.aclose()
        await collector
        assert [type(event) for event in collected] == [Refreshed, Rotated]

    async def test_log_lines_name_the_hash_not_the_user(
        self, manager: SessionManager, mocked: aioresponses, caplog: pytest.LogCaptureFixture
    ) -> None:
        """User ids are personal data: logs carry the hashed key."""
        caplog.set_level(logging.DEBUG, logger="aiofinaccess")
        mocked.post(token_url(EVERIFIN), status=400, payload={"error": "invalid_grant"})
        with pytest.raises(ReauthorizationRequired):
            await manager.access_token(EVERIFIN, USER)
        assert KEY.hashed in caplog.text
        assert USER not in caplog.text

    async def test_a_failing_callback_is_logged_not_raised(
        self, manager: SessionManager, mocked: aioresponses, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Hooks observe; they cannot break a renewal."""

        def broken(event: ManagerEvent) -> None:
            raise RuntimeError("hook bug")

        manager.subscribe(broken)
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
        assert "event callback" in caplog.text
