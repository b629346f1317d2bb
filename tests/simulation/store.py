"""A simulated shared token store: latency, failing calls, outages, leases that run out on the
store's clock, and a change feed, all on virtual time.

Every call is a message: it travels to the store, takes effect there atomically, and its
answer travels back. A call that was sent takes effect even if its sender crashes or stops
waiting meanwhile, as with a real server; a call from a crashed process never leaves it. An
answer can be lost after the effect (the caller sees an error for a write that happened), a
call can fail before any effect, and during an outage every call fails.

:class:`DutyStoreClient` also keeps the refresh duty (:class:`aiofinaccess.stores.RefreshDuty`):
due times written with the sets, claims that push them to a deadline on the store's clock and
take only what the claimant can renew, so the simulated managers run the duty path (claims, a
claimant crashing mid-batch, claims outliving a slow renewal).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from aiofinaccess.core.errors import LeaseBusyError, StoreConflictError, StoreError
from aiofinaccess.core.tokens import TokenKey, TokenSet
from aiofinaccess.stores.codec import JsonCodec
from aiofinaccess.stores.protocol import (
    Claimed,
    HeldLease,
    Versioned,
    check_scope,
    in_scope,
    stored_age,
    writer_age,
)
from tests.simulation.durability import Replica, Writes

if TYPE_CHECKING:
    from tests.simulation.world import Process, World

_T = TypeVar("_T")
Snapshot = tuple[dict[TokenKey, tuple[int, bytes]], dict[TokenKey, float], dict[TokenKey, float]]
#: RedisStore's tolerance for a writer's clock before due times are moved (DUE_TOLERANCE).
DUE_TOLERANCE = 1.0


@attrs.define
class _Lease:
    owner: str
    expires_at: float


class SharedStore:
    """The store's own state, shared by every simulated process."""

    def __init__(self, world: World, rng: random.Random, *, faults: float) -> None:
        self.world = world
        self.rng = rng
        self.fault_rate = faults
        self.records: dict[TokenKey, tuple[int, bytes]] = {}
        # Each record's stamp, as RedisStore keeps it: (version, the store's clock at the
        # write, the set's age then, the part of it counted as the write's transit), so a read
        # returns the set's age.
        self.stamps: dict[TokenKey, tuple[int, float, float, float]] = {}
        self.leases: dict[TokenKey, _Lease] = {}
        self.outages: list[tuple[float, float]] = []
        self.feeds: list[tuple[Process, asyncio.Queue[tuple[TokenKey, int | None]]]] = []
        self.codec = JsonCodec()
        self.calls = 0
        # The refresh duty's due times (wall clock), for worlds whose processes share the duty.
        self.due: dict[TokenKey, float] = {}
        self.claims: list[tuple[TokenKey, str, float]] = []
        # Per key: the true time and length of its last claim, and of its last due-time write
        # (the duty's exclusivity, checked at every claim: see world.py, I11).
        self.claimed_at: dict[TokenKey, tuple[float, float]] = {}
        self.due_written_at: dict[TokenKey, float] = {}
        # Each set's last use on the store's clock (idleness.py: a store that keeps stamps).
        self.used: dict[TokenKey, float] = {}
        # The durability option (durability.py): the world's, and its replica.
        self.replication = world.features.replication
        self.replica = Replica(self)

    def snapshot(self) -> Snapshot:
        """What a backup (or a replica that falls behind) holds now."""
        self.replica.snapshot()
        return dict(self.records), dict(self.due), dict(self.used)

    def restore(self, snapshot: Snapshot) -> None:
        """Roll back to ``snapshot``: every acknowledged write since is lost (leases are not)."""
        records, due, used = snapshot
        self.records, self.due, self.used = dict(records), dict(due), dict(used)
        for key in sorted(set(self.records) | set(self.due), key=str):  # a seeded order
            self.announce(key, self.records[key][0] if key in self.records else None)
            self.due_written_at[key] = self.now()
        self.replica.failover()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def versioned(self, key: TokenKey) -> Versioned | None:
        """The record of ``key`` with its age on the store's clock (the world's wall clock)."""
        record = self.records.get(key)
        if record is None:
            return None
        token_set = self.codec.decode(record[1], kind="token_set", key=str(key))
        stamp = self.stamps.get(key)
        if stamp is None or stamp[0] != record[0]:
            return Versioned(token_set, record[0])
        age = stored_age(stamp[1], stamp[2], self.world.wall())
        return Versioned(token_set, record[0], age=age, transit=stamp[3])

    def write(
        self, key: TokenKey, version: int, data: bytes, age: float, transit: float = 0.0
    ) -> None:
        """Store a record stamped with the store's clock and the set's age (``transit`` of it
        the write's transit)."""
        self.records[key] = (version, data)
        self.stamps[key] = (version, self.world.wall(), age, transit)

    def wall(self) -> float:
        """The store's own wall clock (the true one: processes' clocks are skewed from it)."""
        return self.world.wall()

    def in_outage(self) -> bool:
        now = self.now()
        return any(start <= now < end for start, end in self.outages)

    def client(self, process: Process, *, duty: bool) -> StoreClient:
        """A new process's connection (one that keeps the refresh duty if ``duty``, and use
        stamps too in idle worlds)."""
        if duty and self.world.features.idle_after:
            from tests.simulation.idleness import StampingStoreClient  # noqa: PLC0415  (a cycle)

            return StampingStoreClient(self, process)
        return (DutyStoreClient if duty else StoreClient)(self, process)

    def check(self) -> list[str]:
        """Violations found in the store's own records at the end (none kept here)."""
        return []

    def announce(self, key: TokenKey, version: int | None) -> None:
        for process, queue in self.feeds:
            if process.alive and self.rng.random() > 0.05:  # the feed is best effort
                queue.put_nowait((key, version))


class StoreClient:
    """One process's connection to the shared store: the TokenStore protocol and a change feed."""

    def __init__(self, shared: SharedStore, process: Process) -> None:
        self._shared = shared
        self._process = process
        self._owners = 0
        self.writes = Writes(shared)  # the durability option's side of its puts

    async def _call(
        self,
        effect: Callable[[], _T],
        *,
        fails_after: bool = True,
        at_send: Callable[[], None] | None = None,
        confirm: Callable[[], Awaitable[None]] | None = None,
    ) -> _T:
        """Send ``effect`` to the store; ``at_send`` runs where the request leaves (after any
        freeze), as a real store measures what it stamps (a writer's age) just before sending;
        ``confirm`` after an effect that raised nothing (a write's wait for its replica)."""
        process, shared = self._process, self._shared
        process.check_alive()
        await process.clock.frozen()  # a paused process sends nothing
        process.check_alive()
        if at_send is not None:
            at_send()
        shared.calls += 1
        rng = shared.rng
        answer: asyncio.Future[_T] = asyncio.get_running_loop().create_future()

        async def travel() -> None:
            await asyncio.sleep(rng.uniform(0.0005, 0.02))
            if shared.in_outage() or rng.random() < shared.fault_rate:
                outcome: Any = StoreError("simulated store failure before any effect")
            else:
                try:
                    outcome = effect()
                except StoreError as exc:
                    outcome = exc
                if confirm is not None and not isinstance(outcome, BaseException):
                    try:
                        await confirm()
                    except StoreError as exc:
                        outcome = exc
                if fails_after and rng.random() < shared.fault_rate / 2:
                    outcome = StoreError("simulated store failure after the effect")
            await asyncio.sleep(rng.uniform(0.0005, 0.02))
            if not answer.done() and process.alive:
                if isinstance(outcome, BaseException):
                    answer.set_exception(outcome)
                else:
                    answer.set_result(outcome)

        shared.world.message(travel(), answer)
        return await answer

    def _measure(self, token_set: TokenSet, into: list[float]) -> Callable[[], None]:
        """What a write stamps, read where it leaves: the writer's age of the set, its wall."""
        clock = self._process.clock
        return lambda: into.extend((writer_age(token_set, clock), clock.wall()))

    # -- token sets ------------------------------------------------------------------------------

    async def get(self, key: TokenKey) -> Versioned | None:
        found = await self._call(lambda: self._shared.versioned(key), fails_after=False)
        self._shared.world.read_by(self._process, [] if found is None else [found.token_set])
        return found

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        wanted = list(keys)

        def effect() -> dict[TokenKey, Versioned]:
            found = {}
            for key in wanted:
                versioned = self._shared.versioned(key)
                if versioned is not None:
                    found[key] = versioned
            return found

        found = await self._call(effect, fails_after=False)
        self._shared.world.read_by(self._process, [v.token_set for v in found.values()])
        return found

    async def put(self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None) -> int:
        data = self._shared.codec.encode(token_set, kind="token_set", key=str(key))
        version = self._shared.rng.getrandbits(62)
        refresh = None if token_set.refresh_token is None else token_set.refresh_token.reveal()
        measured: list[float] = []
        behind: list[bool] = []

        def effect() -> int:
            shared = self._shared
            behind.append(self.writes.check(key, expected_version, token_set, version))
            shared.write(key, version, data, measured[0])
            shared.world.put_landed(key, token_set)
            shared.world.idp.stored(refresh)
            shared.announce(key, version)
            return version

        return await self._call(
            effect,
            at_send=self._measure(token_set, measured),
            confirm=self.writes.confirm(key, expected_version, token_set, version, behind),
        )

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        def effect() -> bool:
            shared = self._shared
            current = shared.records.get(key)
            if current is None:
                shared.due.pop(key, None)  # as Redis's DEL and ZREM: an orphaned due time goes
                return False
            if expected_version is not None and current[0] != expected_version:
                raise StoreConflictError("simulated version conflict")
            del shared.records[key]
            shared.stamps.pop(key, None)
            shared.used.pop(key, None)
            shared.due.pop(key, None)
            shared.announce(key, None)
            return True

        return await self._call(effect)

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        found = await self._call(lambda: list(self._shared.records), fails_after=False)
        for key in found:
            if provider is None or key.provider == provider:
                yield key

    # -- the lease -------------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:
        self._owners += 1
        owner = f"p{self._process.number}.{self._process.incarnation}.{self._owners}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl

        def acquire() -> bool:
            shared = self._shared
            held = shared.leases.get(key)
            if held is not None and held.expires_at > shared.now() and held.owner != owner:
                return False
            shared.leases[key] = _Lease(owner, shared.now() + ttl)
            return True

        try:
            while True:
                asked = loop.time()
                if await self._call(acquire):
                    break
                if loop.time() >= deadline:
                    raise LeaseBusyError("simulated lease busy")
                await asyncio.sleep(self._shared.rng.uniform(0.02, 0.06))
        except BaseException:
            await self._release(key, owner)
            raise
        try:
            yield HeldLease(
                asked + ttl,
                lambda _asked, extra: self.extend(key, owner, extra),
                clock=loop.time,
            )
        finally:
            await self._release(key, owner)

    async def _release(self, key: TokenKey, owner: str) -> None:
        def release() -> None:
            held = self._shared.leases.get(key)
            if held is not None and held.owner == owner:
                del self._shared.leases[key]

        with contextlib.suppress(StoreError):  # it runs out by itself
            await asyncio.shield(self._call(release))

    async def extend(self, key: TokenKey, owner: str, ttl: float) -> bool:
        def effect() -> bool:
            shared = self._shared
            held = shared.leases.get(key)
            if held is None or held.owner != owner:
                return False  # released, or taken by someone since: it may have been used
            held.expires_at = max(held.expires_at, shared.now() + ttl)
            return True

        return await self._call(effect)

    # -- change feed -----------------------------------------------------------------------------

    async def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        queue: asyncio.Queue[tuple[TokenKey, int | None]] = asyncio.Queue()
        self._shared.feeds.append((self._process, queue))
        while True:
            change = await queue.get()
            await asyncio.sleep(self._shared.rng.uniform(0.001, 0.05))
            yield change

    async def aclose(self) -> None:
        self._shared.feeds = [(p, q) for p, q in self._shared.feeds if p is not self._process]


class DutyStoreClient(StoreClient):
    """A connection to a store that also keeps the refresh duty (``stores.RefreshDuty``): due
    times written with each set, claims pushing them to a deadline, best-effort like the rest.

    ``claim_clock``: the clock claims are made on (``None``: the store's own; a broken build
    sets the claimant's)."""

    claim_clock: Callable[[], float] | None = None

    async def put(  # type: ignore[override]
        self,
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        data = self._shared.codec.encode(token_set, kind="token_set", key=str(key))
        version = self._shared.rng.getrandbits(62)
        refresh = None if token_set.refresh_token is None else token_set.refresh_token.reveal()
        measured: list[float] = []
        behind: list[bool] = []

        def effect() -> int:
            shared = self._shared
            behind.append(self.writes.check(key, expected_version, token_set, version))
            age, sent = measured
            shared.write(key, version, data, *_aged_in_transit(shared, age, sent))
            if due_at is None:
                shared.due.pop(key, None)
                shared.world.traffic.due_cleared(key)
            else:
                shared.due[key] = _on_store_clock(shared, due_at, sent)
            shared.due_written_at[key] = shared.now()
            shared.world.put_landed(key, token_set)
            shared.world.idp.stored(refresh)
            shared.announce(key, version)
            return version

        return await self._call(
            effect,
            at_send=self._measure(token_set, measured),
            confirm=self.writes.confirm(key, expected_version, token_set, version, behind),
        )

    async def claim_due(
        self, *, limit: int, claim_for: float, owner: str, clients: Collection[TokenKey]
    ) -> Claimed:
        """As the real stores claim: only what ``clients`` can renew (their providers' user
        sets and their own client sets), due on the store's clock (the true wall clock, not
        the claimant's skewed one); a due time whose set is gone is dropped and counted."""
        scope = check_scope(clients) or {}

        def effect() -> Claimed:
            shared = self._shared
            now = shared.wall() if self.claim_clock is None else self.claim_clock()
            due = sorted(
                (at, str(key), key)
                for key, at in shared.due.items()
                if at <= now and in_scope(key, scope)
            )
            taken = Claimed()
            for _, _, key in due:
                if len(taken) >= limit:
                    break
                if key not in shared.records:  # orphaned: nothing to renew
                    del shared.due[key]
                    taken.dropped += 1
                    continue
                shared.world.claimed(self._process, key, owner, claim_for)
                shared.due[key] = now + claim_for
                shared.claims.append((key, owner, now + claim_for))
                taken.append(key)
            return taken

        return await self._call(effect)

    async def reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        clock = self._process.clock
        sent: list[float] = []

        def effect() -> None:
            shared = self._shared
            record = shared.records.get(key)
            if record is None or expected_version not in (None, record[0]):
                return
            shared.due_written_at[key] = shared.now()
            if due_at is None:
                shared.due.pop(key, None)
                shared.world.traffic.due_cleared(key)
            else:
                shared.due[key] = _on_store_clock(shared, due_at, sent[0])

        await self._call(effect, at_send=lambda: sent.append(clock.wall()))

    async def next_due(self, *, clients: Collection[TokenKey] | None = None) -> float | None:
        scope = check_scope(clients)
        return await self._call(
            lambda: min(
                (
                    at
                    for key, at in self._shared.due.items()
                    if scope is None or in_scope(key, scope)
                ),
                default=None,
            ),
            fails_after=False,
        )

    async def due_count(self, *, now: float) -> int:
        return await self._call(
            lambda: sum(1 for at in self._shared.due.values() if at <= now), fails_after=False
        )


def _aged_in_transit(shared: SharedStore, age: float, sent: float) -> tuple[float, float]:
    """As the real stores' put: the distance from a writer's clock within 1 s of the store's
    is the call's transit, which the set may have aged by before the write ran (or the
    writer's clock runs behind): the age with it, and it."""
    off = shared.world.wall() - sent
    transit = off if 0 < off <= DUE_TOLERANCE else 0.0
    return age + transit, transit


def _on_store_clock(shared: SharedStore, due_at: float, sent: float) -> float:
    """As RedisStore's put and reschedule: a due time from a writer whose wall clock read
    ``sent`` as the call left, more than 1 s off the store's clock then, moves by the
    distance."""
    off = shared.world.wall() - sent
    return due_at + off if abs(off) > DUE_TOLERANCE else due_at
