"""Paygate's webhook events judged in the token store, for receivers in several processes or
one that restarts (the in-memory :class:`~aiofinaccess.api.everifin.paygate_events.EventLog`
knows only what its own process applied since it started).

One record per payment (order, refund) among the store's payment records (scope
``paygate-events:{name}``, reference: the event's subject) holds the newest applied event's
time, the ids applied, and which event is being applied until when. Every change is a
compare-and-set on the record's version, so of two receivers only one applies an event, and
only one event of a payment is applied at a time (the other is answered "busy", and Everifin
retries it). A receiver that dies while applying leaves its claim to lapse after ``claim_for``.

"Older" compares Everifin's event times with each other, never with a receiver's clock; the
claims use the receivers' wall clocks, so clocks apart by more than ``claim_for`` could let
two apply events of one payment at once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Final

import attrs
import cattrs

from ...core.clock import SYSTEM_CLOCK, Clock
from ...core.errors import ConfigurationError, StoreError
from ...core.payment_records import PaymentRecords
from .paygate_events import PaygateEvent, Verdict

__all__ = ["StoredEventLog", "judge"]

#: Event ids remembered per payment (a payment sees a handful of events).
KEEP_IDS: Final = 256


@attrs.frozen(slots=True)
class Subject:
    """What the store keeps of one payment's events."""

    newest: str | None = None  # ISO 8601 time of the newest applied event
    seen: tuple[str, ...] = ()
    applying: str | None = None
    until: float = 0.0  # wall-clock end of the claim on ``applying``

    def to_bytes(self) -> bytes:
        return json.dumps(_converter.unstructure(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Subject:
        """Raises: StoreError: Not a record this SDK wrote."""
        try:
            return _converter.structure(json.loads(data), cls)
        except (ValueError, TypeError, KeyError, cattrs.BaseValidationError):
            raise StoreError("a Paygate event record is unreadable") from None


_converter = cattrs.Converter()


def judge(subject: Subject, event: PaygateEvent, now: float) -> Verdict:
    """Whether to apply ``event`` to a payment whose record is ``subject``, at ``now``."""
    if event.event_id in subject.seen:
        return Verdict.DUPLICATE
    if subject.applying is not None and subject.until > now:
        return Verdict.DUPLICATE if subject.applying == event.event_id else Verdict.BUSY
    if subject.newest is not None and event.event_timestamp < dt.datetime.fromisoformat(
        subject.newest
    ):
        return Verdict.STALE
    return Verdict.APPLY


def _done(subject: Subject, event: PaygateEvent) -> Subject:
    newest = event.event_timestamp
    if subject.newest is not None:
        newest = max(newest, dt.datetime.fromisoformat(subject.newest))
    mine = subject.applying == event.event_id
    return attrs.evolve(
        subject,
        newest=newest.isoformat(),
        seen=(*subject.seen, event.event_id)[-KEEP_IDS:],
        applying=None if mine else subject.applying,
        until=0.0 if mine else subject.until,
    )


def _released(subject: Subject, event: PaygateEvent) -> Subject:
    if subject.applying != event.event_id:
        return subject
    return attrs.evolve(subject, applying=None, until=0.0)


class StoredEventLog:
    """Which Paygate events were applied, kept in a store with payment records (see the
    module's docstring); pass it as ``log`` to
    :class:`~aiofinaccess.integrations.paygate_webhooks.PaygateWebhooks`.

    Args:
        records: The store (``SQLiteStore``, ``PostgresStore``, ``RedisStore``; every
            receiving process on the same one).
        name: The receiver's name: its records' scope is ``paygate-events:{name}``.
        claim_for: Seconds a receiver may take to apply an event before another may.
        clock: Wall-clock readings (the system's by default).

    Raises:
        ConfigurationError: The store keeps no payment records.
    """

    def __init__(
        self,
        records: PaymentRecords,
        name: str = "everifin_paygate",
        *,
        claim_for: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(records, PaymentRecords):
            raise ConfigurationError("the store keeps no payment records (PaymentRecords)")
        self._records = records
        self._scope = f"paygate-events:{name}"
        self.claim_for = claim_for
        self._clock = clock or SYSTEM_CLOCK
        #: Verdicts given, by their value.
        self.counts: dict[str, int] = {verdict.value: 0 for verdict in Verdict}

    async def begin(self, event: PaygateEvent) -> Verdict:
        """Whether to apply ``event``; :data:`Verdict.APPLY` claims it until :meth:`done`,
        :meth:`failed` or ``claim_for`` seconds.

        Raises:
            StoreError: The store failed.
        """
        while True:
            stored = await self._records.get_payment_record(self._scope, event.subject)
            now = self._clock.wall()
            subject = Subject() if stored is None else Subject.from_bytes(stored.data)
            verdict = judge(subject, event, now)
            if verdict is Verdict.APPLY:
                claimed = attrs.evolve(subject, applying=event.event_id, until=now + self.claim_for)
                if not await self._write(
                    event.subject, claimed, None if stored is None else stored.version
                ):
                    continue  # another receiver moved it: judge again
            self.counts[verdict.value] += 1
            return verdict

    async def done(self, event: PaygateEvent) -> None:
        """``event`` was applied.

        Raises:
            StoreError: The store failed (its claim lapses; a redelivery may apply it again).
        """
        await self._update(event, _done)

    async def failed(self, event: PaygateEvent) -> None:
        """Applying ``event`` failed: release it, so its redelivery is applied.

        Raises:
            StoreError: The store failed (its claim lapses).
        """
        await self._update(event, _released)
        self.counts[Verdict.APPLY.value] -= 1

    async def _update(self, event: PaygateEvent, change: Callable[..., Subject]) -> None:
        while True:
            stored = await self._records.get_payment_record(self._scope, event.subject)
            subject = Subject() if stored is None else Subject.from_bytes(stored.data)
            if await self._write(
                event.subject, change(subject, event), None if stored is None else stored.version
            ):
                return

    async def _write(self, subject: str, record: Subject, version: int | None) -> bool:
        if version is None:
            return await self._records.add_payment_record(self._scope, subject, record.to_bytes())
        return await self._records.replace_payment_record(
            self._scope, subject, record.to_bytes(), expected_version=version
        )
