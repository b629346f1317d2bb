"""Per-set work at restore stays per set, not per set times a protocol check.

Found by ``benchmarks/many_sessions.py``: restoring 100,000 sets took 15.4 s instead of 11.6 s
after the manager learned to subscribe to the change feed on its first held set, because every
new entry asked ``isinstance(store, ChangeFeed)``, and an ``isinstance`` against a
runtime-checkable protocol looks up each of its members every time. The store's kind is asked
once now.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from aiofinaccess import SessionManager, TokenKey, TokenSet
from aiofinaccess.session import feed
from aiofinaccess.stores import ChangeFeed
from aiofinaccess.stores.memory import MemoryStore
from tests.support.tokens import EVERIFIN, EVERIFIN_CLIENT

SETS = 1_000


class _CountingMeta(type(ChangeFeed)):  # type: ignore[misc]
    checks = 0

    def __instancecheck__(cls, instance: Any) -> bool:
        _CountingMeta.checks += 1
        return isinstance(instance, ChangeFeed)


class CountedChangeFeed(metaclass=_CountingMeta):
    """Stands in for ChangeFeed in the feed module, counting the checks against it."""


async def test_restoring_sets_checks_the_store_kind_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "ChangeFeed", CountedChangeFeed)
    store = MemoryStore()
    now = time.time()
    for n in range(SETS):
        token_set = TokenSet(f"AT-{n}", issued_at=now, expires_at=now + 3600, refresh_token="RT")
        await store.put(TokenKey(EVERIFIN.name, f"user-{n}"), token_set, expected_version=None)
    _CountingMeta.checks = 0
    async with SessionManager(store=store) as manager:
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        assert await manager.restore() == SETS
    assert _CountingMeta.checks <= 2
