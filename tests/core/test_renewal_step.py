"""The pure renewal step: a stored set read across a pause is judged dead only if it is dead
however young it may be (issue 22, seed 1525 of the grown simulation: a read asked before a
freeze and answered after it anchored the set as old as the freeze was long, so a live
refresh token was taken for run out and the user asked to reconnect)."""

from __future__ import annotations

from aiofinaccess.core.lifecycle import RefreshPolicy, Renewal, plan
from aiofinaccess.core.renewal_step import Poison, Redeem, Situation, Stored, TakeLease, next_step
from aiofinaccess.core.tokens import Anchor, TokenSet

POLICY = RefreshPolicy()


def stored_set(*, age: float, refresh_lifetime: float, slack: float) -> Stored:
    """A set ``age`` seconds old by its anchor at monotonic 1000, read ``slack`` seconds after
    it was asked for."""
    issued = 1_700_000_000.0
    token_set = TokenSet(
        "AT",
        refresh_token="RT",
        issued_at=issued,
        expires_at=issued + 4.0,
        refresh_expires_at=issued + refresh_lifetime,
        anchor=Anchor(issued, 1000.0 - age),
    )
    return Stored(token_set, 7, plan(token_set, POLICY), slack=slack)


def test_a_refresh_token_dead_by_the_anchor_but_not_within_the_reads_slack_is_redeemed() -> None:
    # 9 s old by its anchor, its refresh token lives 8 s; the read waited 4 s, so the set may
    # be as young as 5 s: its refresh token may well be alive.
    stored = stored_set(age=9.0, refresh_lifetime=8.0, slack=4.0)
    step = next_step(Situation(now=1000.0, stored=stored, known_version=7, lease_left=30.0))
    assert step == Redeem(Renewal.REFRESH_TOKEN)


def test_a_refresh_token_dead_however_young_the_set_is_poisons() -> None:
    stored = stored_set(age=9.0, refresh_lifetime=8.0, slack=0.5)
    step = next_step(Situation(now=1000.0, stored=stored, known_version=7, lease_left=30.0))
    assert step == Poison("refresh_token_unavailable")


def test_a_run_out_refresh_token_is_reported_only_under_the_lease() -> None:
    """Seed 7213: another process held the lease, its refresh with that very token sent just
    before it ran out; reporting the session lost before that renewal ends is premature (its
    answer may yet come, and the set with it)."""
    stored = stored_set(age=9.0, refresh_lifetime=8.0, slack=0.0)
    assert next_step(Situation(now=1000.0, stored=stored, known_version=7)) == TakeLease()
    under_lease = Situation(now=1000.0, stored=stored, known_version=7, lease_left=30.0)
    assert next_step(under_lease) == Poison("refresh_token_unavailable")
