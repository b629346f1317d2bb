"""The unattended-update budget under four racing OS processes (issue 25, "Must show"): on a
shared SQLite file and on Redis, every connection gets exactly its four unattended updates of
the 24 hours however the processes' takes interleave; a store that reads and writes the count
in two steps is caught. The bigger runs: ``python -m tests.reliability.budget_race``."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiofinaccess.connections import UpdateBudget
from tests.reliability.budget_race import race, store_spec, violations

DAY = 86_400.0


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_four_processes_never_get_more_than_four(kind: str, tmp_path: Path) -> None:
    with store_spec(kind, tmp_path) as spec:
        result = race(spec, connections=20, rounds=3, budget=UpdateBudget(), logs=tmp_path)
    assert (result.most, result.fewest) == (4, 4)
    assert result.granted + result.refused == result.attempts == 4 * 20 * 3
    assert result.violations == 0


def test_a_count_read_and_written_in_two_steps_is_caught(tmp_path: Path) -> None:
    """The broken build gives some connection more than four slots within the day."""
    with store_spec("racy", tmp_path) as spec:
        result = race(spec, connections=20, rounds=3, budget=UpdateBudget(), logs=tmp_path)
    assert result.most > 4
    assert result.violations > 0


@pytest.mark.parametrize(
    ("slots", "found"),
    [
        # Five slots within a second of a minute's window: one violation.
        ([(0.0, 0.1), (0.2, 0.3), (0.4, 0.5), (0.6, 0.7), (0.8, 0.9)], 1),
        # The fifth a window after the first: none.
        ([(0.0, 0.1), (0.2, 0.3), (0.4, 0.5), (0.6, 0.7), (60.0, 60.1)], 0),
        # A slow take whose "after" reaches past the window: not certain, not counted.
        ([(0.0, 0.1), (0.2, 0.3), (0.4, 0.5), (0.6, 0.7), (0.8, 61.0)], 0),
        ([(0.0, 0.1)] * 6, 2),
    ],
)
def test_violations_are_counted_only_when_certain(
    slots: list[tuple[float, float]], found: int
) -> None:
    assert violations(slots, 4, 60.0) == found
