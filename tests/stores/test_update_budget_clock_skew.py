"""SQLite's update budget has no clock but its takers': a taker whose clock is behind (a host
clock stepped back, a file shared wider than one host) stamps its slot no earlier than the
newest already counted, so its slot does not leave the window before them and let a fifth
update go within 24 hours of the real four."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from aiofinaccess.stores import _sqlite_budgets
from aiofinaccess.stores.sqlite import SQLiteStore

DAY = 86_400.0
T = 1_900_000_000.0
NAME = "finapi/alice/42"


async def test_a_slot_taken_by_a_clock_behind_is_held_as_long_as_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = types.SimpleNamespace(now=T)
    monkeypatch.setattr(_sqlite_budgets, "time", types.SimpleNamespace(time=lambda: clock.now))
    store = SQLiteStore(tmp_path / "tokens.db")
    try:
        for _ in range(3):  # three slots at T by a right clock
            assert await store.take_update(NAME, limit=4, window=DAY) is None
        # Really at T + 30 min, by a process whose clock is an hour behind: the fourth.
        clock.now = T - 1800
        assert await store.take_update(NAME, limit=4, window=DAY) is None
        # A right clock, less than 24 hours after all four really went: no fifth.
        clock.now = T + DAY - 900
        assert await store.take_update(NAME, limit=4, window=DAY) is not None
        clock.now = T + DAY  # all four leave with the newest they joined
        assert await store.take_update(NAME, limit=4, window=DAY) is None
    finally:
        await store.aclose()
