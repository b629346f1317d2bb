"""Everifin BankConnect payment initiation, for a user who granted ``pis``.

BankConnect's payment paths are not public (``everifin_keycloak.md`` A5): the defaults in
:class:`BankConnectPaymentRoutes` follow Everifin's style (Paygate's ``/payments`` resources, the
``{data, meta}`` envelope) and are UNCERTAIN; move any of them with ``attrs.evolve``.

A payment is created exactly once per client ``reference``, sent as its ``externalId``: the
request is written down in the manager's store before it is sent, never sent again once it may
have reached Everifin, and after an ambiguous failure (a timeout, a reset after sending, a 5xx)
found by listing the user's payments with that ``externalId``. The call returns the payment
(``CREATED``, with the ``link`` where the user authorises it), or raises
:class:`~aiofinaccess.errors.PaymentNotCreated` or, while it cannot tell,
:class:`~aiofinaccess.errors.PaymentOutcomeUnknown`; asking again with the same reference (in
any process sharing the store) gets the same answer.

>>> payment = await pis.create_payment(  # doctest: +SKIP
...     "alice", PaymentOrder(Money("12.50"), "SK3112000000198742637541", "Bob"),
...     reference=new_reference(), redirect_url="https://app.example/paid")
>>> redirect(payment.link)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs

from ...core.clock import Clock
from ...core.payment_records import PaymentRecords
from ..money import iban
from ..payment_ledger import PaymentTimeouts, check_reference, fingerprint
from ..payment_once import open_ledger
from ..pipeline import ApiClient, Endpoint, EndUser, everifin_context
from ..route_tables import check_routes
from .payment_models import EverifinPayment, PaymentOrder
from .payment_once import ByReference, list_pages, read_payment

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["BankConnectPaymentRoutes", "BankConnectPayments"]


@attrs.frozen(slots=True)
class BankConnectPaymentRoutes:
    """Where each BankConnect payment operation lives, relative to the provider's ``api_url``.
    UNCERTAIN: Everifin does not publish them."""

    create: Endpoint = Endpoint("POST", "/payments", expect=(200, 201))
    payment: Endpoint = Endpoint("GET", "/payments/{payment_id}")
    payments: Endpoint = Endpoint("GET", "/payments")  # filter: externalId
    withdraw: Endpoint = Endpoint("DELETE", "/payments/{payment_id}", expect=(200, 204))


class BankConnectPayments:
    """Payments from the connected accounts of one Everifin provider's users (user tokens,
    scope ``pis``).

    Args:
        manager: Holds each user's tokens; its store keeps the payment records.
        provider: The Everifin provider's name in ``manager``.
        routes: The route table (UNCERTAIN defaults).
        timeouts, records, clock: As for :class:`~aiofinaccess.finapi.FinApiPayments`.

    Raises:
        ConfigurationError: The store keeps no payment records, or a route in ``routes``
            lost its leading slash or its default's placeholders.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "everifin",
        *,
        routes: BankConnectPaymentRoutes | None = None,
        timeouts: PaymentTimeouts = PaymentTimeouts(),  # noqa: B008  (frozen)
        records: PaymentRecords | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.routes = check_routes(routes or BankConnectPaymentRoutes())
        self._api = ApiClient(
            manager, provider, context_headers=everifin_context, timeout=timeouts.request
        )
        reconciler = ByReference(self._by_reference)
        self._ledger = open_ledger(
            manager, provider, reconciler, timeouts, records=records, clock=clock
        )

    def __repr__(self) -> str:
        return f"BankConnectPayments(base_url={str(self._api.base_url)!r})"

    @property
    def reconciliations(self) -> Counter[str]:
        """How this object's reconciliations ended (``CREATED``, ``NOT_CREATED``, ``UNKNOWN``,
        ``failed``)."""
        return self._ledger.reconciliations

    async def _by_reference(self, user: str, reference: str) -> list[EverifinPayment]:
        return await self.payments(user, external_id=reference)

    async def create_payment(
        self,
        user: str,
        order: PaymentOrder,
        *,
        reference: str,
        sender_iban: str | None = None,
        redirect_url: str | None = None,
        end_user: EndUser | None = None,
    ) -> EverifinPayment:
        """Initiate a payment the user then authorises on its ``link``, exactly once per
        ``reference``.

        Args:
            reference: The client reference, sent as ``externalId`` (1 to 255 visible ASCII
                characters): asking again with it returns this payment, never a second one.
            sender_iban: The user's account to pay from (the user chooses on the page if not).
            redirect_url: Where the page sends the user back.

        Raises:
            PaymentNotCreated: Everifin refused it (the cause chained), or reconciliation found
                none after the request could no longer land.
            PaymentOutcomeUnknown: It may exist and the SDK cannot tell yet: :meth:`resolve`
                later, never send it under a new reference.
            UsageError: ``reference`` was used before for another request.
        """
        reference = check_reference(reference)
        body: dict[str, Any] = order.body() | {"externalId": reference}
        if sender_iban is not None:
            body["senderIban"] = iban(sender_iban, "sender_iban")
        if redirect_url is not None:
            body["redirectUrl"] = redirect_url
        endpoint = self.routes.create

        async def send() -> EverifinPayment:
            response = await self._api.call(
                endpoint, subject=user, json=body, request_id=reference, end_user=end_user
            )
            return read_payment(response, "payment")

        request = fingerprint(f"{endpoint.method} {endpoint.path}", body)
        return await self._ledger.create(user, reference, request, send)

    async def resolve(self, user: str, reference: str) -> EverifinPayment:
        """The payment created under ``reference``, settling an unknown outcome if it can.

        Raises:
            PaymentNotCreated: None was made, nor will be (or nothing was recorded under it).
            PaymentOutcomeUnknown: Still unsettled: ask again later.
        """
        return await self._ledger.resolve(user, check_reference(reference))

    async def payment(
        self, user: str, payment_id: str, *, end_user: EndUser | None = None
    ) -> EverifinPayment:
        """One payment, as it stands now."""
        response = await self._api.call(
            self.routes.payment,
            subject=user,
            path_params={"payment_id": payment_id},
            end_user=end_user,
        )
        return read_payment(response, "payment")

    async def payments(
        self, user: str, *, external_id: str | None = None, end_user: EndUser | None = None
    ) -> list[EverifinPayment]:
        """The user's payments (every page), those with ``external_id`` if given."""
        query = {} if external_id is None else {"externalId": external_id}
        return await list_pages(
            self._api, self.routes.payments, subject=user, query=query, end_user=end_user
        )

    async def withdraw(
        self, user: str, payment_id: str, *, end_user: EndUser | None = None
    ) -> None:
        """Withdraw a payment the user has not authorised yet (``WITHDRAWN``).

        Raises:
            ConflictError: It is authorised or final already.
        """
        await self._api.call(
            self.routes.withdraw,
            subject=user,
            path_params={"payment_id": payment_id},
            end_user=end_user,
        )
