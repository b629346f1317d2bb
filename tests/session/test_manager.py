"""Tests for aiofinaccess.session.manager: single-flight, cancellation safety, persist-then-publish.

The token endpoint is mocked with aioresponses and time is a FakeClock: nothing sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from aiofinaccess import (
    ApiError,
    ClientCredentials,
    ReauthorizationRequired,
    Schedule,
    Secret,
    SessionManager,
    StoreError,
    TokenKey,
    TokenSet,
    TokenState,
    UsageError,
)
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FailingStore, FakeClock
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


class TestSingleFlight:
    async def test_1000_concurrent_callers_cause_one_token_request(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """However many callers wait on an expired set, exactly one refresh is sent."""
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"), repeat=True)
        tokens = await asyncio.gather(*(manager.access_token(EVERIFIN, USER) for _ in range(1000)))
        assert set(tokens) == {"AT-1"}
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 1
        assert manager.stats.renewals == 1

    async def test_waiters_share_the_same_error(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """A failing refresh fails every waiter with one typed error, after one request."""
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(
            token_url(EVERIFIN),
            status=503,
            body="<html>down</html>",
            content_type="text/html",
            repeat=True,
        )
        results = await asyncio.gather(
            *(manager.access_token(EVERIFIN, USER) for _ in range(200)), return_exceptions=True
        )
        assert all(isinstance(result, ApiError) and result.status == 503 for result in results)
        assert len({id(result) for result in results}) == 1
        # One renewal for 200 callers; inside it, a 503 is retried up to RetryPolicy.attempts.
        assert manager.stats.renewals == 1
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 3
        assert manager.state(EVERIFIN, USER) is TokenState.BACKOFF

    async def test_fresh_tokens_cost_no_request(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """The fresh path answers from memory."""
        mocked.post(
            token_url(FINAPI), payload=token_body("CT-1", None, expires_in=3600), repeat=True
        )
        assert await manager.access_token(FINAPI) == "CT-1"
        clock.advance(60)
        for _ in range(100):
            assert await manager.access_token(FINAPI) == "CT-1"
        assert len(token_requests(mocked, token_url(FINAPI))) == 1
        assert manager.state(FINAPI) is TokenState.FRESH

    async def test_stale_token_is_served_while_one_background_refresh_runs(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """Inside the lead window callers get the old token at once; one refresh replaces it."""
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1", expires_in=300))
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
        clock.advance(250)  # lead for 300 s is 60 s: stale now, not expired
        assert manager.state(EVERIFIN, USER) is TokenState.STALE
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-2", "RT-2", expires_in=300))
        served = await asyncio.gather(*(manager.access_token(EVERIFIN, USER) for _ in range(50)))
        assert set(served) == {"AT-1"}
        await asyncio.sleep(0.01)
        assert await manager.access_token(EVERIFIN, USER) == "AT-2"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 2


class TestCancellation:
    async def test_a_cancelled_caller_does_not_lose_a_sent_refresh(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock, store: MemoryStore
    ) -> None:
        """The refresh completes and persists although the caller that started it is gone."""
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        sent = asyncio.Event()
        release = asyncio.Event()

        async def slow_endpoint(url: URL, **kwargs: Any) -> CallbackResult:
            sent.set()
            await release.wait()
            return CallbackResult(payload=token_body("AT-1", "RT-1"))

        mocked.post(token_url(EVERIFIN), callback=slow_endpoint)
        caller = asyncio.create_task(manager.access_token(EVERIFIN, USER))
        await sent.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        for _ in range(20):
            await asyncio.sleep(0)
        stored = await store.get(TokenKey(EVERIFIN.name, USER))
        assert stored is not None
        assert stored.token_set.refresh_token == Secret("RT-1")
        # The next caller gets the persisted token without another request.
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 1

    async def test_a_cancelled_code_exchange_still_stores_the_tokens(
        self, manager: SessionManager, mocked: aioresponses
    ) -> None:
        """A browser that goes away mid-callback does not cost the user their connection."""
        request = manager.authorization_request(EVERIFIN, "https://app.example.com/cb")
        sent = asyncio.Event()
        release = asyncio.Event()

        async def slow_endpoint(url: URL, **kwargs: Any) -> CallbackResult:
            sent.set()
            await release.wait()
            return CallbackResult(payload=token_body("AT-1", "RT-1"))

        mocked.post(token_url(EVERIFIN), callback=slow_endpoint)
        callback = {"code": "c-1", "state": request.state, "iss": str(EVERIFIN.issuer)}
        caller = asyncio.create_task(
            manager.complete_authorization(EVERIFIN, USER, callback, request)
        )
        await sent.wait()
        caller.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        for _ in range(20):
            await asyncio.sleep(0)
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 1


class TestPersistThenPublish:
    async def test_failed_store_write_publishes_nothing_and_keeps_the_redeemed_set(
        self, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """No caller ever sees a token the store did not accept (they get StoreError); the
        redeemed set is kept and written once the store recovers, without a second request."""
        store = FailingStore()
        async with SessionManager(
            store=store, clock=clock, schedule=Schedule(enabled=False)
        ) as manager:
            manager.register(EVERIFIN, ClientCredentials("c", "s"))
            await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
            store.fail_puts = True
            mocked.post(token_url(EVERIFIN), payload=token_body("AT-NEW", "RT-NEW"), repeat=True)
            results = await asyncio.gather(
                *(manager.access_token(EVERIFIN, USER) for _ in range(100)), return_exceptions=True
            )
            assert all(isinstance(result, StoreError) for result in results)
            assert "AT-NEW" not in {str(result) for result in results}
            stored = await store.get(TokenKey(EVERIFIN.name, USER))
            assert stored is not None
            assert stored.token_set.access_token == Secret("AT-0")
            assert manager.stats.store_failures >= 3
            # Meanwhile no other renewal of the key starts: callers keep getting StoreError.
            with pytest.raises(StoreError):
                await manager.access_token(EVERIFIN, USER)
            store.fail_puts = False
            await manager.wait_idle()
            stored = await store.get(TokenKey(EVERIFIN.name, USER))
            assert stored is not None
            assert stored.token_set.access_token == Secret("AT-NEW")
            assert await manager.access_token(EVERIFIN, USER) == "AT-NEW"
            assert len(token_requests(mocked, token_url(EVERIFIN))) == 1

    async def test_response_without_refresh_token_keeps_the_old_one(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock, store: MemoryStore
    ) -> None:
        """RFC 6749 6: the stored set keeps the refresh token it had."""
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", refresh=None))
        await manager.access_token(EVERIFIN, USER)
        stored = await store.get(TokenKey(EVERIFIN.name, USER))
        assert stored is not None
        assert stored.token_set.access_token == Secret("AT-1")
        assert stored.token_set.refresh_token == Secret("RT-0")

    async def test_a_set_renewed_elsewhere_is_adopted_without_a_request(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock, store: MemoryStore
    ) -> None:
        """Another process rotated the token: re-read, adopt, never spend the old refresh token."""
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        key = TokenKey(EVERIFIN.name, USER)
        current = await store.get(key)
        assert current is not None
        fresh = TokenSet(
            access_token="AT-OTHER",
            refresh_token="RT-OTHER",
            issued_at=clock.wall(),
            expires_at=clock.wall() + 300,
        )
        await store.put(key, fresh, expected_version=current.version)
        assert await manager.access_token(EVERIFIN, USER) == "AT-OTHER"
        assert token_requests(mocked, token_url(EVERIFIN)) == []
        assert manager.stats.adopted_from_store == 1


class TestReauthorization:
    async def test_invalid_grant_poisons_the_set_until_new_tokens_are_stored(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """One request; every later call fails at once; storing a new set heals it."""
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(
            token_url(EVERIFIN),
            status=400,
            payload={"error": "invalid_grant", "error_description": "Stale token"},
            repeat=True,
        )
        with pytest.raises(ReauthorizationRequired) as first:
            await manager.access_token(EVERIFIN, USER)
        assert first.value.reason == "invalid_grant"
        assert first.value.key == TokenKey(EVERIFIN.name, USER).hashed
        for _ in range(10):
            with pytest.raises(ReauthorizationRequired):
                await manager.access_token(EVERIFIN, USER)
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 1
        assert manager.state(EVERIFIN, USER) is TokenState.REAUTH_REQUIRED
        fresh = TokenSet(access_token="AT-9", issued_at=clock.wall(), expires_at=clock.wall() + 300)
        await manager.store_token_set(EVERIFIN, USER, fresh)
        assert await manager.access_token(EVERIFIN, USER) == "AT-9"

    async def test_unknown_user_needs_authorization(
        self, manager: SessionManager, mocked: aioresponses
    ) -> None:
        """No stored set and no password: nothing is sent."""
        with pytest.raises(ReauthorizationRequired, match="no_token_set"):
            await manager.access_token(EVERIFIN, "nobody")
        assert mocked.requests == {}

    async def test_unregistered_provider_is_a_usage_error(self, manager: SessionManager) -> None:
        """Misuse is reported as such."""
        with pytest.raises(UsageError, match="not registered"):
            await manager.access_token("unknown")


class TestFinApi:
    async def test_client_token_via_client_credentials(
        self, manager: SessionManager, mocked: aioresponses
    ) -> None:
        """No refresh token: client_credentials both times."""
        mocked.post(token_url(FINAPI), payload=token_body("CT-1", None, expires_in=3600))
        assert await manager.access_token(FINAPI) == "CT-1"
        form = dict(token_requests(mocked, token_url(FINAPI))[0].kwargs["data"])
        assert form["grant_type"] == "client_credentials"

    async def test_reissued_client_token_is_not_hammered(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """finAPI answers the same token until it expires: one renewal ahead, then wait."""
        mocked.post(token_url(FINAPI), payload=token_body("CT-1", None, expires_in=3600))
        await manager.access_token(FINAPI)
        clock.advance(3600 - 299)  # inside the 300 s lead: stale
        mocked.post(token_url(FINAPI), payload=token_body("CT-1", None, expires_in=299))
        assert await manager.access_token(FINAPI) == "CT-1"
        await asyncio.sleep(0.01)
        clock.advance(200)
        for _ in range(20):
            assert await manager.access_token(FINAPI) == "CT-1"
        assert len(token_requests(mocked, token_url(FINAPI))) == 2
        clock.advance(98.5)  # within the expiry margin: must renew, and not before expiry
        mocked.post(token_url(FINAPI), payload=token_body("CT-2", None, expires_in=3600))
        assert await manager.access_token(FINAPI) == "CT-2"
        assert len(token_requests(mocked, token_url(FINAPI))) == 3
        assert clock.slept
        assert clock.slept[-1] > 0

    async def test_user_token_falls_back_to_password(
        self, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """A dead refresh token is replaced through the app's credentials callback."""
        asked: list[str] = []

        async def lookup(user_id: str) -> str:
            asked.append(user_id)
            return "pw-from-vault"

        async with SessionManager(clock=clock, schedule=Schedule(enabled=False)) as manager:
            manager.register(FINAPI, FINAPI_CLIENT, password_lookup=lookup)
            mocked.post(token_url(FINAPI), payload=token_body("UT-1", "URT-1", expires_in=3600))
            await manager.login_with_password(FINAPI, "alice", "pw-initial")
            clock.advance(3600)
            mocked.post(token_url(FINAPI), status=400, payload={"error": "invalid_grant"})
            mocked.post(token_url(FINAPI), payload=token_body("UT-2", "URT-2", expires_in=3600))
            assert await manager.access_token(FINAPI, "alice") == "UT-2"
            forms = [
                dict(call.kwargs["data"]) for call in token_requests(mocked, token_url(FINAPI))
            ]
            assert [form["grant_type"] for form in forms] == [
                "password",
                "refresh_token",
                "password",
            ]
            assert forms[2]["password"] == "pw-from-vault"
            assert asked == ["alice"]


class TestRejectionAndLifetime:
    async def test_many_401s_cause_one_renewal(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """The API refused a token we thought fresh: one shared renewal for every caller."""
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        rejected = await manager.access_token(EVERIFIN, USER)
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-2", "RT-2"))
        renewed = await asyncio.gather(
            *(manager.renew_after_rejection(EVERIFIN, USER, rejected) for _ in range(100))
        )
        assert set(renewed) == {"AT-2"}
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 2
        # A late 401 for the old token does not renew again.
        assert await manager.renew_after_rejection(EVERIFIN, USER, rejected) == "AT-2"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 2

    async def test_aclose_lets_a_sent_refresh_persist(
        self, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """Closing waits for renewals in flight, then closes the store and session."""
        store = MemoryStore()
        manager = SessionManager(store=store, clock=clock, schedule=Schedule(enabled=False))
        manager.register(EVERIFIN, ClientCredentials("c", "s"))
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        sent = asyncio.Event()

        async def slow_endpoint(url: URL, **kwargs: Any) -> CallbackResult:
            sent.set()
            await asyncio.sleep(0.05)
            return CallbackResult(payload=token_body("AT-1", "RT-1"))

        mocked.post(token_url(EVERIFIN), callback=slow_endpoint)
        caller = asyncio.create_task(manager.access_token(EVERIFIN, USER))
        await sent.wait()
        await manager.aclose()
        assert (await caller) == "AT-1"
        stored = await store.get(TokenKey(EVERIFIN.name, USER))
        assert stored is not None
        assert stored.token_set.access_token == Secret("AT-1")
        with pytest.raises(UsageError, match="closed"):
            await manager.access_token(EVERIFIN, "someone-else")
        await manager.aclose()  # idempotent

    async def test_revoke_then_access_needs_reauthorization(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock, store: MemoryStore
    ) -> None:
        """Revocation deletes the set and the key refuses to serve until new tokens arrive."""
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        await manager.access_token(EVERIFIN, USER)
        mocked.post(str(EVERIFIN.revocation_url), status=200)
        await manager.revoke(EVERIFIN, USER)
        assert await store.get(TokenKey(EVERIFIN.name, USER)) is None
        with pytest.raises(ReauthorizationRequired, match="revoked"):
            await manager.access_token(EVERIFIN, USER)
        assert manager.state(EVERIFIN, USER) is TokenState.REVOKED

    async def test_finapi_revoke_uses_the_client_token(
        self, manager: SessionManager, mocked: aioresponses
    ) -> None:
        """finAPI revocation is authorised by the client's bearer token."""
        mocked.post(token_url(FINAPI), payload=token_body("UT-1", "URT-1", expires_in=3600))
        await manager.login_with_password(FINAPI, "alice", "pw-123456")
        mocked.post(token_url(FINAPI), payload=token_body("CT-1", None, expires_in=3600))
        mocked.post(str(FINAPI.revocation_url), status=200)
        await manager.revoke(FINAPI, "alice")
        call = mocked.requests[("POST", URL(str(FINAPI.revocation_url)))][0]
        assert call.kwargs["headers"]["Authorization"] == "Bearer CT-1"
        assert dict(call.kwargs["data"]) == {"token": "URT-1", "token_type_hint": "refresh_token"}

    async def test_keycloak_logout_ends_the_session(
        self, manager: SessionManager, mocked: aioresponses, clock: FakeClock
    ) -> None:
        """Logout sends the refresh token and forgets the set."""
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(str(EVERIFIN.logout_url), status=204)
        await manager.logout(EVERIFIN, USER)
        call = mocked.requests[("POST", URL(str(EVERIFIN.logout_url)))][0]
        assert dict(call.kwargs["data"])["refresh_token"] == "RT-0"
        with pytest.raises(ReauthorizationRequired):
            await manager.access_token(EVERIFIN, USER)
