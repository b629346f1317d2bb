"""finAPI Web Form 2.0 payments: the user authorises a payment in finAPI's form.

Each method creates a form (201 ``WebForm``) whose ``url`` the user opens; once the form is
``COMPLETED`` its ``payload.payment_id`` (or ``payload.standing_order_id``) names the payment
in finAPI Access (:meth:`~aiofinaccess.finapi.FinApiPayments.payments` reads its status).
Follow a form with :meth:`~aiofinaccess.finapi.WebForms.wait_until_finished`.

Creating a form moves no money, but each form the user completes makes one payment: the
``reference`` (``X-Request-Id``) is required here too, and a form is created once per
reference as a payment is (:mod:`aiofinaccess.api.payment_once`): written down first, asked
again it is the recorded form; an answer lost after the request may have reached finAPI is
:class:`~aiofinaccess.errors.PaymentOutcomeUnknown` for good, never a second form.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ...core.clock import Clock
from ...core.errors import ValidationError
from ...core.payment_records import PaymentRecords
from ..money import iban
from ..payment_ledger import PaymentTimeouts, check_reference, fingerprint
from ..payment_once import open_unlisted
from ..pipeline import Endpoint, EndUser
from ..route_tables import check_routes
from .host import web_form_client
from .payment_models import DirectDebit, StandingOrder, Transfer, check_orders
from .webform import WebForm, _check_url, _read_form

if TYPE_CHECKING:
    from ...session.manager import SessionManager

__all__ = ["FormOptions", "PaymentFormRoutes", "PaymentForms"]


@attrs.frozen(slots=True)
class PaymentFormRoutes:
    """Where the payment forms live, relative to the provider's ``web_form_url``."""

    standalone_payment: Endpoint = Endpoint(
        "POST", "/api/webForms/standalonePayment", expect=(201,)
    )
    payment_with_account: Endpoint = Endpoint(
        "POST", "/api/webForms/paymentWithAccountId", expect=(201,)
    )
    direct_debit_with_account: Endpoint = Endpoint(
        "POST", "/api/webForms/directDebitWithAccountId", expect=(201,)
    )
    standing_order: Endpoint = Endpoint("POST", "/api/webForms/standingOrder", expect=(201,))


@attrs.frozen(slots=True)
class FormOptions:
    """What every payment form takes besides its orders.

    Attributes:
        redirect_url: Where finAPI sends the user after the form (https).
        finalised_callback: finAPI POSTs ``{webFormId, status}`` here when the form ends.
        profile_id: A Web Form profile (36 characters).
    """

    redirect_url: str | None = None
    finalised_callback: str | None = None
    profile_id: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_url("redirect_url", self.redirect_url, 1)
        _check_url("finalised_callback", self.finalised_callback, 0)
        if self.profile_id is not None and len(self.profile_id) != 36:
            raise ValidationError("profile_id must be 36 characters long")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.redirect_url is not None:
            body["redirectUrl"] = self.redirect_url
        if self.finalised_callback is not None:
            body["callbacks"] = {"finalised": self.finalised_callback}
        if self.profile_id is not None:
            body["profileId"] = self.profile_id
        return body


def _date(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


class PaymentForms:
    """Web Form 2.0 payment forms for one finAPI provider's users (user tokens).

    Args:
        manager: Holds each user's finAPI tokens.
        provider: A registered finAPI provider with a ``web_form_url``.
        routes: The form paths.
        timeouts, records, clock: As for :class:`~aiofinaccess.finapi.FinApiPayments`
            (``timeouts.settle_after`` does not apply: a form's request is never listed).

    Raises:
        ConfigurationError: The provider has no Web Form host, the store keeps no
            payment records, or a route lost its leading slash or its default's placeholders.
    """

    def __init__(
        self,
        manager: SessionManager,
        provider: str = "finapi",
        *,
        routes: PaymentFormRoutes | None = None,
        timeouts: PaymentTimeouts = PaymentTimeouts(),  # noqa: B008  (frozen)
        records: PaymentRecords | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.routes = check_routes(routes or PaymentFormRoutes())
        self._api = web_form_client(manager, provider, timeouts.request)
        self._ledger = open_unlisted(
            manager, f"{provider}/forms", timeouts, records=records, clock=clock
        )

    def __repr__(self) -> str:
        return f"PaymentForms({self._api!r})"

    async def _create(  # noqa: PLR0917  (private; every caller passes all six)
        self,
        endpoint: Endpoint,
        user: str,
        body: dict[str, Any],
        reference: str,
        options: FormOptions | None,
        end_user: EndUser | None,
    ) -> WebForm:
        body = {
            **{name: value for name, value in body.items() if value is not None},
            **(options or FormOptions()).body(),
        }
        reference = check_reference(reference)

        async def send() -> dict[str, Any]:
            response = await self._api.call(
                endpoint, subject=user, json=body, end_user=end_user, request_id=reference
            )
            _read_form(response.body, endpoint.path)  # or raise: a form's JSON object
            form: dict[str, Any] = json.loads(response.body)
            return form

        request = fingerprint(f"{endpoint.method} {endpoint.path}", body)
        document = await self._ledger.create(user, reference, request, send)
        return _read_form(json.dumps(document).encode(), endpoint.path)

    async def standalone_payment(
        self,
        user: str,
        transfers: Sequence[Transfer],
        *,
        reference: str,
        sender_iban: str | None = None,
        execution_date: dt.date | None = None,
        instant: bool = False,
        options: FormOptions | None = None,
        end_user: EndUser | None = None,
    ) -> WebForm:
        """A form in which the user pays ``transfers`` from any account (they log in to their
        bank there). The completed form's ``payload.payment_id`` is the payment.

        Raises:
            PaymentFieldError: An order or the reference breaks a rule; nothing was sent.
            BadRequestError: finAPI refused the body (the error body names the fields).
        """
        check_orders(transfers)
        body = {
            "orders": [order.form_order("recipient") for order in transfers],
            "executionDate": _date(execution_date),
            "instantPayment": instant,
            "sender": None if sender_iban is None else {"iban": iban(sender_iban, "sender_iban")},
        }
        return await self._create(
            self.routes.standalone_payment, user, body, reference, options, end_user
        )

    async def payment_with_account(
        self,
        user: str,
        account_id: int,
        transfers: Sequence[Transfer],
        *,
        reference: str,
        execution_date: dt.date | None = None,
        options: FormOptions | None = None,
        end_user: EndUser | None = None,
    ) -> WebForm:
        """A form in which the user authorises ``transfers`` from their imported account."""
        check_orders(transfers)
        body = {
            "sender": {"accountId": account_id},
            "orders": [order.form_order("recipient") for order in transfers],
            "executionDate": _date(execution_date),
        }
        return await self._create(
            self.routes.payment_with_account, user, body, reference, options, end_user
        )

    async def direct_debit_with_account(
        self,
        user: str,
        account_id: int,
        debits: Sequence[DirectDebit],
        *,
        reference: str,
        execution_date: dt.date,
        direct_debit_type: Literal["BASIC", "B2B"] = "BASIC",
        sequence_type: Literal["OOFF", "FRST", "RCUR", "FNAL"] = "OOFF",
        options: FormOptions | None = None,
        end_user: EndUser | None = None,
    ) -> WebForm:
        """A form in which the user authorises collecting ``debits`` into their account."""
        check_orders(debits)
        body = {
            "receiver": {"accountId": account_id},
            "orders": [order.form_order("payer") for order in debits],
            "executionDate": execution_date.isoformat(),
            "directDebitType": direct_debit_type,
            "sequenceType": sequence_type,
        }
        return await self._create(
            self.routes.direct_debit_with_account, user, body, reference, options, end_user
        )

    async def standing_order(
        self,
        user: str,
        order: StandingOrder,
        *,
        reference: str,
        sender_iban: str | None = None,
        options: FormOptions | None = None,
        end_user: EndUser | None = None,
    ) -> WebForm:
        """A form in which the user sets up ``order``; the completed form's
        ``payload.standing_order_id`` is the standing order."""
        body = {
            **order.form_order("recipient"),
            "sender": None if sender_iban is None else {"iban": iban(sender_iban, "sender_iban")},
        }
        return await self._create(
            self.routes.standing_order, user, body, reference, options, end_user
        )
