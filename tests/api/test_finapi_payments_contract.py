"""Contract: every finAPI payment exchange, as the SDK sends it and the sandbox answers it,
validates against finAPI's specs (tests/specs/finapi-access-v1-payments.yaml and
tests/specs/finapi-webform2-payments.yaml, cut from ../shared/specs)."""

from __future__ import annotations

import datetime as dt

import pytest
from openapi_core import OpenAPI

from aiofinaccess import SessionManager
from aiofinaccess.errors import UnprocessableEntityError
from aiofinaccess.finapi import (
    DirectDebit,
    FinApiData,
    FinApiPayments,
    FormOptions,
    PaymentForms,
    StandingOrder,
    Transfer,
    WebForms,
)
from aiofinaccess.payments import Money, new_reference
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.sandbox.state import Exchange
from tests.support.contract import access_spec, spec, validate_exchange
from tests.support.finapi_journey import import_connection, press

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")

ACCESS: OpenAPI = access_spec("finapi-access-v1-payments.yaml")
FORMS: OpenAPI = spec("finapi-webform2-payments.yaml")
BOB = "DE89370400440532013000"
USER = "contract-payments"
PAYMENT_PATHS = ("/api/v1/payments", "/api/v1/standingOrders")
FORM_PATHS = (
    "/api/webForms/standalonePayment",
    "/api/webForms/paymentWithAccountId",
    "/api/webForms/directDebitWithAccountId",
    "/api/webForms/standingOrder",
)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(finapi_version="v1", record_requests=True)


def debit() -> DirectDebit:
    return DirectDebit(
        Money("9.99"),
        "Carol",
        "GB82WEST12345698765432",
        counterpart_bic="DRESDEFF700",
        purpose="Membership",
        end_to_end_id="E2E-1",
        sepa_purpose_code="OTHR",
        mandate_id="M-1",
        mandate_date=dt.date(2026, 1, 2),
        creditor_id="DE98ZZZ09999999999",
        counterpart_address="Main St 1, Berlin",
        counterpart_country="DE",
    )


def order() -> StandingOrder:
    return StandingOrder(
        Money("50"),
        "Landlord",
        BOB,
        purpose="Rent",
        start_date=dt.date(2027, 1, 1),
        end_date=dt.date(2027, 12, 31),
        frequency="MONTHLY",
    )


async def test_every_payment_exchange_validates(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """201 and 200 of every Access payment operation and every payment form, the forms read
    back after completion, and a 422 (a second submit)."""
    await import_connection(sandbox_manager, USER)
    [account, *_] = await FinApiData(sandbox_manager).accounts(USER)
    payments = FinApiPayments(sandbox_manager)
    forms = PaymentForms(sandbox_manager)
    transfer = Transfer(
        Money("12.34"),
        "Bob",
        BOB,
        counterpart_bic="COBADEFF",
        purpose="Invoice 1",
        end_to_end_id="E2E-2",
        sepa_purpose_code="GDDS",
    )
    created = await payments.create_money_transfer(
        USER,
        [transfer, transfer],
        reference=new_reference(),
        account_id=account.id,
        execution_date=dt.date(2026, 12, 24),
        single_booking=True,
    )
    standalone = await payments.create_money_transfer(
        USER, [transfer], reference=new_reference(), iban_from=BOB, instant=False
    )
    await payments.submit(USER, created.id, interface="FINTS_SERVER")
    with pytest.raises(UnprocessableEntityError):
        await payments.submit(USER, created.id)
    debited = await payments.create_direct_debit(
        USER,
        [debit()],
        reference=new_reference(),
        account_id=account.id,
        execution_date=dt.date(2026, 12, 24),
        sequence_type="FRST",
    )
    sandbox.service("payments").steer(created.id, "book")
    listed = await payments.payments(USER, account_ids=[account.id])
    assert {p.id for p in listed} == {created.id, debited.id}
    assert standalone.account_id is None
    record = await payments.create_standing_order(
        USER, order(), reference=new_reference(), account_id=account.id
    )
    await payments.submit_standing_order(USER, record.id)
    await payments.standing_orders(USER)

    options = FormOptions(finalised_callback="https://app.example.com/hooks/paid")
    made = [
        await forms.standalone_payment(
            USER,
            [transfer],
            reference=new_reference(),
            sender_iban=BOB,
            execution_date=dt.date(2026, 12, 24),
            options=options,
        ),
        await forms.payment_with_account(USER, account.id, [transfer], reference=new_reference()),
        await forms.direct_debit_with_account(
            USER,
            account.id,
            [debit()],
            reference=new_reference(),
            execution_date=dt.date(2026, 12, 24),
            direct_debit_type="B2B",
        ),
        await forms.standing_order(USER, order(), reference=new_reference(), sender_iban=BOB),
    ]
    for form in made:
        await press(form)
        done = await WebForms(sandbox_manager).get(USER, form.id)
        assert done.payload.payment_id or done.payload.standing_order_id

    journal = sandbox.state.journal
    checked = 0
    form_paths = {f"/api/webForms/{form.id}" for form in made}
    for exchange in journal:
        if exchange.path.startswith(PAYMENT_PATHS):
            validate_exchange(ACCESS, "https://sandbox.finapi.io", exchange)
        elif exchange.path in FORM_PATHS or exchange.path in form_paths:
            validate_exchange(FORMS, "https://webform-sandbox.finapi.io", exchange)
        else:
            continue
        checked += 1
    statuses = sorted({(e.method, e.path.split("/api/")[1], e.status) for e in journal if _ours(e)})
    # 12 Access exchanges (3 the highest payment id read before each creation), 4 forms
    # created and read back
    assert checked == 20, statuses
    assert ("POST", "v1/payments/submit", 422) in statuses


def _ours(exchange: Exchange) -> bool:
    return exchange.path.startswith(PAYMENT_PATHS) or exchange.path in FORM_PATHS
