"""finAPI payments through Access: create money transfers and direct debits, submit them to
the bank, list them; standing orders likewise.

Creating a payment (``POST /payments/moneyTransfers``...) only records it in finAPI (``OPEN``);
:meth:`FinApiPayments.submit` sends it to the bank (``PENDING``, then ``SUCCESSFUL`` or
``NOT_SUCCESSFUL``). Unlicensed clients use :class:`~aiofinaccess.finapi.PaymentForms`
instead, where the user authorises the payment in finAPI's Web Form.

Every payment-creating call takes a ``reference``, sent as ``X-Request-Id``: choose it, and
store it, before the call. The SDK never repeats such a call by itself once it may have
reached finAPI (a timeout, a reset after sending, a 5xx): it raises, and the payment may or
may not exist. Neither finAPI spec offers an idempotency key, so the caller settles it by
listing :meth:`FinApiPayments.payments` before sending again.

>>> payment = await payments.create_money_transfer(  # doctest: +SKIP
...     "alice", [Transfer(Money("12.50"), "Bob", "DE89370400440532013000")],
...     reference=reference, account_id=7)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs
from multidict import MultiDict

from ...core.errors import PaymentFieldError, ValidationError
from ..money import iban
from ..pipeline import ApiClient, Endpoint, EndUser, finapi_context
from .filters import add_ids, id_list
from .models import Paging, decode, read_finapi, read_list
from .payment_models import (
    DirectDebit,
    Payment,
    StandingOrder,
    Transfer,
    check_orders,
    check_reference,
)

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["FinApiPayments", "PaymentPage", "PaymentRoutes", "StandingOrderRecord", "new_reference"]

Interface = Literal["XS2A", "FINTS_SERVER", "WEB_SCRAPER"]


def new_reference() -> str:
    """A fresh client reference: 32 hex digits, so it also fits an end-to-end id (35)."""
    return uuid.uuid4().hex


@attrs.frozen(slots=True)
class PaymentRoutes:
    """Where each payment operation lives, relative to the provider's ``api_url`` (``/api/v2``
    or ``/api/v1``; the v1 spec documents these paths, v2 is assumed to keep them)."""

    money_transfers: Endpoint = Endpoint("POST", "/payments/moneyTransfers", expect=(201,))
    direct_debits: Endpoint = Endpoint("POST", "/payments/directDebits", expect=(201,))
    submit: Endpoint = Endpoint("POST", "/payments/submit")
    payments: Endpoint = Endpoint("GET", "/payments")
    standing_orders: Endpoint = Endpoint("GET", "/standingOrders")
    create_standing_order: Endpoint = Endpoint("POST", "/standingOrders", expect=(201,))
    submit_standing_order: Endpoint = Endpoint("POST", "/standingOrders/submit")


@attrs.frozen(slots=True)
class PaymentPage:
    """One page of payments, with finAPI's paging."""

    payments: tuple[Payment, ...]
    paging: Paging


@attrs.frozen(slots=True)
class StandingOrderRecord:
    """A standing order in finAPI Access (``StandingOrder``)."""

    id: int
    amount: Decimal
    currency: str
    start_date: str
    frequency: str
    status: str
    account_id: int | None = None
    iban: str | None = None
    end_date: str | None = None
    day_of_execution: int | None = None
    request_date: str | None = None
    request_completion_date: str | None = None
    bank_message: str | None = None


class FinApiPayments:
    """finAPI Access payments of one registered finAPI provider's users (user tokens).

    Args:
        manager: Holds each user's finAPI tokens.
        provider: The finAPI provider's name in ``manager``.
        routes: The route table; override single routes with ``attrs.evolve``.
        timeout: Seconds per request.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "finapi",
        *,
        routes: PaymentRoutes | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.routes = routes or PaymentRoutes()
        self._api = ApiClient(manager, provider, context_headers=finapi_context, timeout=timeout)

    def __repr__(self) -> str:
        return f"FinApiPayments(base_url={str(self._api.base_url)!r})"

    async def _create(
        self, endpoint: Endpoint, user: str, body: dict[str, Any], reference: str, what: str
    ) -> Any:
        response = await self._api.call(
            endpoint, subject=user, json=body, request_id=check_reference(reference)
        )
        return decode(response.body, what)

    async def create_money_transfer(
        self,
        user: str,
        transfers: Sequence[Transfer],
        *,
        reference: str,
        account_id: int | None = None,
        iban_from: str | None = None,
        execution_date: dt.date | None = None,
        single_booking: bool | None = None,
        instant: bool | None = None,
    ) -> Payment:
        """Record a money transfer of one or more orders in finAPI (``OPEN``; not yet sent to
        the bank: :meth:`submit` does that).

        Args:
            reference: The client reference, sent as ``X-Request-Id``; store it first.
            account_id: The user's account to pay from, or ``iban_from`` for a standalone
                payment (finAPI then takes the amounts as EUR).

        Raises:
            PaymentFieldError: An order or the reference breaks a rule; nothing was sent.
            TransportError: Not answered; it may have been created (never sent again here).
            ServerError: A 5xx; it may have been created (never sent again here).
            UnprocessableEntityError: finAPI refused it (``IBAN_ONLY_...``, unsupported...).
        """
        check_orders(transfers)
        if account_id is None and transfers[0].amount.currency != "EUR":
            raise PaymentFieldError("amount", "a standalone payment is in EUR")
        body = {
            "accountId": account_id,
            "iban": None if iban_from is None else iban(iban_from, "iban_from"),
            "executionDate": None if execution_date is None else execution_date.isoformat(),
            "singleBooking": single_booking,
            "instantPayment": instant,
            "moneyTransfers": [order.access_order() for order in transfers],
        }
        body = {name: value for name, value in body.items() if value is not None}
        document = await self._create(
            self.routes.money_transfers, user, body, reference, "money transfer"
        )
        return read_finapi(document, Payment, what="money transfer")

    async def create_direct_debit(
        self,
        user: str,
        debits: Sequence[DirectDebit],
        *,
        reference: str,
        account_id: int,
        execution_date: dt.date,
        direct_debit_type: Literal["BASIC", "B2B"] = "BASIC",
        sequence_type: Literal["OOFF", "FRST", "RCUR", "FNAL"] = "OOFF",
        single_booking: bool | None = None,
    ) -> Payment:
        """Record a direct debit of one or more orders into ``account_id`` (``OPEN``).

        Raises:
            PaymentFieldError: An order or the reference breaks a rule; nothing was sent.
            TransportError, ServerError: It may have been created (never sent again here).
        """
        check_orders(debits)
        body: dict[str, Any] = {
            "accountId": account_id,
            "directDebitType": direct_debit_type,
            "sequenceType": sequence_type,
            "executionDate": execution_date.isoformat(),
            "directDebits": [order.access_order() for order in debits],
        }
        if single_booking is not None:
            body["singleBooking"] = single_booking
        document = await self._create(
            self.routes.direct_debits, user, body, reference, "direct debit"
        )
        return read_finapi(document, Payment, what="direct debit")

    async def submit(
        self,
        user: str,
        payment_id: int,
        *,
        interface: Interface = "XS2A",
        redirect_url: str | None = None,
        end_user: EndUser | None = None,
    ) -> Payment:
        """Send a created payment to the bank (``PENDING``, or final at once).

        Like a creation, it is never sent again by the SDK once it may have reached finAPI:
        read the payment's status (:meth:`payments` with ``ids``) to learn what happened.
        """
        body: dict[str, Any] = {"paymentId": payment_id, "interface": interface}
        if redirect_url is not None:
            body["redirectUrl"] = redirect_url
        response = await self._api.call(
            self.routes.submit, subject=user, json=body, end_user=end_user
        )
        return read_finapi(decode(response.body, "submit"), Payment, what="submit")

    async def payments_page(
        self,
        user: str,
        *,
        ids: Iterable[int] | None = None,
        account_ids: Iterable[int] | None = None,
        page: int = 1,
        per_page: int = 500,
    ) -> PaymentPage:
        """One page of the user's payments (newest last: ``order=id,asc``)."""
        if page < 1 or not 1 <= per_page <= 500:
            raise ValidationError("page counts from 1; per_page is 1 to 500")
        query: MultiDict[str] = MultiDict(page=str(page), perPage=str(per_page), order="id,asc")
        add_ids(query, "ids", id_list("ids", ids), "repeat")
        add_ids(query, "accountIds", id_list("account_ids", account_ids), "repeat")
        response = await self._api.call(self.routes.payments, subject=user, params=query)
        document = decode(response.body, "payments")
        return PaymentPage(
            tuple(read_list(document, "payments", Payment, what="payments")),
            read_finapi(document.get("paging"), Paging, what="payments"),
        )

    async def payments(
        self,
        user: str,
        *,
        ids: Iterable[int] | None = None,
        account_ids: Iterable[int] | None = None,
    ) -> list[Payment]:
        """Every payment of the user (each page fetched), oldest first."""
        found: list[Payment] = []
        page = 1
        while True:
            result = await self.payments_page(user, ids=ids, account_ids=account_ids, page=page)
            found += result.payments
            if page >= result.paging.page_count:
                return found
            page += 1

    async def create_standing_order(
        self,
        user: str,
        order: StandingOrder,
        *,
        reference: str,
        account_id: int | None = None,
        iban_from: str | None = None,
    ) -> StandingOrderRecord:
        """Record a standing order in finAPI (``OPEN``; :meth:`submit_standing_order` next).

        Raises:
            PaymentFieldError: A field or the reference breaks a rule; nothing was sent.
            TransportError, ServerError: It may have been created (never sent again here).
        """
        body = order.access_order()
        if account_id is not None:
            body["accountId"] = account_id
        if iban_from is not None:
            body["iban"] = iban(iban_from, "iban_from")
        document = await self._create(
            self.routes.create_standing_order, user, body, reference, "standing order"
        )
        return read_finapi(document, StandingOrderRecord, what="standing order")

    async def submit_standing_order(
        self,
        user: str,
        standing_order_id: int,
        *,
        interface: Interface = "XS2A",
        end_user: EndUser | None = None,
    ) -> StandingOrderRecord:
        """Send a created standing order to the bank."""
        body = {"standingOrderId": standing_order_id, "interface": interface}
        response = await self._api.call(
            self.routes.submit_standing_order, subject=user, json=body, end_user=end_user
        )
        document = decode(response.body, "standing order")
        return read_finapi(document, StandingOrderRecord, what="standing order")

    async def standing_orders(self, user: str) -> list[StandingOrderRecord]:
        """The user's standing orders (the first 500)."""
        query = {"page": "1", "perPage": "500"}
        response = await self._api.call(self.routes.standing_orders, subject=user, params=query)
        document = decode(response.body, "standing orders")
        return read_list(document, "standingOrders", StandingOrderRecord, what="standing orders")
