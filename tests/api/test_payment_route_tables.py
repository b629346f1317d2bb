"""An operator's route table for the payment APIs (whose Everifin paths are UNCERTAIN and meant
to be overridden) is checked when the client is built: a placeholder misspelt, added or
missing, or a path without its leading slash, is a ConfigurationError naming the route, not a
KeyError or a wrong URL once a payment's record is already written."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.api.finapi.payment_forms import PaymentFormRoutes
from aiofinaccess.api.finapi.payments import PaymentRoutes
from aiofinaccess.api.pipeline import Endpoint
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.everifin import (
    BankConnectPaymentRoutes,
    BankConnectPayments,
    Paygate,
    PaygateRoutes,
)
from aiofinaccess.finapi import FinApiPayments, PaymentForms

CASES: list[tuple[Any, Any, str, Endpoint]] = [
    (
        BankConnectPayments,
        BankConnectPaymentRoutes(),
        "payment",
        Endpoint("GET", "/payments/{paymentId}"),
    ),
    (
        BankConnectPayments,
        BankConnectPaymentRoutes(),
        "create",
        Endpoint("POST", "/users/{user}/payments"),
    ),
    (BankConnectPayments, BankConnectPaymentRoutes(), "payments", Endpoint("GET", "payments")),
    (Paygate, PaygateRoutes(), "withdraw", Endpoint("DELETE", "/api/v1/payments")),
    (FinApiPayments, PaymentRoutes(), "money_transfers", Endpoint("POST", "/payments/{kind}")),
    (
        PaymentForms,
        PaymentFormRoutes(),
        "standing_order",
        Endpoint("POST", "api/webForms/standingOrder"),
    ),
]


@pytest.mark.parametrize(("client", "routes", "name", "wrong"), CASES)
async def test_a_wrong_route_is_refused_when_the_client_is_built(
    sandbox_manager: SessionManager, client: Any, routes: Any, name: str, wrong: Endpoint
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        client(sandbox_manager, routes=attrs.evolve(routes, **{name: wrong}))


async def test_a_route_moved_with_its_placeholders_is_taken(
    sandbox_manager: SessionManager,
) -> None:
    moved = Endpoint("GET", "/v2/payment/{payment_id}")
    routes = attrs.evolve(BankConnectPaymentRoutes(), payment=moved)
    assert BankConnectPayments(sandbox_manager, routes=routes).routes.payment == moved
