"""finAPI payments, emulated: Access payments and standing orders, and Web Form 2.0's payment forms.

A payment's life (finAPI's ``OrderInitiationStatus``):

* created through Access (``POST /payments/moneyTransfers``, ``/payments/directDebits``):
  ``OPEN``; ``POST /payments/submit`` makes it ``PENDING`` (the bank has it);
* created through a payment form: the form the user completes makes a ``PENDING`` payment
  (authorised by the user) and names it in ``payload.paymentId`` (``standingOrderId``);
* then the test decides: ``book`` (``SUCCESSFUL``), ``fail`` (``NOT_SUCCESSFUL``), ``expire``
  (an ``OPEN`` or ``PENDING`` payment becomes ``DISCARDED``): :meth:`PaymentService.steer`,
  or ``POST /_sandbox/payments/{id}`` with ``{"event": ...}``.

The sandbox keeps each payment's ``X-Request-Id`` (finAPI keeps it in its logs only) so tests
can count payments by client reference: :meth:`PaymentService.by_reference`, or
``GET /_sandbox/payments?reference=...``. Bodies are checked for the spec's required fields
and a positive amount with at most two decimals; errors are finAPI's ``ErrorMessage``.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, Final

import attrs
from aiohttp import web

from .common import REQUEST_ID
from .finapi import FinApiService, Refused
from .finapi_data import FinApiDataService
from .finapi_payment_records import (
    SandboxPayment,
    payment_json,
    positive_amount,
    standing_order_json,
)
from .state import SandboxState
from .webform import WebFormService, _Form

__all__ = ["PaymentService", "SandboxPayment"]

_FORM_TYPES: Final = {
    "standalonePayment": "STANDALONE_PAYMENT",
    "paymentWithAccountId": "PAYMENT_WITH_ACCOUNT_ID",
    "directDebitWithAccountId": "DIRECT_DEBIT_WITH_ACCOUNT_ID",
    "standingOrder": "STANDING_ORDER",
}
_PAYMENT_TYPES: Final = {
    "STANDING_ORDER": "STANDING_ORDER",
    "DIRECT_DEBIT_WITH_ACCOUNT_ID": "DIRECT_DEBIT",
}
_EVENTS: Final = {
    "authorise": ({"OPEN"}, "PENDING"),
    "book": ({"PENDING"}, "SUCCESSFUL"),
    "fail": ({"PENDING"}, "NOT_SUCCESSFUL"),
    "expire": ({"OPEN", "PENDING"}, "DISCARDED"),
}


class PaymentService:
    """Payments of the emulated finAPI mandator's users."""

    def __init__(
        self,
        state: SandboxState,
        finapi: FinApiService,
        data: FinApiDataService,
        webform: WebFormService,
    ) -> None:
        self.state = state
        self.finapi = finapi
        self.data = data
        self.webform = webform
        self.payments: dict[int, SandboxPayment] = {}
        self._ids = itertools.count(1)
        self._form_orders: dict[str, SandboxPayment] = {}
        webform.on_finished.append(self._form_finished)

    def routes(self) -> list[web.RouteDef]:
        """Access routes under ``/api/v1`` and ``/api/v2``, the forms, and the control routes."""
        table: list[web.RouteDef] = []
        for version in ("v1", "v2"):
            base = f"/api/{version}"
            guard = self.finapi.version
            table += [
                web.post(base + "/payments/moneyTransfers", guard(version, self.money_transfers)),
                web.post(base + "/payments/directDebits", guard(version, self.direct_debits)),
                web.post(base + "/payments/submit", guard(version, self.submit)),
                web.get(base + "/payments", guard(version, self.list_payments)),
                web.post(base + "/standingOrders", guard(version, self.create_standing_order)),
                web.post(base + "/standingOrders/submit", guard(version, self.submit_order)),
                web.get(base + "/standingOrders", guard(version, self.list_standing_orders)),
            ]
        table += [web.post(f"/api/webForms/{name}", self.create_form) for name in _FORM_TYPES]
        table += [
            web.get("/_sandbox/payments", self._control_list),
            web.post("/_sandbox/payments/{id}", self._control_steer),
        ]
        return table

    # -- what tests steer ------------------------------------------------------------------

    def steer(self, payment_id: int, event: str) -> SandboxPayment:
        """Apply ``event`` (``authorise``, ``book``, ``fail``, ``expire``) to a payment.

        Raises:
            KeyError: No such payment.
            ValueError: The event does not apply in the payment's status.
        """
        payment = self.payments[payment_id]
        sources, target = _EVENTS[event]
        if payment.status not in sources:
            raise ValueError(f"payment {payment_id} is {payment.status}: cannot {event}")
        payment.status = target
        payment.bank_message = "Rejected by the sandbox bank" if event == "fail" else None
        self.state.count(f"payments.{event}")
        return payment

    def by_reference(self, reference: str) -> list[SandboxPayment]:
        """The payments created with this ``X-Request-Id``."""
        return [p for p in self.payments.values() if p.reference == reference]

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _version(self) -> str:
        return self.state.config.finapi_version

    def _refuse(self, request: web.Request, status: int, code: str, message: str) -> Refused:
        return Refused(self.finapi.error(request, status, code, message))

    async def _body(self, request: web.Request, *required: str) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._refuse(request, 400, "BAD_REQUEST", "Body must be a JSON object")
        missing = [name for name in required if body.get(name) is None]
        if missing:
            raise self._refuse(request, 400, "BAD_REQUEST", f"Missing: {', '.join(missing)}")
        return body

    def _orders(self, request: web.Request, orders: object, required: tuple[str, ...]) -> Decimal:
        if not isinstance(orders, list) or not orders:
            raise self._refuse(request, 400, "BAD_REQUEST", "At least one order is required")
        total = Decimal(0)
        for order in orders:
            if not isinstance(order, dict) or any(order.get(n) is None for n in required):
                raise self._refuse(request, 400, "BAD_REQUEST", f"An order needs {required}")
            amount = positive_amount(order["amount"])
            if amount is None:
                raise self._refuse(
                    request, 400, "BAD_REQUEST", "amount must be positive, two decimals at most"
                )
            total += amount
        return total

    def _amount(self, request: web.Request, name: str) -> Decimal | None:
        value = request.query.get(name)
        try:
            return None if value is None else Decimal(value)
        except ArithmeticError:
            raise self._refuse(request, 400, "BAD_REQUEST", f"{name} must be a number") from None

    def _account(self, request: web.Request, user_id: str, account_id: object) -> int | None:
        if account_id is None:
            return None
        account = self.data.accounts.get(account_id) if isinstance(account_id, int) else None
        if account is None or account.user_id != user_id:
            raise self._refuse(request, 422, "UNKNOWN_ENTITY", "Account not found")
        return account.id

    def _new(self, request: web.Request, user_id: str, **fields: Any) -> SandboxPayment:
        payment = SandboxPayment(
            next(self._ids),
            user_id,
            reference=request[REQUEST_ID],
            requested_at=self.state.clock.now(),
            **fields,
        )
        self.payments[payment.id] = payment
        self.state.count(f"payments.created.{payment.type}")
        return payment

    def _mine(self, request: web.Request, user_id: str, key: object, kind: set[str]) -> Any:
        payment = self.payments.get(key) if isinstance(key, int) else None
        if payment is None or payment.user_id != user_id or payment.type not in kind:
            raise self._refuse(request, 422, "UNKNOWN_ENTITY", "Entity not found")
        return payment

    # -- Access handlers -------------------------------------------------------------------

    async def money_transfers(self, request: web.Request) -> web.Response:
        """``POST /payments/moneyTransfers`` -> 201 Payment (``OPEN``)."""
        user_id = self.finapi.user_of(request)
        body = await self._body(request, "moneyTransfers")
        orders = body["moneyTransfers"]
        total = self._orders(request, orders, ("amount", "counterpartIban", "counterpartName"))
        account_id = self._account(request, user_id, body.get("accountId"))
        if account_id is None and not body.get("iban"):
            raise self._refuse(request, 400, "BAD_REQUEST", "accountId or iban is required")
        payment = self._new(
            request,
            user_id,
            type="MONEY_TRANSFER",
            amount=total,
            order_count=len(orders),
            account_id=account_id,
            iban=body.get("iban"),
            execution_date=body.get("executionDate"),
        )
        return web.json_response(payment_json(payment, self._version), status=201)

    async def direct_debits(self, request: web.Request) -> web.Response:
        """``POST /payments/directDebits`` -> 201 Payment (``OPEN``)."""
        user_id = self.finapi.user_of(request)
        required = ("accountId", "directDebitType", "directDebits", "executionDate", "sequenceType")
        body = await self._body(request, *required)
        orders = body["directDebits"]
        needed = ("amount", "counterpartIban", "counterpartName", "mandateId", "mandateDate")
        total = self._orders(request, orders, (*needed, "creditorId"))
        payment = self._new(
            request,
            user_id,
            type="DIRECT_DEBIT",
            amount=total,
            order_count=len(orders),
            account_id=self._account(request, user_id, body["accountId"]),
            execution_date=body["executionDate"],
        )
        return web.json_response(payment_json(payment, self._version), status=201)

    async def submit(self, request: web.Request) -> web.Response:
        """``POST /payments/submit`` -> 200 Payment (``PENDING``); only an ``OPEN`` one."""
        user_id = self.finapi.user_of(request)
        body = await self._body(request, "paymentId", "interface")
        payment = self._mine(
            request, user_id, body["paymentId"], {"MONEY_TRANSFER", "DIRECT_DEBIT"}
        )
        if payment.status != "OPEN":
            raise self._refuse(request, 422, "BAD_REQUEST", "Payment was already submitted")
        self.steer(payment.id, "authorise")
        return web.json_response(payment_json(payment, self._version))

    async def list_payments(self, request: web.Request) -> web.Response:
        """``GET /payments`` -> PageablePaymentResources: ``ids``, ``accountIds``,
        ``minAmount``, ``maxAmount``, ``status``; ``order`` by id, ascending by default."""
        user_id = self.finapi.user_of(request)
        ids = self.data._ids(request, "ids")
        accounts = self.data._ids(request, "accountIds")
        low, high = self._amount(request, "minAmount"), self._amount(request, "maxAmount")
        statuses = {s for raw in request.query.getall("status", []) for s in raw.split(",")}
        found = [
            payment_json(p, self._version)
            for p in self.payments.values()
            if p.user_id == user_id
            and p.type != "STANDING_ORDER"
            and (ids is None or p.id in ids)
            and (accounts is None or p.account_id in accounts)
            and (low is None or p.amount >= low)
            and (high is None or p.amount <= high)
            and (not statuses or p.status in statuses)
        ]
        order = request.query.get("order", "id,asc").lower()
        if order not in ("id,asc", "id,desc"):
            raise self._refuse(request, 400, "BAD_REQUEST", "order: the sandbox sorts by id only")
        found.sort(key=lambda p: p["id"], reverse=order == "id,desc")
        page, paging = self.data._paging(request, found)
        return web.json_response({"payments": list(page), "paging": paging})

    async def create_standing_order(self, request: web.Request) -> web.Response:
        """``POST /standingOrders`` -> 201 StandingOrder (``OPEN``)."""
        user_id = self.finapi.user_of(request)
        required = ("amount", "counterpartIban", "counterpartName", "currency", "frequency")
        body = await self._body(request, *required, "startDate")
        total = self._orders(request, [body], required)
        order = self._new(
            request,
            user_id,
            type="STANDING_ORDER",
            amount=total,
            order_count=1,
            account_id=self._account(request, user_id, body.get("accountId")),
            iban=body.get("iban"),
            details={k: body.get(k) for k in ("currency", "startDate", "endDate", "frequency")},
        )
        return web.json_response(standing_order_json(order, self._version), status=201)

    async def submit_order(self, request: web.Request) -> web.Response:
        """``POST /standingOrders/submit`` -> 200 StandingOrder (``PENDING``)."""
        user_id = self.finapi.user_of(request)
        body = await self._body(request, "standingOrderId", "interface")
        order = self._mine(request, user_id, body["standingOrderId"], {"STANDING_ORDER"})
        if order.status != "OPEN":
            raise self._refuse(request, 422, "BAD_REQUEST", "Standing order was already submitted")
        self.steer(order.id, "authorise")
        return web.json_response(standing_order_json(order, self._version))

    async def list_standing_orders(self, request: web.Request) -> web.Response:
        """``GET /standingOrders`` -> PageableStandingOrderResources."""
        user_id = self.finapi.user_of(request)
        found = [
            standing_order_json(p, self._version)
            for p in self.payments.values()
            if p.user_id == user_id and p.type == "STANDING_ORDER"
        ]
        page, paging = self.data._paging(request, found)
        return web.json_response({"standingOrders": list(page), "paging": paging})

    # -- Web Form 2.0 ----------------------------------------------------------------------

    async def create_form(self, request: web.Request) -> web.Response:
        """``POST /api/webForms/{payment form}`` (user token) -> 201 WebForm; the payment is
        made when the user completes the form."""
        kind = _FORM_TYPES[request.path.rsplit("/", 1)[1]]
        user_id, body = await self.webform.caller(request)
        if user_id is None:
            return self.webform.error(request, 401, "UNAUTHORIZED", "Invalid or missing token")
        try:
            pending = self._form_payment(request, kind, user_id, body)
        except Refused:
            problem = [{"field": "body", "message": "does not match the payment form"}]
            return self.webform.invalid(request, problem)
        callbacks = body.get("callbacks") or {}
        form = self.webform.add_form(
            user_id,
            type=kind,
            finalised_url=callbacks.get("finalised") or None,
            redirect_url=body.get("redirectUrl") or None,
        )
        self._form_orders[form.id] = pending
        return web.json_response(self.webform.public(form, str(request.url.origin())), status=201)

    def _form_payment(
        self, request: web.Request, kind: str, user_id: str, body: Any
    ) -> SandboxPayment:
        if not isinstance(body, dict):
            raise self._refuse(request, 400, "BAD_REQUEST", "Body must be a JSON object")
        orders: Any = [body] if kind == "STANDING_ORDER" else body.get("orders")
        if not isinstance(orders, list) or not orders:
            raise self._refuse(request, 400, "BAD_REQUEST", "At least one order is required")
        amounts = [o.get("amount") if isinstance(o, dict) else None for o in orders]
        values = [a.get("value") if isinstance(a, dict) else None for a in amounts]
        total = self._orders(request, [{"amount": v} for v in values], ("amount",))
        holder = body.get("sender") or body.get("receiver") or {}
        return SandboxPayment(
            0,
            user_id,
            type={
                "STANDING_ORDER": "STANDING_ORDER",
                "DIRECT_DEBIT_WITH_ACCOUNT_ID": "DIRECT_DEBIT",
            }.get(kind, "MONEY_TRANSFER"),
            amount=total,
            order_count=len(values),
            reference=request[REQUEST_ID],
            requested_at=self.state.clock.now(),
            account_id=self._account(request, user_id, holder.get("accountId")),
            iban=holder.get("iban"),
            execution_date=body.get("executionDate"),
            details={k: body.get(k) for k in ("startDate", "endDate", "frequency")}
            | {"currency": amounts[0].get("currency", "EUR") if amounts[0] else "EUR"},
        )

    async def _form_finished(self, form: _Form) -> None:
        pending = self._form_orders.pop(form.id, None)
        if pending is None or form.status != "COMPLETED":
            return
        payment = attrs.evolve(pending, id=next(self._ids), status="PENDING")
        self.payments[payment.id] = payment
        self.state.count(f"payments.created.{payment.type}")
        if payment.type == "STANDING_ORDER":
            form.standing_order_id = payment.id
        else:
            form.payment_id = payment.id

    # -- control ---------------------------------------------------------------------------

    async def _control_list(self, request: web.Request) -> web.Response:
        reference = request.query.get("reference")
        found = [
            {"id": p.id, "status": p.status, "type": p.type, "reference": p.reference}
            for p in self.payments.values()
            if reference is None or p.reference == reference
        ]
        return web.json_response({"payments": found})

    async def _control_steer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            payment = self.steer(int(request.match_info["id"]), str(body["event"]))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"id": payment.id, "status": payment.status})
