"""How a finAPI payment is found again after an ambiguous send (the rules every provider shares:
:mod:`aiofinaccess.api.payment_ledger`).

finAPI's ``Payment`` carries no client reference, no counterpart and no purpose, so a listed
payment is this request's when (:func:`match_payment`) its id is above the mark (the highest
payment id of the user before the send), no other record holds it, and its type, account,
total amount, order count and instructed execution date are the request's. It is settled as
this request's only if it is the one such payment and no other unsettled record of the same
shape could have made it; several are ambiguous.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import cattrs

from ..payment_ledger import Ambiguous, Found, Match, NotFound, PaymentRecord, RecordState
from .payment_models import Payment

__all__ = ["FinApiReconciler", "Shape", "match_payment"]

_UNSETTLED = (RecordState.PENDING, RecordState.UNKNOWN)


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

    def document(self) -> dict[str, Any]:
        """As the record keeps it."""
        written: dict[str, Any] = _converter.unstructure(self)
        return written

    @classmethod
    def of(cls, record: PaymentRecord) -> Shape:
        """The shape a record keeps."""
        return _converter.structure(record.shape, cls)


_converter = cattrs.Converter()
_converter.register_unstructure_hook(Decimal, str)
_converter.register_structure_hook(Decimal, lambda value, _: Decimal(value))


def match_payment(
    shape: Shape,
    mark: int,
    listed: Iterable[Payment],
    *,
    taken: Collection[object] = (),
    rivals: Collection[int] = (),
) -> Match[Payment]:
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


#: ``(user, mark, shape)`` -> the user's payments with ids above ``mark`` that may match.
ListAbove = Callable[[str, int, Shape], Awaitable[list[Payment]]]


@attrs.frozen
class FinApiReconciler:
    """finAPI's :class:`~aiofinaccess.api.payment_once.Reconciler`: by mark and shape."""

    highest_id: Callable[[str], Awaitable[int]]
    list_above: ListAbove

    async def mark(self, user: str, reference: str) -> int:
        return await self.highest_id(user)  # finAPI lists no reference to look for

    async def find(
        self, user: str, reference: str, record: PaymentRecord, others: Mapping[str, PaymentRecord]
    ) -> Match[Payment]:
        shape = Shape.of(record)
        listed = await self.list_above(user, record.mark, shape)
        taken = {other.payment_id for other in others.values() if other.payment_id is not None}
        rivals = [
            other.mark
            for other in others.values()
            if other.payment_id is None
            and other.state in _UNSETTLED
            and other.shape == record.shape
        ]
        return match_payment(shape, record.mark, listed, taken=taken, rivals=rivals)

    def document(self, payment: Payment) -> dict[str, Any]:
        written: dict[str, Any] = _converter.unstructure(payment)
        return written

    def payment(self, document: dict[str, Any]) -> Payment:
        return _converter.structure(document, Payment)
