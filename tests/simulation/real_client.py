"""One simulated process's connection to a real store: the world's faults around each call,
and every call that took effect recorded for the history checks (:mod:`.linearizability`).

As around the simulated store (:class:`tests.simulation.store.StoreClient`): a call travels,
fails before any effect (a fault or an outage) or takes effect in the real store at once, may
lose its answer after the effect, and travels back; a call already sent takes effect even if
its sender crashes meanwhile. An operation is recorded from the moment it was sent until its
answer arrived (or would have: a lost answer does not hide what the store did).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aiofinaccess.core.errors import StoreConflictError, StoreError
from aiofinaccess.core.tokens import TokenKey, TokenSet
from aiofinaccess.stores import Claimed, HeldLease, Versioned
from tests.simulation.linearizability import Hold, Op, Outcome

if TYPE_CHECKING:
    from tests.simulation.real_stores import RealSharedStore
    from tests.simulation.world import Process

_T = TypeVar("_T")
#: What a call's effect gave: its result, or the store's error.
Recorder = Callable[[Any, float, float], None]


class RealStoreClient:
    """The TokenStore protocol on a real store, behind the world's faults."""

    def __init__(self, shared: RealSharedStore, process: Process) -> None:
        self._shared = shared
        self._process = process
        self._store: Any = shared.open(process)
        self._name = f"pid {process.pid}"
        self._holds = 0

    async def _call(
        self,
        effect: Callable[[], Awaitable[_T]],
        *,
        fails_after: bool = True,
        record: Recorder | None = None,
    ) -> _T:
        process, shared = self._process, self._shared
        process.check_alive()
        shared.calls += 1
        rng = shared.rng
        invoked = shared.now()
        answer: asyncio.Future[_T] = asyncio.get_running_loop().create_future()

        async def travel() -> None:
            await asyncio.sleep(rng.uniform(0.0005, 0.02))
            took_effect, done = False, None
            if shared.in_outage() or rng.random() < shared.fault_rate:
                outcome: Any = StoreError("simulated store failure before any effect")
            else:
                try:
                    outcome = done = await effect()
                except StoreError as exc:
                    outcome = done = exc
                took_effect = True
                if fails_after and rng.random() < shared.fault_rate / 2:
                    outcome = StoreError("simulated store failure after the effect")
            try:
                await asyncio.sleep(rng.uniform(0.0005, 0.02))
            finally:  # recorded even if the world ends first: the effect happened
                if took_effect and record is not None:
                    record(done, invoked, shared.now())
            if not answer.done() and process.alive:
                if isinstance(outcome, BaseException):
                    answer.set_exception(outcome)
                else:
                    answer.set_result(outcome)

        # On the wire, the call belongs to no process: a crash of its sender does not stop it.
        shared.world.message(travel(), answer)
        return await answer

    def _op(self, kind: Any, key: TokenKey, **fields: Any) -> Recorder:
        """A recorder of one operation on ``key``'s register."""

        def record(done: Any, invoked: float, completed: float) -> None:
            outcome: Outcome = "ok"
            version = fields.get("version")
            if isinstance(done, StoreConflictError):
                outcome = "conflict"
            elif isinstance(done, StoreError):
                return  # the store failed: no answer, nothing known to record
            elif kind == "get":
                version = None if done is None else done.version
            elif kind == "put":
                version = done
            elif kind == "delete" and not done:
                outcome = "absent"
            self._shared.history.ops.append(
                Op(
                    kind,
                    str(key),
                    invoked,
                    completed,
                    outcome,
                    expected=fields.get("expected"),
                    version=version,
                    process=self._name,
                )
            )

        return record

    # -- token sets ------------------------------------------------------------------------------

    async def get(self, key: TokenKey) -> Versioned | None:
        return await self._call(
            lambda: self._store.get(key), fails_after=False, record=self._op("get", key)
        )

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        wanted = list(keys)

        def record(done: Any, invoked: float, completed: float) -> None:
            if isinstance(done, dict):
                for key in wanted:
                    self._op("get", key)(done.get(key), invoked, completed)

        return await self._call(
            lambda: self._store.get_many(wanted), fails_after=False, record=record
        )

    async def _put(
        self, key: TokenKey, token_set: TokenSet, expected: int | None, **due: Any
    ) -> int:
        refresh = None if token_set.refresh_token is None else token_set.refresh_token.reveal()

        async def effect() -> int:
            version: int = await self._store.put(key, token_set, expected_version=expected, **due)
            self._shared.world.idp.stored(refresh)
            return version

        return await self._call(effect, record=self._op("put", key, expected=expected))

    async def put(self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None) -> int:
        return await self._put(key, token_set, expected_version)

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        return await self._call(
            lambda: self._store.delete(key, expected_version=expected_version),
            record=self._op("delete", key, expected=expected_version),
        )

    async def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        async def effect() -> list[TokenKey]:
            # Sorted: fakeredis's sets iterate in hash order, which differs between runs.
            return sorted([key async for key in self._store.keys(provider)], key=str)

        for key in await self._call(effect, fails_after=False):
            yield key

    # -- the lease -------------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:
        process, shared = self._process, self._shared
        process.check_alive()
        shared.calls += 1
        rng = shared.rng
        self._holds += 1
        owner = f"{self._name}.{self._holds}"
        await asyncio.sleep(rng.uniform(0.0005, 0.02))
        if shared.in_outage() or rng.random() < shared.fault_rate:
            await asyncio.sleep(rng.uniform(0.0005, 0.02))
            raise StoreError("simulated store failure before any effect")
        taking = self._store.lease(key, ttl=ttl)
        real: HeldLease = await taking.__aenter__()  # polls on virtual time
        if rng.random() < shared.fault_rate / 2:  # the answer is lost: the store lets go
            await taking.__aexit__(None, None, None)
            raise StoreError("simulated store failure after the effect")
        await asyncio.sleep(rng.uniform(0.0005, 0.02))
        acquired = shared.now()
        extend_at = real._extend_at

        async def extend(asked: float, more: float) -> bool:
            return await self._call(lambda: extend_at(asked, more))

        # On the clock the store's lease counts on: the machine's for SQLite, the process's
        # own monotonic clock for Redis (RedisStore's ``clock``).
        clock = real._clock
        held = HeldLease(real._until, extend, clock=clock)
        try:
            yield held
        finally:
            # The holder counted on it until now, or until its own deadline if that came first.
            until = min(shared.now(), held._until - clock() + shared.now())
            shared.history.holds.append(Hold(str(key), owner, acquired, until))
            await taking.__aexit__(*sys.exc_info())

    async def aclose(self) -> None:
        with contextlib.suppress(StoreError):
            await self._store.aclose()
        if self._shared.impl == "redis":
            await self._store._client.aclose()


class RealDutyStoreClient(RealStoreClient):
    """A connection to a real store that also keeps the refresh duty."""

    async def put(  # type: ignore[override]
        self,
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        return await self._put(key, token_set, expected_version, due_at=due_at)

    async def claim_due(
        self, *, limit: int, claim_for: float, owner: str, clients: Collection[TokenKey]
    ) -> Claimed:
        result: Claimed = await self._call(
            lambda: self._store.claim_due(
                limit=limit, claim_for=claim_for, owner=owner, clients=clients
            )
        )
        return result

    async def reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        await self._call(
            lambda: self._store.reschedule(key, due_at, expected_version=expected_version)
        )

    async def next_due(self, *, clients: Collection[TokenKey] | None = None) -> float | None:
        result: float | None = await self._call(
            lambda: self._store.next_due(clients=clients), fails_after=False
        )
        return result

    async def due_count(self, *, now: float) -> int:
        result: int = await self._call(lambda: self._store.due_count(now=now), fails_after=False)
        return result


class _Feed:
    """RedisStore's own change feed (pub/sub on the fake server), relayed as it is."""

    _store: Any

    def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        feed: AsyncIterator[tuple[TokenKey, int | None]] = self._store.changes()
        return feed


class RealFeedStoreClient(_Feed, RealStoreClient):
    """A connection to Redis: the store and its change feed."""


class RealFeedDutyStoreClient(_Feed, RealDutyStoreClient):
    """A connection to Redis: the store, its change feed and the refresh duty."""
