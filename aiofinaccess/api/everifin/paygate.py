"""Everifin Paygate, the merchant "pay by bank" API: payment links, embedded payments, their
status and withdrawal, orders, banks.

Paygate is the client's own API (Keycloak realm ``everifin_paygate``, ``client_credentials``
only: register :meth:`Everifin.paygate_at() <aiofinaccess.Everifin.paygate_at>` with the
Paygate client's credentials); its paths, envelope and limits are public in Everifin's Paygate
SDKs (``everifin_keycloak.md`` A6). Payments are created exactly once per client
``reference`` (their ``externalId``), as BankConnect's are
(:class:`~aiofinaccess.everifin.BankConnectPayments`); the records live under the merchant, not
a user. Status changes arrive as webhooks: :mod:`aiofinaccess.integrations.paygate_webhooks`.

>>> payment = await paygate.create_link(  # doctest: +SKIP
...     PaymentOrder(Money("12.50"), "SK3112000000198742637541", "Shop", variable_symbol="2026001"),
...     reference=new_reference(), redirect_url="https://shop.example/paid")
>>> redirect(payment.link)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs

from ...core.clock import Clock
from ...core.payment_records import PaymentRecords
from ...oauth.transport import Pairs
from ..json_ready import JsonReady
from ..models import read_model
from ..money import Money, iban
from ..payment_ledger import PaymentTimeouts, check_reference, fingerprint
from ..payment_once import open_ledger, open_unlisted
from ..pipeline import ApiClient, Endpoint, EndUser
from ..route_tables import check_routes
from .bankconnect import envelope
from .payment_models import EverifinPayment, PaymentOrder
from .payment_once import ByReference, list_pages, read_payment

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["Bank", "Order", "Paygate", "PaygateRoutes", "paygate_context"]

#: Paygate's payments belong to the client: their records' user.
MERCHANT: Final = "merchant"


def paygate_context(user: EndUser) -> Pairs:
    """Paygate's sender headers for an embedded payment."""
    pairs = (("x-ef-sender-ip", user.ip_address), ("x-ef-sender-user-agent", user.user_agent))
    return tuple((name, value) for name, value in pairs if value)


@attrs.frozen(slots=True)
class PaygateRoutes:
    """Paygate's operations, relative to its host (``https://pay.everifin.com``)."""

    link: Endpoint = Endpoint("POST", "/api/v1/link", auth="client", expect=(200, 201))
    init_payment: Endpoint = Endpoint("POST", "/api/v1/payments", auth="client", expect=(200, 201))
    process: Endpoint = Endpoint("PATCH", "/api/v1/payments/{payment_id}", auth="client")
    payment: Endpoint = Endpoint("GET", "/api/v1/payments/{payment_id}", auth="client")
    payments: Endpoint = Endpoint("GET", "/api/v1/payments", auth="client")
    withdraw: Endpoint = Endpoint(
        "DELETE", "/api/v1/payments/{payment_id}", auth="client", expect=(200, 204)
    )
    banks: Endpoint = Endpoint("GET", "/api/v1/banks", auth="client")
    create_order: Endpoint = Endpoint("POST", "/api/v2/orders", auth="client", expect=(200, 201))
    order: Endpoint = Endpoint("GET", "/api/v2/orders/{order_id}", auth="client")


@attrs.frozen(slots=True)
class Bank(JsonReady):
    """A bank a payer can pay from."""

    id: str
    name: str
    country_code: str | None = None
    bic: str | None = None


@attrs.frozen(slots=True)
class Order(JsonReady):
    """An order: an amount the payer may settle in one or more payments."""

    id: str
    status: str  # UNPAID, PARTIALLY_PAID, PAID
    amount: Decimal
    currency: str
    external_id: str | None = None
    link: str | None = None


class Paygate:
    """The Paygate merchant API of one registered Paygate provider (the client's token).

    Args:
        manager: Holds the client token; its store keeps the payment records.
        provider: The Paygate provider's name in ``manager``.
        routes: The route table; override single routes with ``attrs.evolve``.
        timeouts, records, clock: As for :class:`~aiofinaccess.finapi.FinApiPayments`.

    Raises:
        ConfigurationError: As for :class:`~aiofinaccess.finapi.FinApiPayments`.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "everifin_paygate",
        *,
        routes: PaygateRoutes | None = None,
        timeouts: PaymentTimeouts = PaymentTimeouts(),  # noqa: B008  (frozen)
        records: PaymentRecords | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.routes = check_routes(routes or PaygateRoutes())
        self._api = ApiClient(
            manager, provider, context_headers=paygate_context, timeout=timeouts.request
        )
        reconciler = ByReference(lambda _user, reference: self.payments(external_id=reference))
        self._ledger = open_ledger(
            manager, provider, reconciler, timeouts, records=records, clock=clock
        )
        self._orders = open_unlisted(
            manager, f"{provider}/orders", timeouts, records=records, clock=clock
        )

    def __repr__(self) -> str:
        return f"Paygate(base_url={str(self._api.base_url)!r})"

    @property
    def reconciliations(self) -> Counter[str]:
        """How this object's reconciliations ended."""
        return self._ledger.reconciliations

    async def _once(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        reference: str,
        end_user: EndUser | None = None,
    ) -> EverifinPayment:
        async def send() -> EverifinPayment:
            response = await self._api.call(
                endpoint, json=body, request_id=reference, end_user=end_user
            )
            return read_payment(response, "payment")

        request = fingerprint(f"{endpoint.method} {endpoint.path}", body)
        return await self._ledger.create(MERCHANT, reference, request, send)

    @staticmethod
    def _body(
        order: PaymentOrder,
        reference: str,
        redirect_url: str | None,
        hook_data: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = order.body() | {"externalId": check_reference(reference)}
        if redirect_url is not None:
            body["redirectUrl"] = redirect_url
        if hook_data is not None:
            body["hookData"] = dict(hook_data)
        return body

    async def create_link(
        self,
        order: PaymentOrder,
        *,
        reference: str,
        redirect_url: str | None = None,
        hook_data: Mapping[str, Any] | None = None,
    ) -> EverifinPayment:
        """A payment link (redirect flow): send the payer to ``link``; exactly once per
        ``reference`` (its ``externalId``).

        Raises:
            PaymentFieldError: A field breaks its limit; nothing was sent.
            PaymentNotCreated, PaymentOutcomeUnknown: As for
                :meth:`BankConnectPayments.create_payment
                <aiofinaccess.everifin.BankConnectPayments.create_payment>`.
        """
        body = self._body(order, reference, redirect_url, hook_data)
        return await self._once(self.routes.link, body, body["externalId"])

    async def init_payment(
        self,
        order: PaymentOrder,
        *,
        reference: str,
        sender: EndUser,
        redirect_url: str | None = None,
        hook_data: Mapping[str, Any] | None = None,
    ) -> EverifinPayment:
        """An embedded payment (the payer stays on the merchant's page; :meth:`process` next),
        exactly once per ``reference``; ``sender`` travels as ``x-ef-sender-*`` headers."""
        body = self._body(order, reference, redirect_url, hook_data)
        return await self._once(self.routes.init_payment, body, body["externalId"], sender)

    async def process(self, payment_id: str, sender_iban: str) -> EverifinPayment:
        """Send an embedded payment from the payer's account."""
        response = await self._api.call(
            self.routes.process,
            path_params={"payment_id": payment_id},
            json={"senderIban": iban(sender_iban, "sender_iban")},
        )
        return read_payment(response, "payment")

    async def resolve(self, reference: str) -> EverifinPayment:
        """The payment created under ``reference``, settling an unknown outcome if it can.

        Raises:
            PaymentNotCreated: None was made, nor will be.
            PaymentOutcomeUnknown: Still unsettled: ask again later.
        """
        return await self._ledger.resolve(MERCHANT, check_reference(reference))

    async def payment(self, payment_id: str) -> EverifinPayment:
        """One payment, as it stands now."""
        response = await self._api.call(self.routes.payment, path_params={"payment_id": payment_id})
        return read_payment(response, "payment")

    async def payments(
        self, *, external_id: str | None = None, status: str | None = None
    ) -> list[EverifinPayment]:
        """The merchant's payments (every page), filtered by ``externalId`` and status."""
        query = {"externalId": external_id, "status[]": status}
        return await list_pages(
            self._api,
            self.routes.payments,
            subject=None,
            query={name: value for name, value in query.items() if value is not None},
        )

    async def withdraw(self, payment_id: str) -> None:
        """Withdraw a payment the payer has not authorised yet (``WITHDRAWN``).

        Raises:
            ConflictError: It is authorised or final already.
        """
        await self._api.call(self.routes.withdraw, path_params={"payment_id": payment_id})

    async def banks(self, country_code: str | None = None) -> list[Bank]:
        """The banks payers can pay from (ISO 3166 alpha-3 ``country_code``, e.g. ``SVK``)."""
        query = {} if country_code is None else {"countryCode": country_code}
        response = await self._api.call(self.routes.banks, params=query)
        data = envelope(response, "banks")[0]
        return read_model(data, list[Bank], what="banks")

    async def create_order(
        self, amount: Decimal | str, currency: str = "EUR", *, reference: str
    ) -> Order:
        """An order of ``amount`` (v2), once per ``reference`` (its ``externalId``): asked
        again, the recorded order.

        Raises:
            InvalidAmountError: Not a positive amount; nothing was sent.
            UsageError: ``reference`` was used for another request.
            PaymentNotCreated: Paygate refused it, or it never left.
            PaymentOutcomeUnknown: It may have been created; Paygate lists no orders, so it
                is never sent again under this reference.
        """
        money = Money(amount, currency).positive()
        endpoint, reference = self.routes.create_order, check_reference(reference)
        body = {"amount": str(money.value), "currency": money.currency, "externalId": reference}

        async def send() -> dict[str, Any]:
            response = await self._api.call(endpoint, json=body, request_id=reference)
            document = envelope(response, "order")[0]
            read_model(document, Order, what="order")  # or raise
            return dict(document)

        request = fingerprint(f"{endpoint.method} {endpoint.path}", body)
        return read_model(
            await self._orders.create(MERCHANT, reference, request, send), Order, what="order"
        )

    async def order(self, order_id: str) -> Order:
        """One order, as it stands now."""
        response = await self._api.call(self.routes.order, path_params={"order_id": order_id})
        return read_model(envelope(response, "order")[0], Order, what="order")
