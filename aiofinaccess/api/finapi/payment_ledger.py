"""The exactly-once rules for finAPI payments, as data and pure functions (no I/O, no clock).

A payment-creating request is first written down (:class:`PaymentRecord`, ``PENDING``) under
its client reference, with what it asks (:class:`Shape`, and a fingerprint of the whole body)
and the highest payment id the user had before it (``mark``). The outcome moves the record
once: ``CREATED`` (the payment's id), ``NOT_CREATED`` (why), or ``UNKNOWN`` until a
reconciliation settles it.

finAPI's ``Payment`` carries no client reference, no counterpart and no purpose, so a listed
payment is this request's when (:func:`match_payment`) its id is above the mark, no other
record holds it, and its type, account, total amount, order count and instructed execution
date are the request's. It is settled as this request's only if it is the one such payment
and no other unsettled record of the same shape could have made it; several are ambiguous.
None found means "not created" only once the request can no longer land (:func:`settle`):
finAPI answered it (any status but a gateway's 502 or 504), or ``settle_after`` seconds
passed since it was written down.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import Any, Final

import attrs
import cattrs

from ...core.errors import (
    ApiError,
    ReauthorizationRequired,
    StoreError,
    TransportError,
    UsageError,
)
from .payment_models import Payment

__all__ = [
    "Ambiguous",
    "Found",
    "Match",
    "NotFound",
    "PaymentRecord",
    "RecordState",
    "Shape",
    "fingerprint",
    "match_payment",
    "outcome_of_failure",
    "settle",
]

#: A gateway's answers: finAPI itself may still be working on the request behind them.
_GATEWAY: Final = frozenset({502, 504})


class RecordState(enum.StrEnum):
    """Where a payment-creating request stands."""

    PENDING = "PENDING"  # written down; being sent (or its sender died)
    CREATED = "CREATED"
    NOT_CREATED = "NOT_CREATED"
    UNKNOWN = "UNKNOWN"  # sent, outcome not settled yet


@attrs.frozen(slots=True)
class Shape:
    """What a listed ``Payment`` shows of a request: the fields matching compares."""

    type: str
    amount: Decimal
    order_count: int
    account_id: int | None = None
    iban: str | None = None
    execution_date: str | None = None

    def fits(self, payment: Payment) -> bool:
        """Whether ``payment`` shows exactly this."""
        return (
            payment.type == self.type
            and payment.amount == self.amount
            and payment.order_count == self.order_count
            and payment.account_id == self.account_id
            and (self.iban is None or payment.iban == self.iban)
            and (self.execution_date in (None, payment.instructed_execution_date))
        )


@attrs.frozen(slots=True)
class PaymentRecord:
    """A payment-creating request as the store keeps it (see the module's docstring).

    Attributes:
        request: :func:`fingerprint` of the request: the same reference with another request
            is refused.
        mark: The highest payment id of the user before the send (0: none).
        sent_at: Wall-clock seconds when it was written down, just before the send.
        owner: Who sends it; ``claimed_until`` (wall clock) bounds how long others wait.
        answered: finAPI answered the send (with an error): it cannot land later.
        payment: The ``Payment`` document, once created.
    """

    state: RecordState
    request: str
    shape: Shape
    mark: int
    sent_at: float
    owner: str
    claimed_until: float
    answered: bool = False
    payment: dict[str, Any] | None = None
    reason: str | None = None

    @property
    def payment_id(self) -> int | None:
        return None if self.payment is None else int(self.payment["id"])

    def created(self) -> Payment:
        """The payment of a ``CREATED`` record."""
        return _converter.structure(self.payment, Payment)

    def with_payment(self, payment: Payment) -> PaymentRecord:
        """This record, ``CREATED`` as ``payment``."""
        document = _converter.unstructure(payment)
        return attrs.evolve(self, state=RecordState.CREATED, payment=document, reason=None)

    def to_bytes(self) -> bytes:
        return json.dumps(_converter.unstructure(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> PaymentRecord:
        """Raises: StoreError: Not a record this SDK wrote."""
        try:
            return _converter.structure(json.loads(data), cls)
        except (ValueError, TypeError, KeyError, cattrs.BaseValidationError):
            raise StoreError("a payment record is unreadable") from None


_converter = cattrs.Converter()
_converter.register_unstructure_hook(Decimal, str)
_converter.register_structure_hook(Decimal, lambda value, _: Decimal(value))


def fingerprint(kind: str, body: Any) -> str:
    """A request's identity: its kind and JSON body, canonically hashed."""
    canonical = json.dumps([kind, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@attrs.frozen(slots=True)
class Found:
    """The one payment this request made."""

    payment: Payment


@attrs.frozen(slots=True)
class NotFound:
    """No listed payment can be this request's."""


@attrs.frozen(slots=True)
class Ambiguous:
    """Payments that may be this request's, but not surely (several, or contested)."""

    candidates: tuple[int, ...]


Match = Found | NotFound | Ambiguous


def match_payment(
    shape: Shape,
    mark: int,
    listed: Iterable[Payment],
    *,
    taken: Collection[int] = (),
    rivals: Collection[int] = (),
) -> Match:
    """Which listed payment a request made, if any can tell.

    Args:
        shape: What the request asked.
        mark: The highest payment id before its send.
        listed: The user's payments (any order; more than needed is fine).
        taken: Payment ids other records already hold.
        rivals: The marks of other unsettled records of the same shape and user: a payment
            above a rival's mark may be the rival's.
    """
    candidates = sorted(
        (p for p in listed if p.id > mark and p.id not in taken and shape.fits(p)),
        key=lambda p: p.id,
    )
    if not candidates:
        return NotFound()
    contested = any(candidates[0].id > rival for rival in rivals)
    if len(candidates) == 1 and not contested:
        return Found(candidates[0])
    return Ambiguous(tuple(p.id for p in candidates))


def outcome_of_failure(error: BaseException) -> tuple[RecordState, bool]:
    """What a failed send means: ``(NOT_CREATED or UNKNOWN, answered by finAPI?)``.

    Not created: the request surely never left (a refused connection, a usage error, a dead
    grant), or finAPI answered it with a 4xx. Every other failure (a timeout, a reset after
    sending, a 5xx, an unreadable 2xx, anything unforeseen) may have made the payment.
    """
    if isinstance(error, TransportError):
        return (RecordState.UNKNOWN if error.request_sent else RecordState.NOT_CREATED), False
    if isinstance(error, ApiError):
        if error.status < 500:
            return RecordState.NOT_CREATED, True
        return RecordState.UNKNOWN, error.status not in _GATEWAY
    if isinstance(error, UsageError | ReauthorizationRequired):
        return RecordState.NOT_CREATED, False
    return RecordState.UNKNOWN, False


def settle(
    record: PaymentRecord, match: Match, *, now: float, settle_after: float
) -> PaymentRecord:
    """The record after a reconciliation that found ``match`` at ``now`` (wall clock)."""
    if isinstance(match, Found):
        return record.with_payment(match.payment)
    if isinstance(match, NotFound) and (record.answered or now >= record.sent_at + settle_after):
        return attrs.evolve(record, state=RecordState.NOT_CREATED, reason="not found")
    reason = "ambiguous" if isinstance(match, Ambiguous) else "not found yet, may still land"
    return attrs.evolve(record, state=RecordState.UNKNOWN, reason=reason)
