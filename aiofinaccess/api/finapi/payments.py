"""finAPI payments through Access: create money transfers and direct debits, submit them to
the bank, list them; standing orders likewise.

Creating a payment (``POST /payments/moneyTransfers``...) only records it in finAPI (``OPEN``);
:meth:`FinApiPayments.submit` sends it to the bank (``PENDING``, then ``SUCCESSFUL`` or
``NOT_SUCCESSFUL``). Unlicensed clients use :class:`~aiofinaccess.finapi.PaymentForms`
instead, where the user authorises the payment in finAPI's Web Form.

Money transfers and direct debits are created exactly once per client ``reference`` (sent as
``X-Request-Id``): the request is written down in the manager's store before it is sent, never
sent again once it may have reached finAPI, and after an ambiguous failure (a timeout, a reset
after sending, a 5xx) reconciled by listing the user's payments. The call returns the payment,
or raises :class:`~aiofinaccess.errors.PaymentNotCreated` or, while it cannot tell,
:class:`~aiofinaccess.errors.PaymentOutcomeUnknown`; asking again with the same reference (in
any process sharing the store) gets the same answer. The rules: :mod:`.payment_ledger`.

>>> payment = await payments.create_money_transfer(  # doctest: +SKIP
...     "alice", [Transfer(Money("12.50"), "Bob", "DE89370400440532013000")],
...     reference=reference, account_id=7)
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs
from multidict import MultiDict

from ...core.clock import Clock
from ...core.errors import PaymentFieldError, ValidationError
from ...core.payment_records import PaymentRecords
from ..money import iban
from ..payment_ledger import PaymentTimeouts, check_reference, fingerprint
from ..payment_once import open_ledger, open_unlisted
from ..pipeline import ApiClient, Endpoint, EndUser, finapi_context
from ..route_tables import check_routes
from .filters import add_ids, id_list
from .models import Paging, decode, read_finapi, read_list
from .payment_ledger import FinApiReconciler, Shape
from .payment_models import (
    DirectDebit,
    Payment,
    PaymentPage,
    StandingOrder,
    StandingOrderRecord,
    Transfer,
    check_orders,
)

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["FinApiPayments", "PaymentRoutes"]

Interface = Literal["XS2A", "FINTS_SERVER", "WEB_SCRAPER"]


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


class FinApiPayments:
    """finAPI Access payments of one registered finAPI provider's users (user tokens).

    Args:
        manager: Holds each user's finAPI tokens; its store keeps the payment records.
        provider: The finAPI provider's name in ``manager``.
        routes: The route table; override single routes with ``attrs.evolve``.
        timeouts: Seconds per request, and how long a reference stays open.
        records: Where payment records live, if not in the manager's store.
        clock: Wall-clock times for records (the manager's clock by default).

    Raises:
        ConfigurationError: The store keeps no payment records, or a route in ``routes``
            lost its leading slash or its default's placeholders.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "finapi",
        *,
        routes: PaymentRoutes | None = None,
        timeouts: PaymentTimeouts = PaymentTimeouts(),  # noqa: B008  (frozen)
        records: PaymentRecords | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.routes = check_routes(routes or PaymentRoutes())
        self._api = ApiClient(
            manager, provider, context_headers=finapi_context, timeout=timeouts.request
        )
        reconciler = FinApiReconciler(self._highest_id, self._list_above)
        self._ledger = open_ledger(
            manager, provider, reconciler, timeouts, records=records, clock=clock
        )
        self._standing = open_unlisted(
            manager, f"{provider}/standing-orders", timeouts, records=records, clock=clock
        )

    def __repr__(self) -> str:
        return f"FinApiPayments(base_url={str(self._api.base_url)!r})"

    async def _create(
        self, endpoint: Endpoint, user: str, body: dict[str, Any], reference: str, what: str
    ) -> Any:
        response = await self._api.call(
            endpoint, subject=user, json=body, request_id=check_reference(reference)
        )
        return decode(response.body, what)

    async def _once(
        self, endpoint: Endpoint, user: str, body: dict[str, Any], reference: str, shape: Shape
    ) -> Payment:
        what = endpoint.path.rsplit("/", 1)[1]

        async def send() -> Payment:
            document = await self._create(endpoint, user, body, reference, what)
            return read_finapi(document, Payment, what=what)

        request = fingerprint(f"{endpoint.method} {endpoint.path}", body)
        reference = check_reference(reference)
        return await self._ledger.create(user, reference, request, send, shape=shape.document())

    @property
    def reconciliations(self) -> Counter[str]:
        """How this object's reconciliations ended: ``CREATED``, ``NOT_CREATED``, ``UNKNOWN``
        (the record's new state) or ``failed`` (the listing or the store failed)."""
        return self._ledger.reconciliations

    async def resolve(self, user: str, reference: str) -> Payment:
        """The payment created under ``reference``, settling an unknown outcome if it can
        (another process may have sent it).

        Raises:
            PaymentNotCreated: None was made, nor will be (or nothing was recorded under it).
            PaymentOutcomeUnknown: Still unsettled: ask again later.
        """
        return await self._ledger.resolve(user, check_reference(reference))

    async def _highest_id(self, user: str) -> int:
        page = await self.payments_page(user, per_page=1, order="id,desc")
        return max((p.id for p in page.payments), default=0)

    async def _list_above(self, user: str, mark: int, shape: Shape) -> list[Payment]:
        """The user's payments above ``mark`` of ``shape``'s account and amount, newest first."""
        accounts = None if shape.account_id is None else [shape.account_id]
        found: list[Payment] = []
        page = 1
        while True:
            result = await self.payments_page(
                user,
                account_ids=accounts,
                amount=shape.amount,
                order="id,desc",
                page=page,
            )
            above = [p for p in result.payments if p.id > mark]
            found += above
            if len(above) < len(result.payments) or page >= result.paging.page_count:
                return found
            page += 1

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
        the bank: :meth:`submit` does that), exactly once per ``reference``.

        Args:
            reference: The client reference, sent as ``X-Request-Id``: one per payment, kept
                by the app; asking again with it returns this payment, never a second one.
            account_id: The user's account to pay from, or ``iban_from`` for a standalone
                payment (finAPI then takes the amounts as EUR).

        Raises:
            PaymentFieldError: An order or the reference breaks a rule; nothing was sent.
            PaymentNotCreated: finAPI refused it (the cause chained), or reconciliation found
                none after the request could no longer land: a new payment needs a new
                reference.
            PaymentOutcomeUnknown: It may exist and the SDK cannot tell yet: :meth:`resolve`
                later, never send it under a new reference.
            UsageError: ``reference`` was used before for another request.
            StoreError: The record could not be read or written first; nothing was sent.
        """
        check_orders(transfers)
        if account_id is None and transfers[0].amount.currency != "EUR":
            raise PaymentFieldError("amount", "a standalone payment is in EUR")
        source = None if iban_from is None else iban(iban_from, "iban_from")
        body = {
            "accountId": account_id,
            "iban": source,
            "executionDate": None if execution_date is None else execution_date.isoformat(),
            "singleBooking": single_booking,
            "instantPayment": instant,
            "moneyTransfers": [order.access_order() for order in transfers],
        }
        body = {name: value for name, value in body.items() if value is not None}
        shape = _shape("MONEY_TRANSFER", transfers, account_id, source, execution_date)
        return await self._once(self.routes.money_transfers, user, body, reference, shape)

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
        """Record a direct debit of one or more orders into ``account_id`` (``OPEN``), exactly
        once per ``reference`` (as :meth:`create_money_transfer`).

        Raises:
            PaymentFieldError: An order or the reference breaks a rule; nothing was sent.
            PaymentNotCreated, PaymentOutcomeUnknown: As for :meth:`create_money_transfer`.
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
        shape = _shape("DIRECT_DEBIT", debits, account_id, None, execution_date)
        return await self._once(self.routes.direct_debits, user, body, reference, shape)

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
        amount: Decimal | None = None,
        page: int = 1,
        per_page: int = 500,
        order: Literal["id,asc", "id,desc"] = "id,asc",
    ) -> PaymentPage:
        """One page of the user's payments (oldest first by default), of exactly ``amount``
        if given."""
        if page < 1 or not 1 <= per_page <= 500:
            raise ValidationError("page counts from 1; per_page is 1 to 500")
        query: MultiDict[str] = MultiDict(page=str(page), perPage=str(per_page), order=order)
        if amount is not None:
            query.update(minAmount=str(amount), maxAmount=str(amount))
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
        """Record a standing order in finAPI (``OPEN``; :meth:`submit_standing_order` next),
        once per ``reference``: asked again, the recorded answer.

        Raises:
            PaymentFieldError: A field or the reference breaks a rule; nothing was sent.
            UsageError: ``reference`` was used for another request.
            PaymentNotCreated: finAPI refused it, or it never left.
            PaymentOutcomeUnknown: It may have been created; finAPI cannot be asked by
                reference, so it is never sent again under it (look at :meth:`standing_orders`).
        """
        body = order.access_order()
        if account_id is not None:
            body["accountId"] = account_id
        if iban_from is not None:
            body["iban"] = iban(iban_from, "iban_from")
        endpoint, reference = self.routes.create_standing_order, check_reference(reference)

        async def send() -> dict[str, Any]:
            document = await self._create(endpoint, user, body, reference, "standing order")
            read_finapi(document, StandingOrderRecord, what="standing order")  # or raise
            created: dict[str, Any] = document
            return created

        request = fingerprint(f"{endpoint.method} {endpoint.path}", body)
        document = await self._standing.create(user, reference, request, send)
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


def _shape(
    kind: str,
    orders: Sequence[Transfer] | Sequence[DirectDebit],
    account_id: int | None,
    iban_from: str | None,
    execution_date: dt.date | None,
) -> Shape:
    return Shape(
        kind,
        sum((order.amount.value for order in orders), Decimal(0)),
        len(orders),
        account_id=account_id,
        iban=iban_from,
        execution_date=None if execution_date is None else execution_date.isoformat(),
    )
