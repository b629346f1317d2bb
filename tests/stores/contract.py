"""The behaviour every token store must have; each store's test module subclasses this.

A subclass provides a ``store`` fixture (an open, empty store) and, for stores shared between
processes, may add its own multi-process tests.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from aiofinaccess import TokenKey, TokenSet, UsageError
from aiofinaccess.errors import StoreConflictError
from aiofinaccess.stores import (
    ConnectionRecords,
    PaymentRecords,
    PendingAuthorizations,
    RefreshDuty,
    StoredRecord,
    TokenStore,
    UpdateBudgets,
    UseStamps,
)

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

    # -- payment records -------------------------------------------------------------------------

    async def test_payment_record_add_get_replace(self, store: TokenStore) -> None:
        """A record is created once at version 1 (a second add leaves it), read back, and
        replaced only at the version read; scopes are apart from each other and from sets."""
        assert isinstance(store, PaymentRecords)
        data = b'{"state": "PENDING"}\x00\xff'
        assert await store.get_payment_record("finapi:alice", "ref-1") is None
        assert await store.add_payment_record("finapi:alice", "ref-1", data)
        assert not await store.add_payment_record("finapi:alice", "ref-1", b"other")
        assert await store.get_payment_record("finapi:alice", "ref-1") == StoredRecord(data, 1)
        assert not await store.replace_payment_record(
            "finapi:alice", "ref-1", b"stale", expected_version=2
        )
        assert await store.replace_payment_record(
            "finapi:alice", "ref-1", b"CREATED", expected_version=1
        )
        assert await store.get_payment_record("finapi:alice", "ref-1") == StoredRecord(
            b"CREATED", 2
        )
        assert not await store.replace_payment_record(
            "finapi:alice", "absent", b"x", expected_version=1
        )
        assert await store.get_payment_record("finapi:bob", "ref-1") is None
        assert await store.add_payment_record("finapi:bob", "ref-1", b"bob's")
        assert await store.add_payment_record("finapi:alice", "ref-2", b"second")
        assert await store.payment_records("finapi:alice") == {
            "ref-1": StoredRecord(b"CREATED", 2),
            "ref-2": StoredRecord(b"second", 1),
        }
        assert await store.payment_records("everifin:alice") == {}
        assert [key async for key in store.keys(None)] == []

    async def test_payment_record_add_and_replace_have_one_winner(self, store: TokenStore) -> None:
        """Twenty concurrent adders of one reference: one creates it; twenty concurrent
        replacers at its version: one writes."""
        assert isinstance(store, PaymentRecords)
        added = await asyncio.gather(
            *(store.add_payment_record("finapi:alice", "ref", b"%d" % n) for n in range(20))
        )
        assert added.count(True) == 1
        found = await store.get_payment_record("finapi:alice", "ref")
        assert found is not None
        assert found.data == b"%d" % added.index(True)
        replaced = await asyncio.gather(
            *(
                store.replace_payment_record("finapi:alice", "ref", b"r%d" % n, expected_version=1)
                for n in range(20)
            )
        )
        assert replaced.count(True) == 1
        assert await store.get_payment_record("finapi:alice", "ref") == StoredRecord(
            b"r%d" % replaced.index(True), 2
        )

    @pytest.mark.parametrize(("scope", "reference"), [("", "ref"), ("s", ""), ("s", "r" * 513)])
    async def test_payment_record_names_are_checked(
        self, store: TokenStore, scope: str, reference: str
    ) -> None:
        """An empty or overlong scope or reference is a usage error."""
        assert isinstance(store, PaymentRecords)
        with pytest.raises(UsageError, match="payment record"):
            await store.add_payment_record(scope, reference, b"x")

    async def test_aclose_is_idempotent(self, store: TokenStore) -> None:
        """Closing twice is fine."""
        await store.aclose()
        await store.aclose()


#: A claimant's own client keys: it serves everifin and finapi.
SCOPE = (TokenKey("everifin", client="app#1"), TokenKey("finapi", client="app#1"))


async def claims_per_second(store: RefreshDuty, count: int) -> float:
    """Write ``count`` due sets (50 at a time), then claim them all in batches of 100; the
    claim rate (the figure the fleet issue asks for)."""
    keys = [TokenKey("everifin", f"user-{n}") for n in range(count)]
    for start in range(0, count, 50):
        await asyncio.gather(
            *(
                store.put(key, sample(), expected_version=None, due_at=1.0)
                for key in keys[start : start + 50]
            )
        )
    started = time.perf_counter()
    claimed = 0
    while batch := await claim(store, limit=100, claim_for=60.0, clients=SCOPE[:1]):
        assert len(batch) == 100
        claimed += len(batch)
    elapsed = time.perf_counter() - started
    assert claimed == count
    return claimed / elapsed


async def claim(
    store: RefreshDuty,
    *,
    limit: int = 10,
    claim_for: float = 60.0,
    owner: str = "w",
    clients: tuple[TokenKey, ...] = SCOPE,
) -> list[TokenKey]:
    """A claim by a worker serving :data:`SCOPE` (unless told otherwise)."""
    return await store.claim_due(limit=limit, claim_for=claim_for, owner=owner, clients=clients)


def due_keys(count: int, provider: str = "everifin") -> list[TokenKey]:
    return [TokenKey(provider, f"user-{n:04d}") for n in range(count)]


class DutyContract:
    """Tests every RefreshDuty store must pass (issues 16 and 22). Due times are epoch seconds
    long past (due on any clock) or around the store's clock (the machine's, here)."""

    async def test_is_a_refresh_duty(self, store: TokenStore) -> None:
        assert isinstance(store, RefreshDuty)

    async def test_due_sets_are_claimed_once_until_their_deadline(self, store: RefreshDuty) -> None:
        """A claim pushes the due time to the store clock's now plus claim_for; there it falls
        due again."""
        await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        await store.put(BOB, sample(), expected_version=None, due_at=50.0)
        await store.put(CLIENT, sample(), expected_version=None, due_at=None)
        assert await store.due_count(now=75.0) == 1
        assert await store.due_count(now=100.0) == 2
        assert await store.next_due() == 50.0
        before = time.time()
        claimed = await claim(store, claim_for=30.0, owner="w1")
        after = time.time()
        assert sorted(claimed) == sorted([ALICE, BOB])
        assert await claim(store, claim_for=30.0, owner="w2") == []
        deadline = await store.next_due()
        assert deadline is not None
        assert before + 30.0 - 0.01 <= deadline <= after + 30.0 + 0.01
        await store.reschedule(ALICE, 10.0)  # as if its deadline had passed
        assert await claim(store, owner="w2") == [ALICE]

    async def test_a_short_claim_falls_due_again(self, store: RefreshDuty) -> None:
        await store.put(ALICE, sample(), expected_version=None, due_at=1.0)
        assert await claim(store, claim_for=0.2) == [ALICE]
        assert await claim(store, claim_for=0.2) == []
        await asyncio.sleep(0.4)
        assert await claim(store, claim_for=0.2) == [ALICE]

    async def test_claims_run_on_the_stores_clock(self, store: RefreshDuty) -> None:
        """Due means due on the store's clock: a set due in a minute is not claimed now,
        whoever asks (claimants pass no clock of their own)."""
        await store.put(ALICE, sample(), expected_version=None, due_at=time.time() + 60.0)
        await store.put(BOB, sample(), expected_version=None, due_at=time.time() - 1.0)
        assert await claim(store) == [BOB]

    async def test_claims_take_only_what_the_claimant_can_renew(self, store: RefreshDuty) -> None:
        """User sets of its providers and its own client sets: not another client's set, not a
        set of another provider."""
        mine = TokenKey("everifin", client="app#1")
        theirs = TokenKey("everifin", client="other#2")
        unserved = TokenKey("fints", "carol")
        for key in (ALICE, mine, theirs, unserved, CLIENT):
            await store.put(key, sample(), expected_version=None, due_at=10.0)
        claimed = await claim(store, clients=(mine,))
        assert sorted(claimed, key=str) == sorted([ALICE, mine], key=str)
        assert await claim(store, clients=(TokenKey("finapi", client="app#1"),)) == []
        assert await claim(store, clients=(TokenKey("finapi"),)) == [CLIENT]
        assert await claim(store, clients=(theirs,)) == [theirs]
        assert await claim(store, clients=(TokenKey("fints", client="x#1"),)) == [unserved]
        assert await claim(store, clients=()) == []

    async def test_next_due_of_a_claimant_skips_what_it_cannot_renew(
        self, store: RefreshDuty
    ) -> None:
        await store.put(
            TokenKey("everifin", client="other#2"), sample(), expected_version=None, due_at=5.0
        )
        await store.put(TokenKey("fints", "carol"), sample(), expected_version=None, due_at=6.0)
        await store.put(ALICE, sample(), expected_version=None, due_at=7.0)
        assert await store.next_due() == 5.0
        assert await store.next_due(clients=SCOPE) == 7.0
        assert await store.next_due(clients=(TokenKey("finapi", client="app#1"),)) is None

    @pytest.mark.parametrize(
        "clients",
        [(ALICE,), (TokenKey("everifin", client="a#1"), TokenKey("everifin", client="b#1"))],
    )
    async def test_a_scope_of_anything_but_own_client_keys_is_a_usage_error(
        self, store: RefreshDuty, clients: tuple[TokenKey, ...]
    ) -> None:
        with pytest.raises(UsageError):
            await claim(store, clients=clients)

    async def test_claims_take_the_most_overdue_first(self, store: RefreshDuty) -> None:
        """limit=1 claims come in due order, whatever the shards the keys fall in."""
        keys = due_keys(12)
        dues = [1000.0 - 7 * n for n in range(12)]  # the last key is the most overdue
        for key, due in zip(keys, dues, strict=True):
            await store.put(key, sample(), expected_version=None, due_at=due)
        order = []
        for _ in range(12):
            claimed = await claim(store, limit=1)
            assert len(claimed) == 1
            order += claimed
        assert order == keys[::-1]
        assert await claim(store, limit=1) == []

    async def test_a_batch_takes_exactly_the_limit_and_starves_no_shard(
        self, store: RefreshDuty
    ) -> None:
        """300 due sets, claims of 16: every claim is full until the backlog runs out, the most
        overdue set is in the first batch, and every set is claimed exactly once."""
        keys = due_keys(300)
        for n, key in enumerate(keys):
            await store.put(key, sample(), expected_version=None, due_at=10.0 + n)
        first = await claim(store, limit=16, claim_for=600.0)
        assert len(first) == 16
        assert keys[0] in first
        seen = list(first)
        while batch := await claim(store, limit=16, claim_for=600.0):
            assert len(batch) == min(16, 300 - len(seen))
            seen += batch
        assert sorted(seen) == sorted(keys)
        assert await store.due_count(now=time.time()) == 0

    async def test_concurrent_claimants_never_share_a_key(self, store: RefreshDuty) -> None:
        """25 claimants racing over 400 due sets: each set goes to exactly one of them."""
        keys = due_keys(400)
        for n, key in enumerate(keys):
            await store.put(key, sample(), expected_version=None, due_at=float(n % 50))

        async def claimant(name: str) -> list[TokenKey]:
            mine: list[TokenKey] = []
            while batch := await claim(store, limit=7, owner=name):
                mine += batch
                await asyncio.sleep(0)
            return mine

        results = await asyncio.gather(*(claimant(f"w{n}") for n in range(25)))
        everything = [key for result in results for key in result]
        assert len(everything) == len(set(everything)) == 400

    async def test_put_sets_and_clears_the_due_time_with_the_write(
        self, store: RefreshDuty
    ) -> None:
        """A put's due time replaces the old one; None unschedules; a lost CAS changes nothing."""
        later = time.time() + 500.0
        version = await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        version = await store.put(ALICE, sample("AT-2"), expected_version=version, due_at=later)
        assert await claim(store) == []
        assert await store.next_due() == later
        with pytest.raises(StoreConflictError):
            await store.put(ALICE, sample("AT-X"), expected_version=version + 1, due_at=1.0)
        assert await store.next_due() == later
        await store.put(ALICE, sample("AT-3"), expected_version=version, due_at=None)
        assert await store.next_due() is None
        assert await claim(store) == []

    async def test_delete_clears_the_due_time(self, store: RefreshDuty) -> None:
        await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        assert isinstance(store, TokenStore)
        assert await store.delete(ALICE) is True
        assert await store.next_due() is None
        assert await store.due_count(now=1e12) == 0
        assert await claim(store) == []

    async def test_reschedule(self, store: RefreshDuty) -> None:
        """Reschedule moves or clears a due time, never creates a key."""
        version = await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        await store.reschedule(ALICE, 300.0)
        assert await store.next_due() == 300.0
        await store.reschedule(ALICE, None)
        assert await store.next_due() is None
        await store.reschedule(BOB, 50.0)
        assert await store.next_due() is None
        assert isinstance(store, TokenStore)
        assert await store.get(BOB) is None
        stored = await store.get(ALICE)
        assert stored is not None
        assert stored.version == version  # the set itself is untouched
        await store.reschedule(ALICE, 10.0)
        assert await claim(store) == [ALICE]

    async def test_reschedule_at_a_version(self, store: RefreshDuty) -> None:
        """With expected_version, only the set at that version is rescheduled: a login stored
        since keeps its own due time."""
        first = await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        second = await store.put(ALICE, sample("AT-2"), expected_version=first, due_at=200.0)
        await store.reschedule(ALICE, None, expected_version=first)
        assert await store.next_due() == 200.0
        await store.reschedule(ALICE, None, expected_version=second)
        assert await store.next_due() is None

    @pytest.mark.parametrize(
        ("limit", "claim_for"), [(0, 10.0), (-1, 10.0), (True, 10.0), (5, 0.0), (5, math.nan)]
    )
    async def test_bad_claims_are_usage_errors(
        self, store: RefreshDuty, limit: int, claim_for: float
    ) -> None:
        with pytest.raises(UsageError):
            await claim(store, limit=limit, claim_for=claim_for)

    @pytest.mark.parametrize("due_at", [math.nan, math.inf])
    async def test_a_bad_due_time_is_a_usage_error(self, store: RefreshDuty, due_at: float) -> None:
        with pytest.raises(UsageError):
            await store.put(ALICE, sample(), expected_version=None, due_at=due_at)
        assert isinstance(store, TokenStore)
        assert await store.get(ALICE) is None

    async def test_is_a_use_stamps_store(self, store: TokenStore) -> None:
        assert isinstance(store, UseStamps)

    async def test_a_use_is_stamped_as_an_age_and_read_on_the_stores_clock(
        self, store: RefreshDuty
    ) -> None:
        """A use stamped ``age`` seconds ago reads as that many seconds (plus the time since);
        a set never stamped reads ``None``, a key not stored is left out."""
        assert isinstance(store, UseStamps)
        await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        await store.put(BOB, sample(), expected_version=None, due_at=100.0)
        await store.mark_used({ALICE: 100.0, CLIENT: 5.0})
        idle = await store.idle_for([ALICE, BOB, CLIENT])
        assert set(idle) == {ALICE, BOB}
        assert idle[BOB] is None
        assert idle[ALICE] is not None
        assert 100.0 - 0.01 <= idle[ALICE] <= 105.0

    async def test_the_latest_use_wins(self, store: RefreshDuty) -> None:
        """Stamps from several writers arrive in any order: an older one changes nothing."""
        assert isinstance(store, UseStamps)
        await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        await store.mark_used({ALICE: 10.0})
        await store.mark_used({ALICE: 500.0})
        first = (await store.idle_for([ALICE]))[ALICE]
        assert first is not None
        assert 10.0 - 0.01 <= first <= 15.0
        await store.mark_used({ALICE: 0.0})
        latest = (await store.idle_for([ALICE]))[ALICE]
        assert latest is not None
        assert latest < first

    async def test_a_stamp_lives_and_dies_with_its_set(self, store: RefreshDuty) -> None:
        """A put keeps the stamp (a renewal is no use); a delete drops it; a key not stored
        when stamped stays unstamped once stored."""
        assert isinstance(store, UseStamps)
        assert isinstance(store, TokenStore)
        version = await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        await store.mark_used({ALICE: 50.0, BOB: 1.0})
        await store.put(ALICE, sample("AT-2"), expected_version=version, due_at=200.0)
        kept = (await store.idle_for([ALICE]))[ALICE]
        assert kept is not None
        assert kept >= 50.0 - 0.01
        await store.delete(ALICE)
        await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        await store.put(BOB, sample(), expected_version=None, due_at=100.0)
        assert await store.idle_for([ALICE, BOB]) == {ALICE: None, BOB: None}

    async def test_a_stamp_brings_an_unscheduled_set_back_to_the_duty(
        self, store: RefreshDuty
    ) -> None:
        """A set the duty left idle (no due time) falls due at once when used; a scheduled or
        claimed set keeps its due time."""
        assert isinstance(store, UseStamps)
        later = time.time() + 3600.0
        await store.put(ALICE, sample(), expected_version=None, due_at=None)
        await store.put(BOB, sample(), expected_version=None, due_at=later)
        await store.mark_used({ALICE: 0.0, BOB: 0.0})
        assert await claim(store) == [ALICE]
        deadline = await store.next_due()
        assert deadline is not None
        assert deadline > time.time() + 30.0  # ALICE's claim: the stamp did not move it
        await store.mark_used({ALICE: 0.0})
        assert await claim(store) == []
        assert await store.due_count(now=later - 1.0) == 1  # BOB still due at his own time

    async def test_stamps_come_in_batches(self, store: RefreshDuty) -> None:
        """One call stamps many sets (more than one statement's or script's worth)."""
        assert isinstance(store, UseStamps)
        keys = due_keys(1200)
        for start in range(0, len(keys), 100):
            await asyncio.gather(
                *(
                    store.put(key, sample(), expected_version=None, due_at=100.0)
                    for key in keys[start : start + 100]
                )
            )
        await store.mark_used(dict.fromkeys(keys[:1100], 30.0))
        idle = await store.idle_for(keys)
        assert len(idle) == 1200
        assert all(idle[key] is None for key in keys[1100:])
        assert all(30.0 - 0.01 <= (idle[key] or 0.0) <= 60.0 for key in keys[:1100])

    @pytest.mark.parametrize("age", [-1.0, math.nan, math.inf, True])
    async def test_a_bad_age_is_a_usage_error(self, store: RefreshDuty, age: float) -> None:
        assert isinstance(store, UseStamps)
        await store.put(ALICE, sample(), expected_version=None, due_at=100.0)
        with pytest.raises(UsageError):
            await store.mark_used({ALICE: age})
        assert await store.idle_for([ALICE]) == {ALICE: None}


class ConnectionsContract:
    """Connection records, the notices' outbox and the update budgets (every shipped store)."""

    async def test_is_connection_records(self, store: TokenStore) -> None:
        assert isinstance(store, ConnectionRecords)

    async def test_records_compare_and_set(self, store: ConnectionRecords) -> None:
        """A write at the read version wins; at a stale one, or onto an existing name, loses."""
        assert await store.get_connection("finapi/alice/1") is None
        first = await store.put_connection("finapi/alice/1", b"one", expected_version=None)
        with pytest.raises(StoreConflictError):
            await store.put_connection("finapi/alice/1", b"x", expected_version=None)
        second = await store.put_connection("finapi/alice/1", b"two", expected_version=first)
        assert second != first
        with pytest.raises(StoreConflictError):
            await store.put_connection("finapi/alice/1", b"x", expected_version=first)
        with pytest.raises(StoreConflictError):
            await store.put_connection("finapi/bob/1", b"x", expected_version=first)
        assert await store.get_connection("finapi/alice/1") == (b"two", second)
        await store.put_connection("everifin/bob/", b"three", expected_version=None)
        listed = {name: data async for name, data in store.list_connections()}
        assert listed == {"finapi/alice/1": b"two", "everifin/bob/": b"three"}

    async def test_concurrent_record_writers_have_one_winner(
        self, store: ConnectionRecords
    ) -> None:
        """Twenty writers at one version: one wins."""
        version = await store.put_connection("c", b"0", expected_version=None)

        async def write(n: int) -> bool:
            try:
                await store.put_connection("c", str(n).encode(), expected_version=version)
            except StoreConflictError:
                return False
            return True

        assert (await asyncio.gather(*(write(n) for n in range(20)))).count(True) == 1

    async def test_a_notice_is_claimed_once_ever(self, store: ConnectionRecords) -> None:
        """Twenty claimants of one id: one wins; after it finishes, nobody claims it again."""
        won = await asyncio.gather(
            *(store.claim_notice("n|1", b"data", claim_for=60) for _ in range(20))
        )
        assert won.count(True) == 1
        assert await store.claim_notice("n|2", b"other", claim_for=60) is True
        await store.finish_notice("n|1")
        assert await store.claim_notice("n|1", b"data", claim_for=60) is False

    async def test_an_undelivered_notice_falls_due_again(self, store: ConnectionRecords) -> None:
        """A claim that runs out hands the notice to one redeliverer; a finished one never."""
        await store.claim_notice("short", b"s", claim_for=0.1)
        await store.claim_notice("done", b"d", claim_for=0.1)
        await store.claim_notice("long", b"l", claim_for=60)
        await store.finish_notice("done")
        assert await store.overdue_notices(limit=10, claim_for=60) == []
        await asyncio.sleep(0.3)
        taken = await asyncio.gather(
            *(store.overdue_notices(limit=10, claim_for=60) for _ in range(5))
        )
        assert [notice for batch in taken for notice in batch] == [("short", b"s")]
        await store.finish_notice("short")
        await asyncio.sleep(0.01)
        assert await store.overdue_notices(limit=10, claim_for=60) == []

    async def test_overdue_takes_at_most_the_limit(self, store: ConnectionRecords) -> None:
        """Five overdue, limit two: two now, two next, one last."""
        for n in range(5):
            await store.claim_notice(f"n{n}", b"x", claim_for=0.05)
        await asyncio.sleep(0.2)
        sizes = [len(await store.overdue_notices(limit=2, claim_for=60)) for _ in range(4)]
        assert sizes == [2, 2, 1, 0]

    async def test_delivered_notices_are_pruned_after_the_retention(
        self, store: ConnectionRecords
    ) -> None:
        """Only notices finished longer ago than the retention go; their ids are free again."""
        for notice in ("old", "new", "open"):
            assert await store.claim_notice(notice, b"x", claim_for=60) is True
        await store.finish_notice("old")
        await asyncio.sleep(0.4)
        await store.finish_notice("new")
        assert await store.prune_notices(older_than=0.2) == 1
        assert await store.prune_notices(older_than=0.2) == 0
        assert await store.claim_notice("old", b"x", claim_for=60) is True
        assert await store.claim_notice("new", b"x", claim_for=60) is False
        assert await store.claim_notice("open", b"x", claim_for=60) is False

    async def test_is_update_budgets(self, store: TokenStore) -> None:
        assert isinstance(store, UpdateBudgets)

    async def test_the_limit_per_window_then_when_the_next_frees(
        self, store: UpdateBudgets
    ) -> None:
        """Three slots per minute: three taken, the fourth told when the first leaves the
        window (on the store's clock, this machine's here); another connection is apart."""
        before = time.time()
        assert [await store.take_update("finapi/a/1", limit=3, window=60) for _ in range(3)] == [
            None,
            None,
            None,
        ]
        after = time.time()
        refused = await store.take_update("finapi/a/1", limit=3, window=60)
        assert refused is not None
        assert before + 60 - 1 <= refused <= after + 60 + 1
        assert await store.take_update("finapi/a/1", limit=3, window=60) == refused
        assert await store.take_update("finapi/a/2", limit=3, window=60) is None

    async def test_slots_leave_the_window(self, store: UpdateBudgets) -> None:
        assert await store.take_update("c", limit=2, window=0.3) is None
        assert await store.take_update("c", limit=2, window=0.3) is None
        assert await store.take_update("c", limit=2, window=0.3) is not None
        await asyncio.sleep(0.5)
        assert await store.take_update("c", limit=2, window=0.3) is None

    async def test_concurrent_takers_get_exactly_the_limit(self, store: UpdateBudgets) -> None:
        taken = await asyncio.gather(
            *(store.take_update("c", limit=4, window=60) for _ in range(20))
        )
        assert taken.count(None) == 4

    @pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (4, 0.0), (4, math.nan)])
    async def test_a_bad_budget_is_a_usage_error(
        self, store: UpdateBudgets, limit: int, window: float
    ) -> None:
        with pytest.raises(UsageError):
            await store.take_update("c", limit=limit, window=window)
