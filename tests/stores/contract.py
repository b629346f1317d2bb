"""The behaviour every token store must have; each store's test module subclasses this.

A subclass provides a ``store`` fixture (an open, empty store) and, for stores shared between
processes, may add its own multi-process tests.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from aiofinaccess import StoreConflictError, TokenKey, TokenSet, UsageError
from aiofinaccess.stores import PendingAuthorizations, TokenStore

ALICE = TokenKey("everifin", "alice")
BOB = TokenKey("everifin", "bob")
CLIENT = TokenKey("finapi")


def sample(access: str = "AT-1", refresh: str | None = "RT-1") -> TokenSet:
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        issued_at=1_800_000_000.0,
        expires_at=1_800_000_300.0,
        refresh_expires_at=1_800_001_800.0,
        scope="ais",
        extra={"session_state": "s-1", "not-before-policy": 0},
    )


class StoreContract:
    """Tests any TokenStore implementation must pass."""

    async def test_get_of_a_missing_key_is_none(self, store: TokenStore) -> None:
        """Nothing stored, nothing returned."""
        assert await store.get(ALICE) is None

    async def test_put_then_get_round_trips_every_field(self, store: TokenStore) -> None:
        """The stored set equals the written one (the monotonic anchor is not persisted)."""
        version = await store.put(ALICE, sample(), expected_version=None)
        stored = await store.get(ALICE)
        assert stored is not None
        assert stored.version == version
        assert stored.token_set == sample()
        assert stored.token_set.extra == {"session_state": "s-1", "not-before-policy": 0}

    async def test_compare_and_swap(self, store: TokenStore) -> None:
        """A write at the read version wins; a write at a stale version or onto a new key loses."""
        first = await store.put(ALICE, sample("AT-1"), expected_version=None)
        with pytest.raises(StoreConflictError):
            await store.put(ALICE, sample("AT-X"), expected_version=None)
        second = await store.put(ALICE, sample("AT-2"), expected_version=first)
        assert second != first
        with pytest.raises(StoreConflictError):
            await store.put(ALICE, sample("AT-3"), expected_version=first)
        with pytest.raises(StoreConflictError):
            await store.put(BOB, sample("AT-4"), expected_version=second)
        stored = await store.get(ALICE)
        assert stored is not None
        assert stored.token_set.access_token.reveal() == "AT-2"

    async def test_concurrent_cas_has_exactly_one_winner(self, store: TokenStore) -> None:
        """Twenty writers at one version: one succeeds, nineteen conflict."""
        version = await store.put(ALICE, sample(), expected_version=None)

        async def write(n: int) -> bool:
            try:
                await store.put(ALICE, sample(f"AT-{n}"), expected_version=version)
            except StoreConflictError:
                return False
            return True

        results = await asyncio.gather(*(write(n) for n in range(20)))
        assert results.count(True) == 1

    async def test_delete(self, store: TokenStore) -> None:
        """Unconditional and versioned deletes; a recreated key never repeats a version."""
        first = await store.put(ALICE, sample(), expected_version=None)
        assert await store.delete(ALICE) is True
        assert await store.delete(ALICE) is False
        again = await store.put(ALICE, sample(), expected_version=None)
        assert again != first
        with pytest.raises(StoreConflictError):
            await store.delete(ALICE, expected_version=first)
        assert await store.delete(ALICE, expected_version=again) is True

    async def test_keys_by_provider(self, store: TokenStore) -> None:
        """Listing restores every set at start-up."""
        for key in (ALICE, BOB, CLIENT):
            await store.put(key, sample(), expected_version=None)
        assert {key async for key in store.keys(None)} == {ALICE, BOB, CLIENT}
        assert {key async for key in store.keys("everifin")} == {ALICE, BOB}

    async def test_lease_is_exclusive(self, store: TokenStore) -> None:
        """Two holders of one key never overlap; other keys are independent."""
        inside = 0
        overlaps = 0

        async def hold(key: TokenKey) -> None:
            nonlocal inside, overlaps
            async with store.lease(key, ttl=5):
                inside += 1
                overlaps += inside > 1
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(hold(ALICE) for _ in range(5)))
        assert overlaps == 0
        started = time.monotonic()
        async with store.lease(ALICE, ttl=5), store.lease(BOB, ttl=5):
            pass
        assert time.monotonic() - started < 1

    async def test_lease_is_released_on_error(self, store: TokenStore) -> None:
        """An exception inside the lease does not leave it held."""
        with pytest.raises(RuntimeError):
            async with store.lease(ALICE, ttl=5):
                raise RuntimeError("boom")
        async with asyncio.timeout(2), store.lease(ALICE, ttl=5):
            pass

    # -- pending authorizations ------------------------------------------------------------------

    async def test_pending_put_get_take(self, store: TokenStore) -> None:
        """A record reads back (any bytes), survives a get, and is taken exactly once."""
        assert isinstance(store, PendingAuthorizations)
        data = b'{"verifier": "v"}\x00\xff'
        await store.put_pending("state-1", data, ttl=60)
        assert await store.get_pending("state-1") == data
        assert await store.get_pending("state-1") == data
        assert await store.take_pending("state-1") == data
        assert await store.take_pending("state-1") is None
        assert await store.get_pending("state-1") is None
        assert await store.take_pending("never-put") is None
        assert [key async for key in store.keys(None)] == []  # kept apart from token sets

    async def test_pending_put_replaces(self, store: TokenStore) -> None:
        """A second put overwrites the record (and its expiry); other states are untouched."""
        assert isinstance(store, PendingAuthorizations)
        await store.put_pending("state-1", b"first", ttl=60)
        await store.put_pending("state-2", b"other", ttl=60)
        await store.put_pending("state-1", b"second", ttl=60)
        assert await store.take_pending("state-1") == b"second"
        assert await store.get_pending("state-2") == b"other"

    async def test_pending_take_has_exactly_one_winner(self, store: TokenStore) -> None:
        """Twenty concurrent takers of one state: one gets the record, nineteen get None."""
        assert isinstance(store, PendingAuthorizations)
        await store.put_pending("state-1", b"record", ttl=60)
        taken = await asyncio.gather(*(store.take_pending("state-1") for _ in range(20)))
        assert taken.count(b"record") == 1
        assert taken.count(None) == 19

    async def test_pending_records_expire(self, store: TokenStore) -> None:
        """After its ttl a record reads as absent for get and take alike."""
        assert isinstance(store, PendingAuthorizations)
        await store.put_pending("short", b"record", ttl=0.1)
        await store.put_pending("long", b"record", ttl=60)
        await asyncio.sleep(0.25)
        assert await store.get_pending("short") is None
        assert await store.take_pending("short") is None
        assert await store.take_pending("long") == b"record"

    @pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
    async def test_pending_ttl_must_be_positive(self, store: TokenStore, ttl: float) -> None:
        """A record that never expires, or is born expired, is a usage error."""
        assert isinstance(store, PendingAuthorizations)
        with pytest.raises(UsageError, match="ttl"):
            await store.put_pending("state-1", b"record", ttl=ttl)

    async def test_aclose_is_idempotent(self, store: TokenStore) -> None:
        """Closing twice is fine."""
        await store.aclose()
        await store.aclose()
