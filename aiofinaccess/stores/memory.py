"""An in-process token store: the reference implementation of the store protocol.

Good for tests, scripts and single-process apps that can afford to lose sessions on restart.
Its lease is an :class:`asyncio.Lock` per key (one process holds every user of it): a holder
cannot vanish without its process, so the lease never runs out and extending it always
succeeds. Pending
authorization records live in a dict with a monotonic expiry; a take is atomic because nothing
awaits between its read and its delete.

The refresh duty (:class:`~aiofinaccess.stores.RefreshDuty`) keeps due times in a dict and a
heap of ``(due, key)`` entries; an entry whose due time changed since is stale and skipped when
it reaches the top, and the heap is rebuilt when stale entries outnumber live ones. A claim is
atomic for the same reason a take is: nothing awaits inside it.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from ..core.errors import LeaseBusyError, StoreConflictError
from ..core.tokens import TokenKey, TokenSet
from . import LOCAL_LEASE, LocalLease, StoreStats, Versioned, check_claim, check_due, check_ttl

__all__ = ["MemoryStore"]


class MemoryStore:
    """Token sets in a dict, with versioned compare-and-swap and a per-key lease.

    Lives as long as the manager that owns it; holds nothing across processes.
    """

    def __init__(self) -> None:
        self._data: dict[TokenKey, Versioned] = {}
        #: Always zero: keys and sets are held as objects, nothing to parse or decode.
        self.stats = StoreStats()
        # Lock and the number of tasks holding or waiting for it, so idle locks can be dropped.
        self._locks: dict[TokenKey, tuple[asyncio.Lock, int]] = {}
        self._next_version = 0
        self._pending: dict[str, tuple[bytes, float]] = {}
        self._purge_above = 64  # purge expired records when the dict grows past this size
        self._due: dict[TokenKey, float] = {}
        self._heap: list[tuple[float, str, TokenKey]] = []  # (due, str(key), key); may be stale

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
        return True

    # -- refresh duty ------------------------------------------------------------------------

    async def claim_due(
        self, *, now: float, limit: int, claim_for: float, owner: str
    ) -> list[TokenKey]:
        """Take up to ``limit`` sets due at ``now``, most overdue first; due again at
        ``now + claim_for``."""
        check_claim(limit, claim_for)
        del owner  # one process: nobody to tell
        claimed: list[TokenKey] = []
        while self._heap and len(claimed) < limit and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == due and key not in claimed:
                claimed.append(key)
        for key in claimed:
            self._set_due(key, now + claim_for)
        return claimed

    async def reschedule(self, key: TokenKey, due_at: float | None) -> None:
        """Set or clear ``key``'s due time (nothing for an absent key)."""
        due = check_due(due_at)
        if key in self._data:
            self._set_due(key, due)

    async def next_due(self) -> float | None:
        """The earliest due time, or ``None``."""
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now`` (a scan: this store is for small deployments)."""
        return sum(1 for due in self._due.values() if due <= now)

    def _set_due(self, key: TokenKey, due: float | None) -> None:
        if due is None:
            self._due.pop(key, None)
        else:
            self._due[key] = due
            heapq.heappush(self._heap, (due, str(key), key))
        if len(self._heap) > 2 * len(self._due) + 64:  # mostly stale entries: rebuild
            self._heap = [(due, str(key), key) for key, due in self._due.items()]
            heapq.heapify(self._heap)

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

    async def aclose(self) -> None:
        """Nothing to release."""
