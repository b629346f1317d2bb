"""The durability option on the simulated store (``features.replication``): a replicated store
whose token set writes count as stored only once the replica has them, as RedisStore's
``WAIT`` (or ``WAITAOF``) after each put, with the SDK's own :class:`~aiofinaccess.stores.
Replication` reading the store's reply.

The replica keeps up within milliseconds, except in a rollback (chaos.py): from the snapshot on
it holds nothing newer, and the failover that follows makes it the store. A put meanwhile
lands on the primary, waits the option's timeout for the replica and fails (``StoreError``:
written, not counted as stored), as does one whose wait a failover cuts short; the writer's
retry of the same set at the same version also goes through over that write, as RedisStore's.

* **I17** where the option is on, a failover loses no acknowledged write: the store never
  gives back a refresh token whose successor's write it acknowledged, nor loses a login it
  acknowledged (checked at every failover). Writes it did not acknowledge are lost as in any
  rollback, with the rollback's excuse (world.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiofinaccess.core.errors import StoreConflictError, StoreError
from aiofinaccess.core.tokens import TokenKey, TokenSet
from aiofinaccess.stores import Replication

if TYPE_CHECKING:
    from tests.simulation.store import SharedStore


class Replica:
    """The replica of a replicated store: how far behind it is, and what it acknowledged."""

    def __init__(self, shared: SharedStore) -> None:
        self._shared = shared
        self.behind = False  # from a rollback's snapshot to its failover
        self.failovers = 0
        self.unconfirmed = 0  # writes the replica did not confirm (counted as not stored)
        #: The refresh token (or ``None``) of each key's last write acknowledged since the
        #: last snapshot.
        self.acknowledged: dict[TokenKey, str | None] = {}

    def snapshot(self) -> None:
        """The replica stops here (its lag grows until the failover)."""
        self.behind = True
        self.acknowledged.clear()

    def failover(self) -> None:
        """The replica took over: check I17 against what the store acknowledged."""
        from tests.simulation.invariants import stored_session  # noqa: PLC0415  (a cycle)

        self.behind = False
        self.failovers += 1
        world = self._shared.world
        for key, refresh in sorted(self.acknowledged.items(), key=lambda item: str(item[0])):
            if key not in self._shared.records:
                world.violation(f"I17: a failover lost the acknowledged write of {key}")
                continue
            session = None if refresh is None else world.idp.by_refresh.get(refresh)
            if refresh is None or session is None or not session.rotating:
                continue
            _, back = stored_session(world, key)
            if (
                back is not None
                and back in session.chain
                and session.chain.index(back) < session.chain.index(refresh)
            ):
                world.violation(
                    f"I17: a failover gave back {back} of {session.label}, whose successor's "
                    f"write the store had acknowledged"
                )
        self.acknowledged.clear()

    async def wait(
        self, replication: Replication, key: TokenKey, token_set: TokenSet, behind: bool
    ) -> None:
        """``WAIT`` after a put that took effect (``behind``: while the replica was); raises
        ``StoreError`` unless ``replication`` counts the reply as enough copies."""
        failovers = self.failovers
        delay = replication.timeout if behind else self._shared.rng.uniform(0.0005, 0.005)
        await asyncio.sleep(delay)
        if self.failovers != failovers:
            raise StoreError("simulated failover: the connection to the primary dropped")
        copies = 0 if behind else replication.replicas
        reply: int | tuple[int, int] = (1, copies) if replication.fsync else copies
        if not replication.confirmed(reply):
            self.unconfirmed += 1
            raise StoreError("simulated replica lag: written, not counted as stored")
        refresh = token_set.refresh_token
        self.acknowledged[key] = None if refresh is None else refresh.reveal()


class Writes:
    """One connection's puts under the durability option: the option (a broken build may
    replace it) and the writes the replica has not confirmed yet."""

    def __init__(self, shared: SharedStore) -> None:
        self._shared = shared
        self.replication: Replication | None = shared.replication
        #: key -> (expected version, set, version written)
        self._unconfirmed: dict[TokenKey, tuple[int | None, TokenSet, int]] = {}

    def check(self, key: TokenKey, expected: int | None, token_set: TokenSet, version: int) -> bool:
        """A put's compare-and-set, as it takes effect: the stored version must be
        ``expected``, or the version this connection's own unconfirmed write of the same set
        at ``expected`` left (as RedisStore's). Returns whether the replica is behind."""
        current = self._shared.records.get(key)
        stored = None if current is None else current[0]
        if stored != expected and self._unconfirmed.get(key) != (expected, token_set, stored):
            raise StoreConflictError("simulated version conflict")
        if self.replication is not None:
            self._unconfirmed[key] = (expected, token_set, version)
        return self._shared.replica.behind

    def confirm(
        self,
        key: TokenKey,
        expected: int | None,
        token_set: TokenSet,
        version: int,
        behind: list[bool],
    ) -> Callable[[], Awaitable[None]] | None:
        """With the option: the put's wait for its replica (``behind``: whether the replica
        was, as the write took effect)."""
        replication, replica = self.replication, self._shared.replica
        if replication is None:
            return None

        async def confirm() -> None:
            await replica.wait(replication, key, token_set, behind[0])
            if self._unconfirmed.get(key) == (expected, token_set, version):
                del self._unconfirmed[key]

        return confirm
