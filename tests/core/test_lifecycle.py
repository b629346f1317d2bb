"""Tests for aiofinaccess.core.lifecycle: pure decisions driven with explicit times, no sleeping."""

from __future__ import annotations

import math

import pytest

from aiofinaccess import TokenSet, UsageError
from aiofinaccess.core.lifecycle import (
    TRANSITIONS,
    Action,
    Event,
    InvalidTransition,
    RefreshPolicy,
    Renewal,
    Status,
    TokenState,
    choose_renewal,
    decide,
    plan,
    retry_due,
    token_state,
    transition,
)
from aiofinaccess.core.tokens import Anchor
from aiofinaccess.errors import ConfigurationError

POLICY = RefreshPolicy()


def issued(
    lifetime: float | None, *, at: float = 100.0, refresh_lifetime: float | None = None
) -> TokenSet:
    """A token set issued at wall=monotonic=``at``."""
    return TokenSet(
        access_token="AT",
        refresh_token="RT",
        issued_at=at,
        expires_at=None if lifetime is None else at + lifetime,
        refresh_expires_at=None if refresh_lifetime is None else at + refresh_lifetime,
        anchor=Anchor(wall=at, monotonic=at),
    )


class TestRefreshPolicy:
    @pytest.mark.parametrize(
        ("lifetime", "lead"),
        [(3600, 300.0), (300, 60.0), (60, 12.0), (10, 2.0), (2, 1.0)],
    )
    def test_lead_is_a_capped_floored_fraction(self, lifetime: float, lead: float) -> None:
        """20 % of the lifetime, at least 2 s, at most 300 s, never more than half."""
        assert POLICY.lead(lifetime) == lead

    def test_margin_scales_down_for_short_tokens(self) -> None:
        """A 2-second token cannot afford a 1-second margin."""
        assert POLICY.margin(3600) == 1.0
        assert POLICY.margin(2) == pytest.approx(0.2)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"lead_fraction": 1.5},
            {"min_lead": -1},
            {"min_lead": 10, "max_lead": 5},
            {"expiry_margin": -1},
        ],
    )
    def test_contradictory_settings_are_refused(self, kwargs: dict[str, float]) -> None:
        """Raise at construction, naming the setting."""
        with pytest.raises(ConfigurationError):
            RefreshPolicy(**kwargs)


class TestPlanAndDecide:
    def test_walks_fresh_stale_expired(self) -> None:
        """A 300 s token: fresh until 240 s, stale until 299 s, then expired."""
        deadlines = plan(issued(300), POLICY)
        assert deadlines.stale_at == 340.0
        assert deadlines.must_refresh_at == 399.0
        assert decide(deadlines, 339.9) is Action.USE
        assert decide(deadlines, 340.0) is Action.USE_AND_REFRESH
        assert decide(deadlines, 398.9) is Action.USE_AND_REFRESH
        assert decide(deadlines, 399.0) is Action.REFRESH_THEN_USE

    def test_never_expiring_token_is_always_fresh(self) -> None:
        """finAPI expires_in 0."""
        deadlines = plan(issued(None), POLICY)
        assert deadlines.stale_at == math.inf
        assert decide(deadlines, 1e12) is Action.USE

    def test_an_unanchored_set_cannot_be_planned(self) -> None:
        """A stored set is anchored where it is read; planning one without is a bug, not "now"."""
        token_set = TokenSet(access_token="AT", issued_at=0.0, expires_at=300.0)
        with pytest.raises(UsageError, match="unanchored"):
            plan(token_set, POLICY)

    def test_reissued_token_is_not_renewed_before_expiry(self) -> None:
        """finAPI returns the same client token until it expires: don't ask early."""
        deadlines = plan(issued(120), POLICY, reissued=True)
        assert deadlines.stale_at == deadlines.must_refresh_at == 219.0
        assert deadlines.renew_not_before == 220.0

    def test_refresh_token_deadlines(self) -> None:
        """The refresh token's end is tracked, with a lead for keeping sessions alive."""
        deadlines = plan(issued(300, refresh_lifetime=1800), POLICY)
        assert deadlines.refresh_token_dead_at == 1_900.0
        assert deadlines.refresh_token_due_at == 1_840.0


class TestChooseRenewal:
    def test_client_tokens_use_client_credentials(self) -> None:
        """Client tokens have no refresh token at finAPI."""
        assert (
            choose_renewal(None, None, now=0, is_client=True, can_use_password=False)
            is Renewal.CLIENT_CREDENTIALS
        )

    def test_live_refresh_token_is_used(self) -> None:
        """The refresh grant while the refresh token lives."""
        token_set = issued(300, refresh_lifetime=1800)
        deadlines = plan(token_set, POLICY)
        assert (
            choose_renewal(token_set, deadlines, now=500, is_client=False, can_use_password=True)
            is Renewal.REFRESH_TOKEN
        )

    def test_dead_refresh_token_falls_back_to_password_or_reauth(self) -> None:
        """After the refresh token's end: password grant if possible, else re-authorize."""
        token_set = issued(300, refresh_lifetime=1800)
        deadlines = plan(token_set, POLICY)
        assert (
            choose_renewal(token_set, deadlines, now=2_000, is_client=False, can_use_password=True)
            is Renewal.PASSWORD
        )
        assert (
            choose_renewal(token_set, deadlines, now=2_000, is_client=False, can_use_password=False)
            is Renewal.REAUTHORIZE
        )

    def test_nothing_stored_means_reauthorize(self) -> None:
        """A user with no tokens and no password must authorize."""
        assert (
            choose_renewal(None, None, now=0, is_client=False, can_use_password=False)
            is Renewal.REAUTHORIZE
        )


class TestTransitions:
    def test_a_refresh_cycle_step_by_step(self) -> None:
        """Active -> refreshing -> backoff -> refreshing -> active, checking after each step."""
        status = Status.ACTIVE
        steps = [
            (Event.REFRESH_STARTED, Status.REFRESHING),
            (Event.REFRESH_FAILED, Status.BACKOFF),
            (Event.REFRESH_STARTED, Status.REFRESHING),
            (Event.REFRESH_SUCCEEDED, Status.ACTIVE),
        ]
        for event, expected in steps:
            status = transition(status, event)
            assert status is expected

    def test_reauth_required_is_sticky(self) -> None:
        """Only storing new tokens (or revoking) leaves REAUTH_REQUIRED."""
        status = transition(transition(Status.ACTIVE, Event.REFRESH_STARTED), Event.GRANT_DEAD)
        assert status is Status.REAUTH_REQUIRED
        for event in (Event.REFRESH_STARTED, Event.REFRESH_SUCCEEDED, Event.REFRESH_FAILED):
            with pytest.raises(InvalidTransition):
                transition(status, event)
        assert transition(status, Event.TOKENS_STORED) is Status.ACTIVE

    def test_every_status_can_be_left_by_storing_tokens(self) -> None:
        """No dead ends: an app can always store a new token set."""
        for status in Status:
            assert TRANSITIONS[status, Event.TOKENS_STORED] is Status.ACTIVE

    def test_token_state_merges_status_and_freshness(self) -> None:
        """Observable state."""
        deadlines = plan(issued(300), POLICY)
        assert token_state(Status.ACTIVE, deadlines, 200.0) is TokenState.FRESH
        assert token_state(Status.ACTIVE, deadlines, 350.0) is TokenState.STALE
        assert token_state(Status.ACTIVE, deadlines, 400.0) is TokenState.EXPIRED
        assert token_state(Status.ACTIVE, None, 0.0) is TokenState.EXPIRED
        assert token_state(Status.REAUTH_REQUIRED, deadlines, 200.0) is TokenState.REAUTH_REQUIRED
        assert token_state(Status.BACKOFF, deadlines, 200.0) is TokenState.BACKOFF


class TestRetryDue:
    """After a failed renewal, the duty's next attempt: the claim's end, unless the refresh
    token dies first."""

    def test_the_claim_end_when_the_refresh_token_outlives_it(self) -> None:
        assert retry_due(100.0, 130.0, 200.0) == 130.0
        assert retry_due(100.0, 130.0, None) == 130.0

    def test_halfway_to_the_refresh_tokens_end_when_it_dies_first(self) -> None:
        assert retry_due(100.0, 130.0, 104.0) == 102.0
        # Attempts come closer as the end nears: a few fit, each before it.
        assert retry_due(102.0, 130.0, 104.0) == 103.0

    def test_at_once_when_the_refresh_token_is_already_gone(self) -> None:
        assert retry_due(100.0, 130.0, 90.0) == 100.0
