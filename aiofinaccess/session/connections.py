"""The connection registry shared by the fleet: records in the store, notices once per fleet.

Theory of operation. What a process learns of a connection (:meth:`ConnectionRegistry.observe`)
or what time alone changes (:meth:`~ConnectionRegistry.sweep`) goes through the pure
:func:`~aiofinaccess.core.connections.decide`; this module only carries the decision out,
in this order, for each notice it names:

1. **claim** the notice in the store by its id (insert if absent, with the notice itself as an
   outbox record due again ``claim_for`` seconds later): of every process that ever decides
   it, exactly one gets the claim;
2. **write** the record by compare-and-set (a writer that lost re-reads and decides again: the
   same transition names the same ids, whose claims now fail);
3. **deliver** to the app's callbacks, then **finish** the outbox record.

A process that dies after (1) leaves the notice in the outbox: whoever runs
:meth:`~ConnectionRegistry.redeliver` after the claim runs out delivers it, after the record
takes it in (:func:`~aiofinaccess.core.connections.absorb`; a writer that lost in (2) does the
same before deciding again). A claimed notice is always delivered, so the record must say what
the app was told: else a connection read working again would never close the reconnect the
app got, and the next break's notice would be refused as already claimed.
A process that dies after delivering and before finishing makes the notice delivered twice.
The promise: **each notice is claimed exactly once per fleet and delivered at least once**,
every delivery carrying the notice's ``event_id``. A callback that raises leaves the notice
unfinished, so it comes again. Delivered notices are pruned after ``retention``.

The registry also keeps PSD2's unattended-update budget per connection
(:meth:`~ConnectionRegistry.take_unattended_update`), in the same store.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import attrs

from ..core.clock import Clock
from ..core.connections import (
    DEFAULT_LEADS,
    ConnectionRecord,
    ConnectionState,
    Notice,
    Observation,
    absorb,
    decide,
    ordered_leads,
    record_name,
    record_now,
    record_state,
)
from ..core.errors import (
    ConfigurationError,
    StoreConflictError,
    StoreError,
    UpdateBudgetExhausted,
    ValidationError,
)
from ..core.settings import UpdateBudget
from ..stores.protocol import ConnectionRecords, UpdateBudgets
from .connection_events import ConnectionEvent, ConnectionInfo, event_of

__all__ = ["ConnectionRegistry", "EventCallback"]

logger = logging.getLogger("aiofinaccess")

#: Told of each connection event: a plain or an async function of the event.
EventCallback = Callable[[ConnectionEvent], object]

_ATTEMPTS: Final = 16  # compare-and-set rounds before giving up (each loser saw a new record)


def _no_fault(point: str) -> None:
    """Where tests inject a crash (``claimed``, ``written``, ``delivered``)."""


class ConnectionRegistry:
    """The fleet's connections: observe, sweep, redeliver, list.

    Lives as long as its manager (``manager.connections``); any number of processes sharing
    the store run one each.

    Args:
        store: A store keeping :class:`~aiofinaccess.stores.protocol.ConnectionRecords`.
        clock: Where ``now`` comes from (wall-clock seconds).
        leads: When to announce an end (14, 7 and 1 days by default).
        claim_for: Seconds a claimed notice waits for its claimant before anyone redelivers it.
        budget: Unattended updates per connection (PSD2: four per 24 hours).
        retention: How long delivered notices are kept (their ids refuse a second claim).

    Raises:
        ConfigurationError: ``store`` keeps no connection records, or ``claim_for`` or
            ``retention`` is not positive.
    """

    def __init__(
        self,
        store: object,
        clock: Clock,
        *,
        leads: Iterable[dt.timedelta] = DEFAULT_LEADS,
        claim_for: float = 60.0,
        budget: UpdateBudget | None = None,
        retention: dt.timedelta = dt.timedelta(days=30),
        _fault: Callable[[str], None] = _no_fault,
    ) -> None:
        if not isinstance(store, ConnectionRecords):
            raise ConfigurationError(
                f"{type(store).__name__} keeps no connection records: use a shipped store"
            )
        if not claim_for > 0:
            raise ConfigurationError("claim_for must be a positive number of seconds")
        if not 0 < retention.total_seconds() < math.inf:
            raise ConfigurationError("retention must be a positive duration")
        self._store = store
        self._clock = clock
        self._leads = ordered_leads(leads)
        self._claim_for = float(claim_for)
        self._budget = budget or UpdateBudget()
        self._retention = retention.total_seconds()
        self._callbacks: list[EventCallback] = []
        self._fault = _fault

    def __repr__(self) -> str:
        return f"ConnectionRegistry(callbacks={len(self._callbacks)})"

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Deliver every connection event this process claims or redelivers to ``callback``
        (plain or async, awaited in turn); returns an unsubscribe function. A callback that
        raises leaves the event to be delivered again."""
        if not callable(callback):
            raise ConfigurationError("subscribe() needs a function of one event")
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def observe(
        self,
        provider: str,
        subject: str,
        connection: str,
        observation: Observation | Callable[[], Awaitable[Observation]],
    ) -> ConnectionInfo:
        """Record what was learnt of a connection; claim and deliver the notices it makes due.

        ``observation`` may be a reading to take (reading the provider's API): it is then taken
        after the record is read and again whenever another process wrote the record first, so
        of two processes reading one connection at once, the older reading is not written last.

        Raises:
            StoreError: The store failed (claimed notices stay in the outbox).
        """
        return await self._apply(record_name(provider, subject, connection), observation)

    async def sweep(self) -> int:
        """Decide again every connection whose deadline passed (a lead reached, an end);
        returns how many changed. Run it from every process: the claims keep notices once."""
        now = self._clock.wall()
        changed = 0
        async for name, data in self._store.list_connections():
            record = _read(data)
            if record is not None and decide(record, None, now, self._leads)[0] != record:
                await self._apply(name, None)
                changed += 1
        return changed

    async def redeliver(self, *, limit: int = 100) -> int:
        """Deliver notices whose claimant did not finish in time (it died, or a callback
        raised); returns how many were delivered."""
        delivered = 0
        for notice_id, data in await self._store.overdue_notices(
            limit=limit, claim_for=self._claim_for
        ):
            try:
                notice = Notice.decode(data)
            except ValidationError:
                logger.warning("dropping an unreadable connection notice")
                await self._store.finish_notice(notice_id)
                continue
            # Its claimant may have died before writing the record: the record takes it in,
            # and what that implies (a repair) is decided after it is delivered, in order.
            name = record_name(notice.provider, notice.subject, notice.connection)
            await self._apply(name, None, (notice,), decided=False)
            delivered += await self._deliver(notice)
        return delivered

    async def prune(self) -> int:
        """Forget notices delivered longer ago than the retention; returns how many."""
        return await self._store.prune_notices(older_than=self._retention)

    async def revoke(self, provider: str, subject: str) -> int:
        """Turn every connection the fleet knows of ``subject`` at ``provider`` ``REVOKED``
        (the user's tokens were revoked, or the user deleted); returns how many. A scan of
        every record: the store keeps no index by user.

        Raises:
            StoreError: The store failed (the connections read so far are revoked).
        """
        found = [
            (name, record.expires_at)
            async for name, data in self._store.list_connections()
            if (record := _read(data)) is not None
            and (record.provider, record.subject) == (provider, subject)
        ]
        for name, end in found:
            revoked = Observation(expires_at=end, blocked=ConnectionState.REVOKED, detail="revoked")
            await self._apply(name, revoked)
        return len(found)

    async def take_unattended_update(self, provider: str, subject: str, connection: str) -> None:
        """Take one of the connection's unattended updates for the fleet, before sending one.

        Call it only for an update made without the user present; the slot is never given
        back, whatever becomes of the update.

        Raises:
            UpdateBudgetExhausted: None left in the window; ``next_allowed_at`` says when.
            ConfigurationError: The store keeps no update budgets.
            StoreError: The store failed (a slot may have been taken all the same).
        """
        if not isinstance(self._store, UpdateBudgets):
            raise ConfigurationError(
                f"{type(self._store).__name__} keeps no update budgets: use a shipped store"
            )
        wait = await self._store.take_update(
            record_name(provider, subject, connection),
            limit=self._budget.limit,
            window=self._budget.window,
        )
        if wait is not None:
            at = dt.datetime.fromtimestamp(wait, dt.UTC)
            raise UpdateBudgetExhausted(provider, subject, connection, at)

    async def watch(self, *, every: float = 60.0) -> None:
        """Sweep, redeliver and prune every ``every`` seconds (on the registry's clock) until
        cancelled; a store failure is logged and tried again at the next round. Run it in one
        task per process (``aiofinaccess worker`` does)."""
        while True:
            try:
                await self.sweep()
                await self.redeliver()
                await self.prune()
            except StoreError as exc:
                logger.warning("connection registry round failed: %s", exc)
            await self._clock.sleep(every)

    async def get(self, provider: str, subject: str, connection: str = "") -> ConnectionInfo | None:
        """The connection as the fleet knows it, or ``None``."""
        found = await self._store.get_connection(record_name(provider, subject, connection))
        record = None if found is None else _read(found[0])
        return None if record is None else self._info(record)

    async def list(
        self, *, needs_action: bool = False, provider: str | None = None
    ) -> list[ConnectionInfo]:
        """Every connection the fleet knows (only those needing the user, or of one provider,
        when asked), sorted by provider, subject and connection."""
        rows = []
        async for _name, data in self._store.list_connections():
            record = _read(data)
            if record is None or (provider is not None and record.provider != provider):
                continue
            info = self._info(record)
            if info.needs_action or not needs_action:
                rows.append(info)
        return sorted(rows, key=lambda row: (row.provider, row.subject, row.connection))

    def _info(self, record: ConnectionRecord) -> ConnectionInfo:
        now = record_now(record, self._clock.wall())
        state, _, deadline = record_state(record, now, self._leads)
        return ConnectionInfo.of(record, state, deadline)

    async def _apply(
        self,
        name: str,
        observation: Observation | Callable[[], Awaitable[Observation]] | None,
        taken: tuple[Notice, ...] = (),  # claimed for this record, maybe unwritten: taken in
        *,
        decided: bool = True,  # False: only take them in (what they imply waits its turn)
    ) -> ConnectionInfo:
        provider, subject, connection = _parts(name)
        for _ in range(_ATTEMPTS):
            found = await self._store.get_connection(name)
            version = None if found is None else found[1]
            stored = None if found is None else _read(found[0])
            stored = stored or ConnectionRecord(provider, subject, connection)
            record = stored
            for notice in taken:
                record = absorb(record, notice)
            # Read after the record: a write that lands since then fails the compare-and-set
            # below, so what is written is never older than what another process wrote.
            learnt = await observation() if callable(observation) else observation
            now = record_now(record, self._clock.wall())
            new, notices = decide(record, learnt, now, self._leads) if decided else (record, [])
            if new == stored and found is not None:
                return self._info(stored)
            claimed = [
                notice
                for notice in notices
                if await self._store.claim_notice(
                    notice.id, notice.encode(), claim_for=self._claim_for
                )
            ]
            self._fault("claimed")
            try:
                await self._store.put_connection(
                    name, attrs.evolve(new, updated_at=now).encode(), expected_version=version
                )
            except StoreConflictError:
                for notice in claimed:  # decided and ours: deliver them, then decide again
                    await self._deliver(notice)
                taken += tuple(claimed)
                continue
            self._fault("written")
            for notice in claimed:
                await self._deliver(notice)
            return self._info(new)
        raise StoreConflictError("connection record kept changing: gave up")

    async def _deliver(self, notice: Notice) -> int:
        event = event_of(notice)
        for callback in list(self._callbacks):
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                logger.warning(
                    "connection event callback failed (%s): it will be delivered again",
                    type(exc).__name__,
                )
                return 0
        self._fault("delivered")
        await self._store.finish_notice(notice.id)
        return 1


def _parts(name: str) -> tuple[str, str, str]:
    provider, subject, connection = (
        part.replace("%2F", "/").replace("%25", "%") for part in name.split("/")
    )
    return provider, subject, connection


def _read(data: bytes) -> ConnectionRecord | None:
    try:
        return ConnectionRecord.decode(data)
    except ValidationError:
        logger.warning("skipping an unreadable connection record")
        return None
