"""The pure renewal step, as data: a stored set read across a pause is judged dead only if it
is dead however young it may be (issue 22, seed 1525); a redeemed set is written before
anything else, handed out only if it is not spent on arrival, and given up only once it is no
longer worth writing."""

from __future__ import annotations

import pytest

from aiofinaccess.core.lifecycle import RefreshPolicy, Renewal, plan
from aiofinaccess.core.renewal_step import (
    Deliver,
    Late,
    Persist,
    Poison,
    Redeem,
    Situation,
    Stored,
    TakeLease,
    WriteFailed,
    begun,
    descended,
    ended_by,
    next_step,
    worth_writing_until,
)
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


# -- the redeemed set: written, delivered, or given up ------------------------------------------


def written(*, age: float, lifetime: float = 4.0) -> Stored:
    """The set the job just stored: ``lifetime`` seconds long, ``age`` seconds old at 1000."""
    issued = 1_700_000_000.0
    token_set = TokenSet(
        "AT-2",
        refresh_token="RT-2",
        issued_at=issued,
        expires_at=issued + lifetime,
        refresh_expires_at=issued + 1800.0,
        anchor=Anchor(issued, 1000.0 - age),
    )
    return Stored(token_set, 8, plan(token_set, POLICY))


def test_a_pending_set_is_written_before_anything_else() -> None:
    situation = Situation(now=1000.0, stored=None, pending=True, dead_grant="invalid_grant")
    assert next_step(situation) == Persist()


@pytest.mark.parametrize(
    ("failures", "waiting", "until", "step"),
    [
        (1, True, 2000.0, WriteFailed(fail_callers=False, give_up=False)),
        (3, True, 2000.0, WriteFailed(fail_callers=True, give_up=False)),
        (3, False, 2000.0, WriteFailed(fail_callers=False, give_up=False)),
        (1, True, 1000.0, WriteFailed(fail_callers=False, give_up=True)),
        (4, True, 999.0, WriteFailed(fail_callers=True, give_up=True)),
    ],
)
def test_a_failed_write_fails_the_callers_after_the_attempts_and_gives_up_once_spent(
    failures: int, waiting: bool, until: float, step: WriteFailed
) -> None:
    """Callers never wait past ``attempts`` failed writes (the job goes on); the set is given
    up only when it is no longer worth writing."""
    situation = Situation(
        now=1000.0,
        stored=None,
        pending=True,
        write_failed=True,
        write_failures=failures,
        write_attempts=3,
        callers_waiting=waiting,
        pending_until=until,
    )
    assert next_step(situation) == step


def test_a_redeemed_set_is_worth_writing_until_its_refresh_token_dies() -> None:
    stored = written(age=0.0)
    until = worth_writing_until(stored.token_set, stored.deadlines)
    assert until == stored.deadlines.refresh_token_dead_at
    client = TokenSet("AT", issued_at=1.0, expires_at=61.0, anchor=Anchor(1.0, 10.0))
    assert worth_writing_until(client, plan(client, POLICY)) == plan(client, POLICY).expires_at


def test_a_stored_set_is_delivered() -> None:
    situation = Situation(now=1000.0, stored=written(age=0.5), written=True)
    assert next_step(situation) == Deliver()


def test_an_answer_after_its_own_expiry_is_renewed_once_then_fails() -> None:
    late = written(age=3.9)  # 4 s token, 3.9 s old on arrival: inside its expiry margin
    assert next_step(Situation(now=1000.0, stored=late, written=True)) == Late(again=True)
    again = Situation(now=1000.0, stored=late, written=True, late_answers=1)
    assert next_step(again) == Late(again=False)


def test_a_token_issued_expired_is_delivered_as_it_is() -> None:
    """``expires_in: 0`` from a server other than finAPI: there is nothing better to get."""
    issued = written(age=0.0, lifetime=0.0)
    assert next_step(Situation(now=1000.0, stored=issued, written=True)) == Deliver()


def test_ending_a_session_ends_its_renewals_but_not_a_later_login() -> None:
    """Seed 1993: a logout's delete landed after another process stored a new login."""
    logged_out = begun(TokenSet("AT-1", refresh_token="RT-1", issued_at=0.0, expires_at=4.0))
    renewed = descended(
        TokenSet("AT-2", refresh_token="RT-2", issued_at=1.0, expires_at=5.0), logged_out
    )
    # A new login, even where the provider hands out the same refresh token again.
    again = begun(TokenSet("AT-3", refresh_token="RT-1", issued_at=2.0, expires_at=6.0))
    assert ended_by(logged_out, logged_out)
    assert ended_by(renewed, logged_out)
    assert ended_by(logged_out, renewed)
    assert not ended_by(again, logged_out)
    assert not ended_by(again, renewed)
