"""Everifin payments, emulated: BankConnect payment initiation (``/v1/payments``, a user token
with scope ``pis``) and Paygate (realm ``everifin_paygate``, ``client_credentials``;
``/api/v1/link``, ``/api/v1/payments``, ``/api/v1/banks``, ``/api/v2/orders``), with Paygate's
webhooks. Paygate's paths are under ``/paygate`` here (``Sandbox.paygate_url``).

A payment's life (Everifin's statuses):

* created: ``CREATED``, with a ``link`` to its authorization page (``/everifin/pay/{id}``);
* the user opens the page: ``SEEN``; authorises it there: ``PROCESSING`` (or cancels:
  ``FAILED``); the merchant withdraws it before that (``DELETE``): ``WITHDRAWN``;
* then the test decides (:meth:`EverifinPaymentService.steer`, or ``POST
  /_sandbox/everifin/payments/{id}`` with ``{"event": ...}``): ``book`` (``BOOKED``), ``fail``
  (``FAILED``), ``expire`` (an unauthorised one: ``EXPIRED``).

Each change of a Paygate payment queues a ``payment.statusChange`` event, delivered as
:mod:`.paygate_hooks` says (``service.hooks``).

The sandbox keeps each payment's ``externalId`` so tests can count payments by client
reference (:meth:`EverifinPaymentService.by_reference`).
"""

from __future__ import annotations

import datetime as dt
import html
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs
from aiohttp import web

from .bankconnect import _error, _iso, _ok
from .common import bearer, form_fields, new_token
from .keycloak import KeycloakService
from .paygate_hooks import PaygateHooks
from .state import SandboxState

__all__ = ["PAYGATE", "EverifinPaymentService"]

#: Paygate's host within the sandbox (finAPI has ``/api/v1/payments`` at its root).
PAYGATE: Final = "/paygate"
_PAGE_PATH: Final = "/everifin/pay/{id}"
_SYMBOLS: Final = {"variableSymbol": 10, "specificSymbol": 10, "constantSymbol": 4}
_LIMITS: Final = {"recipientName": 140, "message": 140, "reference": 35, "externalId": 255}
_EVENTS: Final = {
    "see": ({"CREATED"}, "SEEN"),
    "authorise": ({"CREATED", "SEEN"}, "PROCESSING"),
    "cancel": ({"CREATED", "SEEN"}, "FAILED"),
    "withdraw": ({"CREATED", "SEEN"}, "WITHDRAWN"),
    "book": ({"PROCESSING", "CONFIRMED"}, "BOOKED"),
    "fail": ({"PROCESSING", "CONFIRMED"}, "FAILED"),
    "expire": ({"CREATED", "SEEN"}, "EXPIRED"),
}
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Authorise payment</title></head>
<body><h1>Everifin Test Bank</h1><p>Pay {amount} {currency} to {name} ({iban})</p>
<form id="pay" method="post" action="{action}">
<button type="submit" name="action" value="authorise">Authorise</button>
<button type="submit" name="action" value="cancel">Cancel</button></form></body></html>
"""


@attrs.define
class SandboxEverifinPayment:
    """A payment as the sandbox holds it; ``owner`` is ``user:{name}`` or ``paygate``."""

    id: str
    owner: str
    amount: Decimal
    body: dict[str, Any]
    created_at: float
    status: str = "CREATED"

    @property
    def external_id(self) -> str | None:
        found = self.body.get("externalId")
        return found if isinstance(found, str) else None


class EverifinPaymentService:
    """BankConnect's and Paygate's payments, and Paygate's webhooks."""

    def __init__(self, state: SandboxState, keycloak: KeycloakService) -> None:
        self.state = state
        self.keycloak = keycloak
        self.payments: dict[str, SandboxEverifinPayment] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.hooks = PaygateHooks(state)
        self._client_tokens: dict[str, float] = {}

    def routes(self) -> list[web.RouteDef]:
        realm = f"/auth/realms/{self.state.config.paygate_realm}/protocol/openid-connect"
        user, client = self._user, self._client
        return [
            web.post("/v1/payments", user(self.create)),
            web.get("/v1/payments", user(self.list)),
            web.get("/v1/payments/{id}", user(self.detail)),
            web.delete("/v1/payments/{id}", user(self.withdraw)),
            web.post(realm + "/token", self.paygate_token),
            web.post(PAYGATE + "/api/v1/link", client(self.create)),
            web.post(PAYGATE + "/api/v1/payments", client(self.create)),
            web.patch(PAYGATE + "/api/v1/payments/{id}", client(self.process)),
            web.get(PAYGATE + "/api/v1/payments", client(self.list)),
            web.get(PAYGATE + "/api/v1/payments/{id}", client(self.detail)),
            web.delete(PAYGATE + "/api/v1/payments/{id}", client(self.withdraw)),
            web.get(PAYGATE + "/api/v1/banks", client(self.banks)),
            web.post(PAYGATE + "/api/v2/orders", client(self.create_order)),
            web.get(PAYGATE + "/api/v2/orders/{id}", client(self.order)),
            web.get(_PAGE_PATH, self.page),
            web.post(_PAGE_PATH, self.page_action),
            web.post("/_sandbox/everifin/payments/{id}", self._control_steer),
        ]

    async def close(self, _app: web.Application) -> None:
        """Stop deliveries in progress (the app's cleanup)."""
        await self.hooks.close()

    # -- what tests steer ----------------------------------------------------------------------

    def steer(self, payment_id: str, event: str) -> SandboxEverifinPayment:
        """Apply ``event`` (``see``, ``authorise``, ``cancel``, ``withdraw``, ``book``,
        ``fail``, ``expire``) to a payment.

        Raises:
            KeyError: No such payment.
            ValueError: The event does not apply in the payment's status.
        """
        payment = self.payments[payment_id]
        sources, target = _EVENTS[event]
        if payment.status not in sources:
            raise ValueError(f"payment {payment_id} is {payment.status}: cannot {event}")
        payment.status = target
        self.state.count(f"everifin_payments.{event}")
        self._changed(payment)
        return payment

    def by_reference(self, reference: str) -> list[SandboxEverifinPayment]:
        """The payments created with this ``externalId``."""
        return [p for p in self.payments.values() if p.external_id == reference]

    def _changed(self, payment: SandboxEverifinPayment) -> None:
        if payment.owner != "paygate":
            return
        data = {"paymentId": payment.id, "status": payment.status}
        for name in ("externalId", "hookData"):
            if name in payment.body:
                data[name] = payment.body[name]
        self.hooks.queue("payment.statusChange", data)

    # -- authentication ------------------------------------------------------------------------

    def _user(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            token = bearer(request)
            access = self.keycloak.access.get(token) if token else None
            if access is None or access.expires_at <= self.state.clock.now():
                return _error(401, "UNAUTHORIZED", "Unauthorized")
            if "pis" not in access.session.scope.split():
                return _error(403, "FORBIDDEN", "Payment initiation needs scope pis")
            response: web.StreamResponse = await handler(request, f"user:{access.session.user}")
            return response

        return guarded

    def _client(self, handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            expires = self._client_tokens.get(bearer(request) or "")
            if expires is None or expires <= self.state.clock.now():
                return _error(401, "UNAUTHORIZED", "Unauthorized")
            response: web.StreamResponse = await handler(request, "paygate")
            return response

        return guarded

    async def paygate_token(self, request: web.Request) -> web.Response:
        """``POST .../everifin_paygate/.../token``: ``client_credentials`` only."""
        form = await form_fields(request) or {}
        config = self.state.config
        self.state.count(f"token_requests.paygate_{form.get('grant_type', 'missing')}")
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"},
                status=400,
            )
        if form.get("client_id") != config.paygate_client_id or not secrets.compare_digest(
            form.get("client_secret", ""), config.paygate_client_secret
        ):
            return web.json_response(
                {"error": "unauthorized_client", "error_description": "Invalid client"},
                status=401,
            )
        token = new_token("pg_at")
        ttl = config.keycloak_access_ttl
        self._client_tokens[token] = self.state.clock.now() + ttl
        body = {"access_token": token, "expires_in": int(ttl), "refresh_expires_in": 0}
        return web.json_response(body | {"token_type": "Bearer", "not-before-policy": 0})

    # -- payments ------------------------------------------------------------------------------

    def _mine(self, request: web.Request, owner: str) -> SandboxEverifinPayment | None:
        payment = self.payments.get(request.match_info["id"])
        return payment if payment is not None and payment.owner == owner else None

    def _json(self, request: web.Request, payment: SandboxEverifinPayment) -> dict[str, Any]:
        page = str(request.url.origin()) + _PAGE_PATH.format(id=payment.id)
        fields = {k: v for k, v in payment.body.items() if k not in ("amount", "redirectUrl")}
        return fields | {
            "id": payment.id,
            "status": payment.status,
            "amount": float(payment.amount),
            "link": page if payment.status in ("CREATED", "SEEN") else None,
            "createdAt": _instant(payment.created_at),
        }

    async def create(self, request: web.Request, owner: str) -> web.Response:
        """``POST /v1/payments``, ``/api/v1/link``, ``/api/v1/payments`` -> 201 (``CREATED``)."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = _invalid(body)
        if problem is not None:
            return _error(400, "VALIDATION_ERROR", "Invalid payment", problem)
        payment = SandboxEverifinPayment(
            f"pay-{secrets.token_hex(8)}",
            owner,
            Decimal(str(body["amount"])),
            body,
            self.state.clock.now(),
        )
        self.payments[payment.id] = payment
        self.state.count("everifin_payments.created")
        self._changed(payment)
        response = _ok(self._json(request, payment))
        response.set_status(201)
        return response

    async def list(self, request: web.Request, owner: str) -> web.Response:
        """Paged, oldest first; filters ``externalId`` and ``status[]``."""
        query = request.query
        statuses = set(query.getall("status[]", []))
        found = [
            self._json(request, p)
            for p in self.payments.values()
            if p.owner == owner
            and query.get("externalId") in (None, p.external_id)
            and (not statuses or p.status in statuses)
        ]
        try:
            page, per_page = int(query.get("page", "1")), int(query.get("countPerPage", "50"))
        except ValueError:
            return _error(400, "INVALID_PAGINATION", "page and countPerPage are numbers")
        if page < 1 or not 1 <= per_page <= 500:
            return _error(400, "INVALID_PAGINATION", "page >= 1 and countPerPage 1..500")
        last = max(1, -(-len(found) // per_page))
        chunk = found[(page - 1) * per_page : page * per_page]
        pagination = {"page": page, "countPerPage": per_page, "countTotal": len(found)}
        return _ok(chunk, pagination=pagination | {"first": 1, "last": last})

    async def detail(self, request: web.Request, owner: str) -> web.Response:
        payment = self._mine(request, owner)
        if payment is None:
            return _error(404, "PAYMENT_NOT_FOUND", "Payment not found")
        return _ok(self._json(request, payment))

    async def withdraw(self, request: web.Request, owner: str) -> web.Response:
        payment = self._mine(request, owner)
        if payment is None:
            return _error(404, "PAYMENT_NOT_FOUND", "Payment not found")
        if payment.status not in _EVENTS["withdraw"][0]:
            return _error(409, "PAYMENT_NOT_WITHDRAWABLE", f"Payment is {payment.status}")
        self.steer(payment.id, "withdraw")
        return _ok(self._json(request, payment))

    async def process(self, request: web.Request, owner: str) -> web.Response:
        """``PATCH /api/v1/payments/{id}`` with ``senderIban``: the payer authorised it."""
        payment = self._mine(request, owner)
        if payment is None:
            return _error(404, "PAYMENT_NOT_FOUND", "Payment not found")
        body = await request.json()
        if payment.status not in _EVENTS["authorise"][0]:
            return _error(409, "PAYMENT_NOT_PROCESSABLE", f"Payment is {payment.status}")
        payment.body["senderIban"] = body.get("senderIban")
        self.steer(payment.id, "authorise")
        return _ok(self._json(request, payment))

    async def banks(self, request: web.Request, owner: str) -> web.Response:
        country = request.query.get("countryCode", "SVK")
        return _ok([{"id": "EFT", "name": "Everifin Test Bank", "countryCode": country}])

    async def create_order(self, request: web.Request, owner: str) -> web.Response:
        body = await request.json()
        order = {
            "id": f"ord-{secrets.token_hex(6)}",
            "status": "UNPAID",
            "amount": body.get("amount"),
            "currency": body.get("currency", "EUR"),
            "externalId": body.get("externalId"),
        }
        self.orders[order["id"]] = order
        response = _ok(order)
        response.set_status(201)
        return response

    async def order(self, request: web.Request, owner: str) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _error(404, "ORDER_NOT_FOUND", "Order not found")
        return _ok(order)

    # -- the user's authorization page ---------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None or payment.status not in ("CREATED", "SEEN"):
            return web.Response(status=404, text="No payment to authorise")
        if payment.status == "CREATED":
            self.steer(payment.id, "see")
        text = _PAGE.format(
            amount=payment.amount,
            currency=html.escape(str(payment.body.get("currency", "EUR"))),
            name=html.escape(str(payment.body.get("recipientName"))),
            iban=html.escape(str(payment.body.get("recipientIban"))),
            action=html.escape(request.path),
        )
        return web.Response(text=text, content_type="text/html")

    async def page_action(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        form = await form_fields(request) or {}
        action = form.get("action")
        if payment is None or action not in ("authorise", "cancel"):
            return web.Response(status=400, text="Bad request")
        try:
            self.steer(payment.id, action)
        except ValueError as exc:
            return web.Response(status=409, text=str(exc))
        target = payment.body.get("redirectUrl")
        if isinstance(target, str):
            raise web.HTTPFound(f"{target}?paymentId={payment.id}&status={payment.status}")
        return web.Response(text=f"Payment {payment.status}", content_type="text/html")

    async def _control_steer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            payment = self.steer(request.match_info["id"], str(body["event"]))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"id": payment.id, "status": payment.status})


def _instant(seconds: float) -> str:
    return _iso(dt.datetime.fromtimestamp(seconds, dt.UTC))


def _invalid(body: Any) -> str | None:
    """Why a payment body is refused (Everifin's limits), or ``None``."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for name in ("amount", "currency", "recipientIban", "recipientName", "externalId"):
        if body.get(name) in (None, ""):
            return f"{name} is required"
    amount = body["amount"]
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return "amount must be a number"
    if isinstance(amount, bool) or not value.is_finite() or value <= 0:
        return "amount must be positive"
    if value != value.quantize(Decimal("0.01")):
        return "amount has at most two decimals"
    for name, limit in _LIMITS.items():
        value_text = body.get(name)
        if value_text is not None and (not isinstance(value_text, str) or len(value_text) > limit):
            return f"{name} has at most {limit} characters"
    for name, digits in _SYMBOLS.items():
        symbol = body.get(name)
        if symbol is not None and not (
            isinstance(symbol, str) and symbol.isdigit() and len(symbol) <= digits
        ):
            return f"{name} has 1 to {digits} digits"
    return None
