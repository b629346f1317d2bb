"""Exactly once for Everifin payments (BankConnect's and Paygate's), on the shared ledger
(:mod:`aiofinaccess.api.payment_once`).

Everifin's payments carry the client's ``externalId``, so the SDK chooses it (the client
reference), writes the request down under it, sends it once, and after an ambiguous failure
finds the payment by listing the payments with that ``externalId``: one is this request's,
none is "not created" once the request can no longer land, several (Everifin never made them
from one send of the SDK) are ambiguous. It also looks once before the first send, so a
reference whose record the store lost (a failover, a restored backup) is answered with the
payment already made, not paid again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ...core.errors import UnexpectedResponseError, UsageError
from ..models import api_converter, read_model
from ..payment_ledger import Ambiguous, Found, Match, NotFound, PaymentRecord
from ..pipeline import ApiClient, Endpoint, EndUser
from .bankconnect import envelope
from .payment_models import EverifinPayment

if TYPE_CHECKING:
    from ...oauth.transport import HttpResponse

__all__ = ["ByReference", "list_pages", "read_payment"]

#: ``(user, reference)`` -> the payments Everifin lists under that ``externalId``.
Lookup = Callable[[str, str], Awaitable[list[EverifinPayment]]]


def read_payment(response: HttpResponse, what: str) -> EverifinPayment:
    """The payment in an answer's ``data``.

    Raises:
        UnexpectedResponseError: No envelope, or not a payment.
    """
    return read_model(envelope(response, what)[0], EverifinPayment, what=what)


@attrs.frozen
class ByReference:
    """Everifin's :class:`~aiofinaccess.api.payment_once.Reconciler`: by ``externalId``."""

    lookup: Lookup

    async def mark(self, user: str, reference: str) -> int | Found[EverifinPayment]:
        # Looked up before sending: a record the store lost must not make a second payment.
        match = await self._match(user, reference)
        if isinstance(match, Ambiguous):
            raise UsageError(f"reference {reference} already names several Everifin payments")
        return match if isinstance(match, Found) else 0

    async def find(
        self, user: str, reference: str, record: PaymentRecord, others: Mapping[str, PaymentRecord]
    ) -> Match[EverifinPayment]:
        return await self._match(user, reference)

    async def _match(self, user: str, reference: str) -> Match[EverifinPayment]:
        found = [p for p in await self.lookup(user, reference) if p.external_id == reference]
        if not found:
            return NotFound()
        if len(found) == 1:
            return Found(found[0])
        return Ambiguous(tuple(p.id for p in found))

    def document(self, payment: EverifinPayment) -> dict[str, Any]:
        written: dict[str, Any] = api_converter.unstructure(payment)
        return written

    def payment(self, document: dict[str, Any]) -> EverifinPayment:
        return read_model(document, EverifinPayment, what="payment record")


async def list_pages(
    api: ApiClient,
    endpoint: Endpoint,
    *,
    subject: str | None,
    query: Mapping[str, str],
    per_page: int = 100,
    end_user: EndUser | None = None,
) -> list[EverifinPayment]:
    """Every payment of a paged Everifin listing (``page``, ``countPerPage``,
    ``meta.pagination.last``)."""
    found: list[EverifinPayment] = []
    page = 1
    while True:
        response = await api.call(
            endpoint,
            subject=subject,
            params={**query, "page": str(page), "countPerPage": str(per_page)},
            end_user=end_user,
        )
        data, meta = envelope(response, "payments")
        if not isinstance(data, list):
            raise UnexpectedResponseError("payments: expected a list")
        found += [read_model(item, EverifinPayment, what="payments") for item in data]
        pagination = meta.get("pagination")
        last = pagination.get("last") if isinstance(pagination, dict) else None
        if not data or not isinstance(last, int) or page >= last:
            return found
        page += 1
