"""The pure decisions about idle sets on a shared store (issue 27), as data."""

from __future__ import annotations

import pytest

from aiofinaccess.core.idleness import Use, idle_due, stamp_every, unstamped_uses, use_of

IDLE_AFTER = 800.0  # stamps every 100 s


@pytest.mark.parametrize(
    ("idle_for", "use"),
    [
        (None, Use.UNSTAMPED),  # written before stamps, or its first stamp lost
        (0.0, Use.USED),
        (799.0, Use.USED),
        (800.0, Use.USED),  # idle_after reached, but the last use may not be stamped yet
        (900.0, Use.USED),  # a stamp is up to one interval (100 s) late
        (900.5, Use.IDLE),
        (10_000.0, Use.IDLE),
    ],
)
def test_a_set_is_idle_only_past_idle_after_and_one_stamp_interval(
    idle_for: float | None, use: Use
) -> None:
    assert stamp_every(IDLE_AFTER) == 100.0
    assert use_of(idle_for, IDLE_AFTER) is use


@pytest.mark.parametrize(
    ("keep_due", "keep_alive", "now", "due"),
    [
        (5_000.0, False, 1_000.0, None),  # left until used: its next use renews on demand
        (None, False, 1_000.0, None),
        (5_000.0, True, 1_000.0, 5_000.0),  # kept alive: renewed before its refresh token dies
        (5_000.0, True, 6_000.0, 6_000.0),  # that deadline passed: renew now
        (None, True, 1_000.0, None),  # a refresh token that never dies needs no keep-alive
    ],
)
def test_an_idle_set_waits_for_its_keep_alive_deadline_or_its_next_use(
    keep_due: float | None, keep_alive: bool, now: float, due: float | None
) -> None:
    assert idle_due(keep_due, keep_alive=keep_alive, now=now) == due


def test_only_uses_newer_than_their_stamp_are_written_as_ages() -> None:
    uses = [
        ("used-since", 95.0, 40.0),
        ("stamped", 40.0, 40.0),  # nothing new: no write
        ("never-stamped", 10.0, float("-inf")),
        ("duty-made", 99.0, float("inf")),  # the duty's renewal is no use
    ]
    assert unstamped_uses(uses, now=100.0) == {"used-since": 5.0, "never-stamped": 90.0}
