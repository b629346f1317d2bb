"""Exactly once for payments of any provider: the record before the send, one sender per
reference, and reconciliation after an ambiguous failure (the rules: :mod:`.payment_ledger`;
how a provider finds a payment again: its :class:`Reconciler`).

For each reference, :meth:`Ledger.create` either writes the ``PENDING`` record (it alone
sends; of concurrent callers the store's add lets one win) or follows the record another
caller wrote: it waits while that caller's claim lasts, returns its payment or its "not
created", and takes over a record left ``PENDING`` (its sender died between send and record)
or ``UNKNOWN`` by reconciling: never by sending again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import attrs

from ..core.clock import Clock
from ..core.errors import (
    AiofinaccessError,
    ApiError,
    ConfigurationError,
    PaymentNotCreated,
    PaymentOutcomeUnknown,
    StoreError,
    TransportError,
    UnexpectedResponseError,
    UsageError,
)
from ..core.payment_records import PaymentRecords
from .payment_ledger import (
    Ambiguous,
    Found,
    Match,
    PaymentRecord,
    PaymentTimeouts,
    RecordState,
    outcome_of_failure,
    readable,
    settle,
)

if TYPE_CHECKING:
    from ..session.manager import SessionManager

__all__ = ["Ledger", "Reconciler", "Unlisted", "open_ledger", "open_unlisted"]

logger = logging.getLogger("aiofinaccess")

P = TypeVar("P")
Send = Callable[[], Awaitable[P]]


class Reconciler(Protocol[P]):
    """How one provider finds a payment again, and writes it down."""

    async def mark(self, user: str, reference: str) -> int | Found[P]:
        """The high-water mark written into the record before the send (0 if unused), or
        the payment the provider already holds under ``reference`` (its record was lost).

        Raises: TransportError, ApiError, UnexpectedResponseError: nothing is sent then."""
        ...

    async def find(
        self, user: str, reference: str, record: PaymentRecord, others: Mapping[str, PaymentRecord]
    ) -> Match[P]:
        """What the provider's listing shows of ``record``; ``others``: the user's other records."""
        ...

    def document(self, payment: P) -> dict[str, Any]:
        """``payment`` as JSON for the record."""
        ...

    def payment(self, document: dict[str, Any]) -> P:
        """Inverse of :meth:`document`."""
        ...


class Unlisted:
    """The :class:`Reconciler` of requests the provider cannot list by anything the SDK
    chose (forms, standing orders, orders): the answer's JSON document is the record, and an
    outcome the answer did not give stays unknown (never sent again; settled by hand)."""

    async def mark(self, user: str, reference: str) -> int:
        return 0

    async def find(
        self, user: str, reference: str, record: PaymentRecord, others: Mapping[str, Any]
    ) -> Match[dict[str, Any]]:
        return Ambiguous(())

    def document(self, payment: dict[str, Any]) -> dict[str, Any]:
        written: dict[str, Any] = json.loads(json.dumps(payment, default=str))  # Decimal: str
        return written

    def payment(self, document: dict[str, Any]) -> dict[str, Any]:
        return document


class Ledger(Generic[P]):
    """Payment-creating requests of one provider, each sent at most once per reference.

    Args:
        records: Where records live (the manager's store).
        clock: Wall-clock times in records, and waiting.
        provider: The provider's name: records live under ``{provider}:{user}``.
        reconciler: How the provider's payments are found again.
        claim_for: Seconds others wait for a sender before taking its record over; longer
            than a request can take.
        settle_after: Seconds after which a request not found can no longer land.
        poll: Seconds between reads while waiting for another sender.
    """

    def __init__(
        self,
        records: PaymentRecords,
        clock: Clock,
        provider: str,
        reconciler: Reconciler[P],
        *,
        claim_for: float,
        settle_after: float,
        poll: float,
    ) -> None:
        self._records = records
        self._clock = clock
        self._provider = provider
        self._reconciler = reconciler
        self._claim_for = claim_for
        self._settle_after = settle_after
        self._poll = poll
        self.owner = secrets.token_hex(8)
        #: Reconciliations by outcome (``CREATED``, ``NOT_CREATED``, ``UNKNOWN``, ``failed``,
        #: and ``found before sending``: a payment whose record the store had lost).
        self.reconciliations: Counter[str] = Counter()

    def _scope(self, user: str) -> str:
        return f"{self._provider}:{user}"

    async def create(
        self,
        user: str,
        reference: str,
        request: str,
        send: Send[P],
        *,
        shape: dict[str, Any] | None = None,
    ) -> P:
        """The payment this reference made, sending ``send`` only if nobody did before.

        Args:
            request: The request's fingerprint: the reference refuses any other request.
            shape: What the provider's reconciliation compares, kept in the record.
        """
        scope = self._scope(user)
        found = await self._read(scope, reference)
        if found is None:
            try:
                mark = await self._reconciler.mark(user, reference)
            except (TransportError, ApiError, UnexpectedResponseError) as error:
                reason = f"not sent: listing the payments first failed ({type(error).__name__})"
                raise PaymentNotCreated(reference, reason) from error
            now = self._clock.wall()
            record = PaymentRecord(
                RecordState.PENDING,
                request,
                now,
                self.owner,
                now + self._claim_for,
                shape=shape or {},
                mark=0 if isinstance(mark, Found) else mark,
            )
            if isinstance(mark, Found):  # made before; its record was lost with the store
                record = record.with_payment(self._reconciler.document(mark.payment))
                if await self._records.add_payment_record(scope, reference, record.to_bytes()):
                    self.reconciliations["found before sending"] += 1
                    return mark.payment
            elif await self._records.add_payment_record(scope, reference, record.to_bytes()):
                return await self._send(user, reference, record, send)
            found = await self._read(scope, reference)
            if found is None:
                raise StoreError("a payment record vanished after it was added")
        if found[0].request != request:
            raise UsageError(f"reference {reference} was first used for another request")
        return await self._follow(user, reference, *found)

    async def resolve(self, user: str, reference: str) -> P:
        """The payment under ``reference``, settled now if it can be.

        Raises:
            PaymentNotCreated: None was made (or no request was ever written down under it).
            PaymentOutcomeUnknown: Not settled yet; ask again later.
        """
        found = await self._read(self._scope(user), reference)
        if found is None:
            raise PaymentNotCreated(reference, "no request was recorded under it")
        return await self._follow(user, reference, *found)

    async def _read(self, scope: str, reference: str) -> tuple[PaymentRecord, int] | None:
        stored = await self._records.get_payment_record(scope, reference)
        if stored is None:
            return None
        return PaymentRecord.from_bytes(stored.data), stored.version

    async def _write(
        self, user: str, reference: str, record: PaymentRecord, version: int
    ) -> int | None:
        """Replace the record at ``version``; its new version, or None if another moved it."""
        data = record.to_bytes()
        scope = self._scope(user)
        done = await self._records.replace_payment_record(
            scope, reference, data, expected_version=version
        )
        return version + 1 if done else None

    async def _send(self, user: str, reference: str, record: PaymentRecord, send: Send[P]) -> P:
        try:
            payment = await send()
        except asyncio.CancelledError:
            raise  # the record stays PENDING: whoever asks next reconciles
        except Exception as error:
            state, answered = outcome_of_failure(error)
            reason = f"{type(error).__name__}: {error}"
            record = attrs.evolve(record, state=state, answered=answered, reason=reason)
            if state is RecordState.NOT_CREATED:
                await self._keep(user, reference, record, 1)
                raise PaymentNotCreated(reference, reason) from error
            try:
                version = await self._write(user, reference, record, 1)
            except StoreError as failed:
                raise PaymentOutcomeUnknown(reference, "the store failed") from failed
            if version is None:
                return await self._again(user, reference)
            try:
                return await self._reconcile(user, reference, record, version)
            except PaymentOutcomeUnknown as unknown:
                raise unknown from error
        document = self._reconciler.document(payment)
        await self._keep(user, reference, record.with_payment(document), 1)
        return payment

    async def _keep(self, user: str, reference: str, record: PaymentRecord, version: int) -> None:
        """Write a settled outcome; should the store fail, the record stays ``PENDING`` and
        the next to ask reconciles it."""
        try:
            await self._write(user, reference, record, version)
        except StoreError as error:
            logger.warning("payment %s: its outcome was not recorded (%s)", reference, error)

    async def _again(self, user: str, reference: str) -> P:
        found = await self._read(self._scope(user), reference)
        if found is None:
            raise StoreError("a payment record vanished")
        return await self._follow(user, reference, *found)

    async def _follow(self, user: str, reference: str, record: PaymentRecord, version: int) -> P:
        while True:
            if record.state is RecordState.CREATED:
                return self._reconciler.payment(record.payment or {})
            if record.state is RecordState.NOT_CREATED:
                raise PaymentNotCreated(reference, record.reason or "not created")
            wait = record.claimed_until - self._clock.wall()
            if record.state is RecordState.UNKNOWN or wait <= 0:
                return await self._reconcile(user, reference, record, version)
            await self._clock.sleep(min(self._poll, wait))
            found = await self._read(self._scope(user), reference)
            if found is None:
                raise StoreError("a payment record vanished")
            record, version = found

    async def _reconcile(self, user: str, reference: str, record: PaymentRecord, version: int) -> P:
        try:
            stored = await self._records.payment_records(self._scope(user))
            others = readable({name: s.data for name, s in stored.items() if name != reference})
            match = await self._reconciler.find(user, reference, record, others)
        except AiofinaccessError as error:
            self.reconciliations["failed"] += 1
            reason = f"reconciliation failed ({type(error).__name__})"
            raise PaymentOutcomeUnknown(reference, reason) from error
        now = self._clock.wall()
        document = self._reconciler.document
        settled = settle(record, match, now=now, settle_after=self._settle_after, document=document)
        settled = attrs.evolve(settled, owner=self.owner)
        self.reconciliations[settled.state.value] += 1
        try:
            written = await self._write(user, reference, settled, version)
        except StoreError as error:
            raise PaymentOutcomeUnknown(reference, "the store failed") from error
        if written is None:
            return await self._again(user, reference)
        if settled.state is RecordState.CREATED:
            return self._reconciler.payment(settled.payment or {})
        if settled.state is RecordState.NOT_CREATED:
            raise PaymentNotCreated(reference, settled.reason or "not found")
        candidates = match.candidates if isinstance(match, Ambiguous) else ()
        raise PaymentOutcomeUnknown(reference, settled.reason or "unknown", candidates)


def open_ledger(
    manager: SessionManager,
    provider: str,
    reconciler: Reconciler[P],
    timeouts: PaymentTimeouts,
    *,
    records: PaymentRecords | None,
    clock: Clock | None,
) -> Ledger[P]:
    """A :class:`Ledger` in ``records`` (the manager's store by default), on the manager's
    clock by default.

    Raises:
        ConfigurationError: The store keeps no payment records.
    """
    records = records if records is not None else manager.store  # type: ignore[assignment]
    if not isinstance(records, PaymentRecords):
        raise ConfigurationError("the store keeps no payment records (PaymentRecords)")
    return Ledger(
        records,
        manager.clock if clock is None else clock,
        provider,
        reconciler,
        claim_for=timeouts.claim_for,
        settle_after=timeouts.settle_after,
        poll=min(1.0, timeouts.request / 10),
    )


def open_unlisted(
    manager: SessionManager,
    name: str,
    timeouts: PaymentTimeouts,
    *,
    records: PaymentRecords | None,
    clock: Clock | None,
) -> Ledger[dict[str, Any]]:
    """An :class:`Unlisted` ledger whose records live under ``name`` (one of its own, such as
    ``finapi/forms``, so they never mix with the payments a reconciliation compares).

    Raises:
        ConfigurationError: As :func:`open_ledger`.
    """
    # An unlisted request is never found, so never settled "not found".
    forever = attrs.evolve(timeouts, settle_after=math.inf)
    return open_ledger(manager, name, Unlisted(), forever, records=records, clock=clock)
