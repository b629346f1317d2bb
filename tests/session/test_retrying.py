"""Tests for aiofinaccess.session.retrying: the retry primitive on a fake clock, fixed draws."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from aiofinaccess.core.error_bodies import OAuthErrorBody
from aiofinaccess.core.errors import ApiError, ServerError, TransportError
from aiofinaccess.core.retry import Backoff
from aiofinaccess.session.retrying import Retrier, RetryDetails
from tests.support.fakes import FakeClock


def retrier(
    clock: FakeClock,
    *,
    attempts: int = 3,
    draw: float = 0.5,
    seen: list[RetryDetails] | None = None,
) -> Retrier:
    """A retrier with windows 1, 2, 4 (cap 4), Retry-After up to 10, and a fixed draw."""
    return Retrier(
        backoff=Backoff(initial=1.0, cap=4.0, max_retry_after=10.0),
        attempts=attempts,
        sleep=clock.sleep,
        random=lambda: draw,
        on_retry=() if seen is None else (seen.append,),
    )


def failing(
    *errors: BaseException, result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises ``errors`` in turn, then returns ``result``; and its call count."""
    calls: list[int] = []
    pending = list(errors)

    async def attempt() -> str:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return result

    return attempt, calls


def refused() -> TransportError:
    """A failure before sending: always safe to retry."""
    return TransportError("connection refused", request_sent=False)


class TestPause:
    async def test_waits_a_jittered_draw_and_tells_the_hooks(self) -> None:
        """Draw 0.5 of window 2 (second retry) is 1 s; hooks get one record before the wait."""
        clock, seen = FakeClock(), list[RetryDetails]()
        cause = refused()
        waited = await retrier(clock, seen=seen).pause("token request", 2, cause)
        assert waited == 1.0
        assert clock.slept == [1.0]
        assert seen == [RetryDetails("token request", 2, 1.0, cause)]

    async def test_retry_after_is_waited_up_to_its_cap(self) -> None:
        """An ApiError's Retry-After replaces the jitter, cut to max_retry_after."""
        clock = FakeClock()
        short = ApiError(429, OAuthErrorBody("slow_down"), retry_after=3.0)
        long = ApiError(429, OAuthErrorBody("slow_down"), retry_after=600.0)
        await retrier(clock).pause("GET /x", 1, short)
        await retrier(clock).pause("GET /x", 1, long)
        assert clock.slept == [3.0, 10.0]

    async def test_at_least_is_a_floor(self) -> None:
        """A rotating refresh waits at least the token timeout before presenting it again."""
        clock = FakeClock()
        assert await retrier(clock).pause("token request", 1, refused(), at_least=30.0) == 30.0
        assert clock.slept == [30.0]

    async def test_logs_once_per_retry_without_the_error_text(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """One DEBUG line naming the call, the retry and the error's type; not its message,
        which may echo a provider's text."""
        caplog.set_level(logging.DEBUG, logger="aiofinaccess")
        await retrier(FakeClock()).pause(
            "GET /users", 1, TransportError("sekrit", request_sent=False)
        )
        lines = [record.getMessage() for record in caplog.records]
        assert lines == ["retrying GET /users (retry 1) in 0.500 s after TransportError"]


class TestCall:
    async def test_retries_until_success(self) -> None:
        """Two failures, then the result; waits 0.5 and 1.0 (draw 0.5 of windows 1 and 2)."""
        clock, seen = FakeClock(), list[RetryDetails]()
        attempt, calls = failing(refused(), refused())
        result = await retrier(clock, seen=seen).call("GET /x", attempt, retry_on=lambda _: True)
        assert result == "ok"
        assert len(calls) == 3
        assert clock.slept == [0.5, 1.0]
        assert [details.retry_num for details in seen] == [1, 2]

    async def test_the_last_error_is_raised_as_it_was_after_all_attempts(self) -> None:
        """No wrapper exception: the caller sees the provider's typed error."""
        clock = FakeClock()
        last = ServerError(503, OAuthErrorBody("down"))
        attempt, calls = failing(refused(), refused(), last)
        with pytest.raises(ServerError) as info:
            await retrier(clock, attempts=3).call("GET /x", attempt, retry_on=lambda _: True)
        assert info.value is last
        assert len(calls) == 3
        assert len(clock.slept) == 2

    async def test_an_error_retry_on_refuses_is_raised_at_once(self) -> None:
        """Nothing waited, nothing announced."""
        clock, seen = FakeClock(), list[RetryDetails]()
        attempt, calls = failing(ValueError("no"))
        with pytest.raises(ValueError, match="no"):
            await retrier(clock, seen=seen).call(
                "POST /x", attempt, retry_on=lambda error: isinstance(error, TransportError)
            )
        assert len(calls) == 1
        assert clock.slept == []
        assert seen == []

    async def test_cancellation_is_never_retried(self) -> None:
        """CancelledError is not an Exception: it passes through the loop untouched."""
        clock = FakeClock()
        attempt, calls = failing(asyncio.CancelledError())
        with pytest.raises(asyncio.CancelledError):
            await retrier(clock).call("GET /x", attempt, retry_on=lambda _: True)
        assert len(calls) == 1
        assert clock.slept == []
