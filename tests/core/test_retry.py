"""Tests for aiofinaccess.core.retry: the backoff decision, with injected draws and no sleeping."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiofinaccess.core.lifecycle import RetryPolicy
from aiofinaccess.core.retry import Backoff


def draws(*values: float) -> Callable[[], float]:
    """A random source that yields ``values`` in order and fails when asked for more."""
    remaining = iter(values)
    return lambda: next(remaining)


def never() -> float:
    """A random source that must not be drawn from."""
    raise AssertionError("drew a random number")


class TestWindow:
    def test_doubles_from_initial_until_the_cap(self) -> None:
        """0.1, 0.2, 0.4, ... up to the cap, and the cap from then on."""
        backoff = Backoff(initial=0.1, cap=1.0)
        assert [backoff.window(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]

    def test_attempt_zero_or_below_is_the_first_window(self) -> None:
        """No negative exponents: nothing waits less than the first window's range."""
        assert Backoff(initial=0.5, cap=10.0).window(0) == 0.5
        assert Backoff(initial=0.5, cap=10.0).window(-3) == 0.5

    @pytest.mark.parametrize("attempt", [1024, 1025, 5000, 10**30])
    def test_a_long_outage_does_not_overflow(self, attempt: int) -> None:
        """2.0 ** 1024 is an OverflowError in Python: a long-failing provider reaches it."""
        assert Backoff(initial=1.0, cap=60.0).window(attempt) == 60.0
        assert Backoff(initial=0.0, cap=60.0).window(attempt) == 0.0


class TestWait:
    def test_full_jitter_scales_the_draw_by_the_window(self) -> None:
        """The wait is draw * window: 0 to just under the window."""
        backoff = Backoff(initial=0.1, cap=2.0)
        assert backoff.wait(1, draws(0.5)) == 0.05
        assert backoff.wait(3, draws(0.25)) == 0.1
        assert backoff.wait(10, draws(0.0)) == 0.0

    def test_retry_after_replaces_the_jitter_and_draws_nothing(self) -> None:
        """A seeded source stays in step: Retry-After consumes no draw."""
        backoff = Backoff(initial=0.1, cap=2.0, max_retry_after=5.0)
        assert backoff.wait(1, never, retry_after=3.0) == 3.0
        assert backoff.wait(1, never, retry_after=0.0) == 0.0

    def test_retry_after_is_cut_to_the_longest_wait_allowed(self) -> None:
        """A server asking for an hour gets max_retry_after; a negative value waits nothing."""
        backoff = Backoff(initial=0.1, cap=2.0, max_retry_after=5.0)
        assert backoff.wait(1, never, retry_after=3600.0) == 5.0
        assert backoff.wait(1, never, retry_after=-1.0) == 0.0

    @given(
        initial=st.floats(0.0, 1e3),
        extra=st.floats(0.0, 1e4),
        attempt=st.integers(-5, 10**6),
        draw=st.floats(0.0, 1.0, exclude_max=True),
        retry_after=st.none() | st.floats(-1e6, 1e9),
        max_retry_after=st.floats(0.0, 1e4),
    )
    def test_every_wait_is_within_its_bounds(
        self,
        *,
        initial: float,
        extra: float,
        attempt: int,
        draw: float,
        retry_after: float | None,
        max_retry_after: float,
    ) -> None:
        """Never negative, never above the cap (jitter) or max_retry_after (Retry-After)."""
        backoff = Backoff(initial=initial, cap=initial + extra, max_retry_after=max_retry_after)
        wait = backoff.wait(attempt, draws(draw), retry_after)
        assert math.isfinite(wait)
        if retry_after is None:
            assert 0.0 <= wait <= backoff.window(attempt) <= backoff.cap
        else:
            assert 0.0 <= wait <= max_retry_after

    @given(initial=st.floats(1e-6, 1e3), extra=st.floats(0.0, 1e4))
    def test_windows_never_shrink(self, initial: float, extra: float) -> None:
        """A later failure never has a shorter window than an earlier one."""
        backoff = Backoff(initial=initial, cap=initial + extra)
        windows = [backoff.window(n) for n in range(1, 40)]
        assert all(a <= b for a, b in itertools.pairwise(windows))


class TestRetryPolicy:
    def test_request_backoff_carries_the_policy(self) -> None:
        """Renewal and pipeline retries use the policy's initial, max_wait and max_retry_after."""
        policy = RetryPolicy(initial=0.2, max_wait=3.0, max_retry_after=7.0)
        assert policy.request_backoff == Backoff(initial=0.2, cap=3.0, max_retry_after=7.0)

    def test_backoff_between_renewals_waits_at_least_retry_after(self) -> None:
        """Between failed renewals Retry-After is a floor, not a replacement."""
        policy = RetryPolicy(backoff_initial=1.0, backoff_max=60.0)
        assert policy.backoff(3, 0.5) == 2.0
        assert policy.backoff(3, 0.5, retry_after=10.0) == 10.0
        assert policy.backoff(3, 0.5, retry_after=1.0) == 2.0

    def test_backoff_after_a_long_outage_is_capped_not_an_overflow(self) -> None:
        """Regression: the 1,025th consecutive failed renewal raised OverflowError (2.0 ** 1024)
        inside the driver's failure handling, so the token set was never rescheduled."""
        policy = RetryPolicy(backoff_initial=1.0, backoff_max=60.0)
        assert policy.backoff(1025, 0.5) == 30.0
        assert policy.backoff(10**6, 0.5) == 30.0
