"""What every store shared by workers on many machines must do across two of its clients: the
``store`` and ``other`` fixtures (separate clients, one key space). RedisStore and
PostgresStore subclass it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from aiofinaccess import StoreError
from aiofinaccess.errors import StoreConflictError
from tests.stores.contract import ALICE, BOB, sample


class SharedContract:
    """Compare-and-swap, leases and the change feed across two clients of one store."""

    async def test_compare_and_swap_across_workers(self, store: Any, other: Any) -> None:
        version = await store.put(ALICE, sample("AT-1"), expected_version=None)
        read = await other.get(ALICE)
        assert read is not None
        assert read.version == version
        newer = await other.put(ALICE, sample("AT-2"), expected_version=version)
        with pytest.raises(StoreConflictError) as caught:
            await store.put(ALICE, sample("AT-3"), expected_version=version)
        assert "alice" not in str(caught.value)
        assert ALICE.hashed in str(caught.value)
        with pytest.raises(StoreConflictError):
            await store.delete(ALICE, expected_version=version)
        assert await store.delete(ALICE, expected_version=newer) is True
        assert await other.get(ALICE) is None

    async def test_lease_is_exclusive_across_workers(self, store: Any, other: Any) -> None:
        async with store.lease(ALICE, ttl=5):
            with pytest.raises(
                StoreError, match=f"timed out waiting for the lease on token set {ALICE.hashed}"
            ):
                async with other.lease(ALICE, ttl=0.2):
                    pass  # pragma: no cover
            async with other.lease(BOB, ttl=5):
                pass
        started = time.monotonic()
        async with other.lease(ALICE, ttl=5):
            assert time.monotonic() - started < 0.5

    async def test_changes_from_another_worker_arrive_promptly(
        self, store: Any, other: Any
    ) -> None:
        feed = other.changes()
        own = store.changes()
        await other.wait_subscribed()
        await store.wait_subscribed()
        version = await store.put(ALICE, sample(), expected_version=None)
        async with asyncio.timeout(1):
            assert await anext(feed) == (ALICE, version)
            assert await anext(own) == (ALICE, version)  # writers hear themselves
        newer = await store.put(ALICE, sample("AT-2"), expected_version=version)
        with pytest.raises(StoreConflictError):  # a lost compare-and-swap announces nothing
            await store.put(ALICE, sample("AT-3"), expected_version=version)
        assert await store.delete(ALICE) is True
        async with asyncio.timeout(1):
            assert await anext(feed) == (ALICE, newer)
            assert await anext(feed) == (ALICE, None)

    async def test_aclose_ends_pending_change_iterations(self, store: Any) -> None:
        async def drain() -> list[object]:
            return [change async for change in store.changes()]

        consumers = [asyncio.create_task(drain()) for _ in range(2)]
        await store.wait_subscribed()
        version = await store.put(BOB, sample(), expected_version=None)
        await asyncio.sleep(0.1)
        await store.aclose()
        async with asyncio.timeout(1):
            assert await asyncio.gather(*consumers) == [[(BOB, version)]] * 2
        assert [change async for change in store.changes()] == []

    async def test_stamps_from_two_workers_are_ages_read_on_the_stores_clock(
        self, store: Any, other: Any
    ) -> None:
        """Two workers stamp uses as ages, whatever their wall clocks say: each reader sees
        the latest use, in seconds on the store's clock, and never a use in the future."""
        await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        await store.put(BOB, sample(), expected_version=None, due_at=100.0)
        await store.mark_used({ALICE: 300.0, BOB: 20.0})
        await other.mark_used({ALICE: 60.0, BOB: 900.0})
        seen = [await reader.idle_for([ALICE, BOB]) for reader in (store, other)]
        for idle in seen:
            assert 60.0 - 0.01 <= idle[ALICE] <= 65.0
            assert 20.0 - 0.01 <= idle[BOB] <= 25.0
