"""The unattended-update budget's decision as data: a slot now, or when the next one frees."""

from __future__ import annotations

import pytest

from aiofinaccess.connections import UpdateBudget
from aiofinaccess.core.update_budget import check_budget, counted, next_slot
from aiofinaccess.errors import ConfigurationError, UsageError

DAY = 86_400.0
NOW = 1_900_000_000.0


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ((), None),
        ((NOW - 10,), None),
        ((NOW - 40, NOW - 30, NOW - 20), None),
        # Four within the day: the next when the oldest leaves it.
        ((NOW - 40, NOW - 30, NOW - 20, NOW - 10), NOW - 40 + DAY),
        # Order does not matter.
        ((NOW - 10, NOW - 40, NOW - 20, NOW - 30), NOW - 40 + DAY),
        # Older than the window: not counted.
        ((NOW - DAY - 5, NOW - 30, NOW - 20, NOW - 10), None),
        # Exactly a window ago: out (a slot counts while now < taken + window).
        ((NOW - DAY, NOW - 30, NOW - 20, NOW - 10), None),
        # Just inside: still counts, frees a moment later.
        ((NOW - DAY + 1, NOW - 30, NOW - 20, NOW - 10), NOW + 1),
        # Six counted (a lower limit once, or a clock step): the third oldest must leave.
        ((NOW - 60, NOW - 50, NOW - 40, NOW - 30, NOW - 20, NOW - 10), NOW - 40 + DAY),
        # A slot stamped ahead of now (the store's clock stepped back) counts as well.
        ((NOW - 30, NOW - 20, NOW - 10, NOW + 50), NOW - 30 + DAY),
    ],
)
def test_next_slot(taken: tuple[float, ...], expected: float | None) -> None:
    assert next_slot(taken, NOW, limit=4, window=DAY) == expected


def test_a_limit_of_one_waits_for_the_last() -> None:
    assert next_slot([NOW - 5], NOW, limit=1, window=60.0) == NOW + 55
    assert next_slot([NOW - 60], NOW, limit=1, window=60.0) is None


def test_counted_keeps_the_window_oldest_first() -> None:
    assert counted([NOW - 1, NOW - DAY - 1, NOW - 3], NOW, DAY) == [NOW - 3, NOW - 1]


def test_the_next_slot_is_free_exactly_then() -> None:
    """At the answer, one slot is free; a moment before it, none."""
    taken = [NOW - 300, NOW - 200, NOW - 100, NOW]
    at = next_slot(taken, NOW, limit=4, window=DAY)
    assert at is not None
    assert next_slot(taken, at, limit=4, window=DAY) is None
    assert next_slot(taken, at - 0.001, limit=4, window=DAY) == at


@pytest.mark.parametrize(("limit", "window"), [(0, DAY), (True, DAY), (4, 0.0), (4, float("inf"))])
def test_bad_budgets_are_usage_errors(limit: int, window: float) -> None:
    with pytest.raises(UsageError):
        check_budget(limit, window)


def test_the_setting_defaults_to_psd2_and_checks_itself() -> None:
    assert (UpdateBudget().limit, UpdateBudget().window) == (4, DAY)
    with pytest.raises(ConfigurationError, match="limit"):
        UpdateBudget(limit=0)
    with pytest.raises(ConfigurationError, match="window"):
        UpdateBudget(window=-1.0)
