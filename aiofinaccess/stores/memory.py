"""An in-process token store: the reference implementation of the store protocol.

For tests, scripts and single-process apps that can afford to lose sessions on restart. Its
lease is an :class:`asyncio.Lock` per key, which never runs out; a take of a pending
authorization and a claim of due sets are atomic because nothing awaits inside them. Its clock
is the process's wall clock: reads return no age, and claims use :func:`time.time`.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from contextlib import asynccontextmanager

from ..core.errors import LeaseBusyError, StoreConflictError
from ..core.payment_records import StoredRecord
from ..core.tokens import TokenKey, TokenSet
from ._memory_connections import MemoryConnections
from .payment_records import check_names
from .protocol import (
    LOCAL_LEASE,
    Claimed,
    LocalLease,
    StoreStats,
    Versioned,
    check_claim,
    check_due,
    check_scope,
    check_ttl,
    check_uses,
    in_scope,
)

__all__ = ["MemoryStore"]


class MemoryStore(MemoryConnections):
    """Token sets in a dict, with versioned compare-and-swap and a per-key lease.

    Lives as long as the manager that owns it; holds nothing across processes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._data: dict[TokenKey, Versioned] = {}
        #: Always zero: keys and sets are held as objects, nothing to parse or decode.
        self.stats = StoreStats()
        # Lock and the number of tasks holding or waiting for it, so idle locks can be dropped.
        self._locks: dict[TokenKey, tuple[asyncio.Lock, int]] = {}
        self._next_version = 0
        self._pending: dict[str, tuple[bytes, float]] = {}
        self._purge_above = 64  # purge expired records when the dict grows past this size
        self._due: dict[TokenKey, float] = {}
        # Per provider, (due, str(key), key) entries; an entry may be stale (see the docstring).
        self._heaps: dict[str, list[tuple[float, str, TokenKey]]] = {}
        self._stacked = 0  # entries pushed on the heaps since the last rebuild
        self._payments: dict[str, dict[str, StoredRecord]] = {}
        self._used: dict[TokenKey, float] = {}  # last use, on this machine's wall clock

    def __repr__(self) -> str:
        return f"MemoryStore(token_sets={len(self._data)})"

    async def get(self, key: TokenKey) -> Versioned | None:
        """Return the stored token set for ``key``, or ``None``."""
        return self._data.get(key)

    async def put(
        self,
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        """Compare-and-swap ``token_set`` in at ``expected_version``; set its due time."""
        due = check_due(due_at)
        current = self._data.get(key)
        current_version = None if current is None else current.version
        if current_version != expected_version:
            raise StoreConflictError(
                f"token set {key.hashed} is at version {current_version}, not {expected_version}"
            )
        self._next_version += 1
        self._data[key] = Versioned(token_set, self._next_version)
        self._set_due(key, due)
        return self._next_version

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        """Delete ``key`` (at ``expected_version`` when given)."""
        current = self._data.get(key)
        if current is None:
            return False
        if expected_version is not None and current.version != expected_version:
            raise StoreConflictError(
                f"token set {key.hashed} is at version {current.version}, not {expected_version}"
            )
        del self._data[key]
        self._set_due(key, None)
        self._used.pop(key, None)
        return True

    # -- refresh duty ------------------------------------------------------------------------

    async def claim_due(
        self, *, limit: int, claim_for: float, owner: str, clients: Collection[TokenKey]
    ) -> Claimed:
        """Take up to ``limit`` sets in ``clients``' scope that are due now (this machine's
        clock), most overdue first; due again ``claim_for`` seconds later."""
        check_claim(limit, claim_for)
        scope = check_scope(clients) or {}
        del owner  # one process: nobody to tell
        now = time.time()
        candidates: list[tuple[float, str, TokenKey]] = []
        for provider, own in scope.items():
            heap = self._heaps.get(provider, [])
            foreign, taken = [], 0
            while heap and taken < limit and heap[0][0] <= now:
                entry = heapq.heappop(heap)
                if self._due.get(entry[2]) != entry[0]:
                    continue  # stale: the key's due time changed since
                if entry[2].is_client and entry[2] != own:
                    foreign.append(entry)  # another client's: left for its own worker
                    continue
                candidates.append(entry)
                taken += 1
            for entry in foreign:
                heapq.heappush(heap, entry)
        candidates.sort()
        claimed: list[TokenKey] = []
        for entry in candidates:
            if len(claimed) < limit and entry[2] not in claimed:
                claimed.append(entry[2])
            elif entry[2] not in claimed:
                heapq.heappush(self._heaps[entry[2].provider], entry)
        for key in claimed:
            self._set_due(key, now + claim_for)
        return Claimed(claimed)

    async def reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        """Set or clear ``key``'s due time (nothing for an absent key, or one at another
        version than ``expected_version``)."""
        due = check_due(due_at)
        current = self._data.get(key)
        if current is not None and expected_version in (None, current.version):
            self._set_due(key, due)

    async def next_due(self, *, clients: Collection[TokenKey] | None = None) -> float | None:
        """The earliest due time in ``clients``' scope (everything: ``None``), or ``None``."""
        scope = check_scope(clients)
        heads = []
        for provider, heap in self._heaps.items():
            if scope is not None and provider not in scope:
                continue
            while heap and self._due.get(heap[0][2]) != heap[0][0]:
                heapq.heappop(heap)
            if not heap:
                continue
            if scope is None or not heap[0][2].is_client or heap[0][2] == scope[provider]:
                heads.append(heap[0][0])
            else:  # another client's set heads the heap: look past it (rare, small store)
                heads += [due for key, due in self._due.items() if in_scope(key, scope)]
        return min(heads, default=None)

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now`` (a scan: this store is for small deployments)."""
        return sum(1 for due in self._due.values() if due <= now)

    def _set_due(self, key: TokenKey, due: float | None) -> None:
        if due is None:
            self._due.pop(key, None)
        else:
            self._due[key] = due
            heapq.heappush(self._heaps.setdefault(key.provider, []), (due, str(key), key))
            self._stacked += 1
        if self._stacked > 2 * len(self._due) + 64:  # mostly stale entries: rebuild
            self._heaps = {}
            for known, at in self._due.items():
                self._heaps.setdefault(known.provider, []).append((at, str(known), known))
            for heap in self._heaps.values():
                heapq.heapify(heap)
            self._stacked = len(self._due)

    async def mark_used(self, uses: Mapping[TokenKey, float]) -> None:
        """Stamp each stored key's last use (``uses[key]`` seconds ago); an unscheduled key
        falls due now."""
        now = time.time()
        for key, age in check_uses(uses):
            if key in self._data:
                self._used[key] = max(self._used.get(key, -math.inf), now - age)
                if key not in self._due:
                    self._set_due(key, now)

    async def idle_for(self, keys: Collection[TokenKey]) -> dict[TokenKey, float | None]:
        """Seconds since each stored key's last stamped use (``None``: never stamped)."""
        now = time.time()
        return {
            key: None if (at := self._used.get(key)) is None else max(0.0, now - at)
            for key in keys
            if key in self._data
        }

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        """The stored sets of ``keys`` that exist, in one call."""
        return {key: self._data[key] for key in keys if key in self._data}

    @asynccontextmanager
    async def lease(self, key: TokenKey, *, ttl: float) -> AsyncIterator[LocalLease]:
        """Hold ``key`` exclusively; wait at most ``ttl`` seconds for another holder.

        The lease itself never runs out: in one process a holder cannot vanish.

        Raises:
            LeaseBusyError: Another task held it for ``ttl`` seconds.
        """
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(ttl):
                    await lock.acquire()
            except TimeoutError:
                raise LeaseBusyError(
                    f"timed out waiting for the lease on token set {key.hashed}"
                ) from None
            try:
                yield LOCAL_LEASE
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        """Iterate over stored keys."""
        for key in list(self._data):
            if provider is None or key.provider == provider:
                yield key

    async def put_pending(self, state: str, data: bytes, *, ttl: float) -> None:
        """Keep ``data`` under ``state`` for ``ttl`` seconds (replacing any record)."""
        self._pending[state] = (bytes(data), time.monotonic() + check_ttl(ttl))
        if len(self._pending) > self._purge_above:
            now = time.monotonic()
            for name in [name for name, (_, until) in self._pending.items() if until <= now]:
                del self._pending[name]
            self._purge_above = max(64, 2 * len(self._pending))  # amortised O(1) per put

    async def get_pending(self, state: str) -> bytes | None:
        """The live record under ``state``, or ``None``."""
        record = self._pending.get(state)
        if record is None or record[1] <= time.monotonic():
            return None
        return record[0]

    async def take_pending(self, state: str) -> bytes | None:
        """Read and delete the record in one step (no await in between: one taker wins)."""
        record = self._pending.pop(state, None)
        if record is None or record[1] <= time.monotonic():
            return None
        return record[0]

    async def add_payment_record(self, scope: str, reference: str, data: bytes) -> bool:
        """Create the record unless one exists (no await inside: one adder wins)."""
        check_names(scope, reference)
        records = self._payments.setdefault(scope, {})
        if reference in records:
            return False
        records[reference] = StoredRecord(bytes(data), 1)
        return True

    async def get_payment_record(self, scope: str, reference: str) -> StoredRecord | None:
        """The record, or ``None``."""
        return self._payments.get(scope, {}).get(reference)

    async def replace_payment_record(
        self, scope: str, reference: str, data: bytes, *, expected_version: int
    ) -> bool:
        """Write ``data`` if the record is at ``expected_version``."""
        records = self._payments.get(scope, {})
        found = records.get(reference)
        if found is None or found.version != expected_version:
            return False
        records[reference] = StoredRecord(bytes(data), found.version + 1)
        return True

    async def payment_records(self, scope: str) -> dict[str, StoredRecord]:
        """Every record of ``scope``."""
        return dict(self._payments.get(scope, {}))

    async def aclose(self) -> None:
        """Nothing to release."""
