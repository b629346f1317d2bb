"""finAPI payments against the sandbox: Access payments and standing orders through their
states, the payment forms' results, and faults after commit (never sent twice)."""

from __future__ import annotations

import datetime as dt

import pytest

from aiofinaccess import SessionManager
from aiofinaccess.errors import InvalidIbanError, PaymentFieldError
from aiofinaccess.finapi import (
    DirectDebit,
    FinApiData,
    FinApiPayments,
    PaymentForms,
    PaymentStatus,
    StandingOrder,
    Transfer,
    WebForms,
)
from aiofinaccess.payments import Money, new_reference
from aiofinaccess.sandbox import Sandbox
from tests.support.finapi_journey import import_connection, press

BOB = "DE89370400440532013000"


async def account_of(manager: SessionManager, user: str) -> int:
    await import_connection(manager, user)
    accounts = await FinApiData(manager).accounts(user)
    return accounts[0].id


def debit() -> DirectDebit:
    return DirectDebit(
        Money("9.99"),
        "Carol",
        "GB82 WEST 1234 5698 7654 32",
        mandate_id="M-1",
        mandate_date=dt.date(2026, 1, 2),
        creditor_id="DE98ZZZ09999999999",
    )


async def test_a_money_transfer_is_created_submitted_and_booked(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    account = await account_of(sandbox_manager, "payer")
    payments = FinApiPayments(sandbox_manager)
    reference = new_reference()
    transfers = [
        Transfer(Money("12.5"), "Bob", BOB, purpose="Invoice 7"),
        Transfer(Money(1), "Bob", BOB),
    ]
    created = await payments.create_money_transfer(
        "payer", transfers, reference=reference, account_id=account
    )
    assert (created.status, created.amount, created.order_count) == ("OPEN", 13.5, 2)
    submitted = await payments.submit("payer", created.id)
    assert submitted.status == PaymentStatus.PENDING
    sandbox.service("payments").steer(created.id, "book")
    (listed,) = await payments.payments("payer", ids=[created.id])
    assert listed.status == "SUCCESSFUL"
    assert listed.final
    assert [p.id for p in sandbox.service("payments").by_reference(reference)] == [created.id]


async def test_direct_debits_and_standing_orders(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    account = await account_of(sandbox_manager, "creditor")
    payments = FinApiPayments(sandbox_manager)
    created = await payments.create_direct_debit(
        "creditor",
        [debit()],
        reference=new_reference(),
        account_id=account,
        execution_date=dt.date(2026, 12, 24),
    )
    assert (created.type, created.status) == ("DIRECT_DEBIT", "OPEN")
    order = StandingOrder(
        Money("50"), "Landlord", BOB, start_date=dt.date(2027, 1, 1), frequency="MONTHLY"
    )
    record = await payments.create_standing_order(
        "creditor", order, reference=new_reference(), account_id=account
    )
    assert (record.frequency, record.status) == ("MONTHLY", "OPEN")
    submitted = await payments.submit_standing_order("creditor", record.id)
    assert submitted.status == "PENDING"
    assert [o.id for o in await payments.standing_orders("creditor")] == [record.id]


@pytest.mark.parametrize("form", ["standalone", "with_account", "direct_debit", "standing_order"])
async def test_a_completed_payment_form_names_its_payment(
    sandbox: Sandbox, sandbox_manager: SessionManager, form: str
) -> None:
    account = await account_of(sandbox_manager, "former")
    forms = PaymentForms(sandbox_manager)
    reference = new_reference()
    transfers = [Transfer(Money("3.10"), "Bob", BOB)]
    if form == "standalone":
        web_form = await forms.standalone_payment("former", transfers, reference=reference)
    elif form == "with_account":
        web_form = await forms.payment_with_account(
            "former", account, transfers, reference=reference
        )
    elif form == "direct_debit":
        web_form = await forms.direct_debit_with_account(
            "former", account, [debit()], reference=reference, execution_date=dt.date(2026, 12, 24)
        )
    else:
        order = StandingOrder(
            Money("3.10"), "Bob", BOB, start_date=dt.date(2027, 1, 1), frequency="ANNUAL"
        )
        web_form = await forms.standing_order("former", order, reference=reference)
    assert web_form.payload.payment_id is None
    await press(web_form)
    done = await WebForms(sandbox_manager).get("former", web_form.id)
    assert done.status == "COMPLETED"
    made = sandbox.service("payments").by_reference(reference)
    assert len(made) == 1
    assert made[0].status == "PENDING"  # authorised by the user in the form
    if form == "standing_order":
        assert done.payload.standing_order_id == made[0].id
    else:
        assert done.payload.payment_id == made[0].id
        (listed,) = await FinApiPayments(sandbox_manager).payments("former", ids=[made[0].id])
        assert listed.status == "PENDING"


async def test_an_aborted_form_makes_no_payment(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    await account_of(sandbox_manager, "quitter")
    reference = new_reference()
    form = await PaymentForms(sandbox_manager).standalone_payment(
        "quitter", [Transfer(Money(5), "Bob", BOB)], reference=reference
    )
    await press(form, "abort")
    assert sandbox.service("payments").by_reference(reference) == []


@pytest.mark.parametrize("kind", ["500_after_commit", "drop_after_commit"])
async def test_a_fault_after_commit_is_reconciled_never_sent_again(
    sandbox: Sandbox, sandbox_manager: SessionManager, kind: str
) -> None:
    account = await account_of(sandbox_manager, "unlucky")
    payments = FinApiPayments(sandbox_manager)
    reference = new_reference()
    sandbox.set_faults(burst=1, kinds=(kind,), scope="api", methods=("POST",))
    found = await payments.create_money_transfer(
        "unlucky", [Transfer(Money(7), "Bob", BOB)], reference=reference, account_id=account
    )
    made = sandbox.service("payments").by_reference(reference)
    assert [p.id for p in made] == [found.id]  # created once, found by listing, not re-sent
    assert sandbox.stats()["faults_injected"][kind] == 1
    (listed,) = await payments.payments("unlucky")
    assert listed.id == found.id


async def test_steering_follows_the_state_machine(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    account = await account_of(sandbox_manager, "steer")
    payments = FinApiPayments(sandbox_manager)
    made = await payments.create_money_transfer(
        "steer", [Transfer(Money(2), "Bob", BOB)], reference=new_reference(), account_id=account
    )
    service = sandbox.service("payments")
    with pytest.raises(ValueError, match="cannot book"):
        service.steer(made.id, "book")
    assert service.steer(made.id, "expire").status == "DISCARDED"
    with pytest.raises(ValueError, match="cannot authorise"):
        service.steer(made.id, "authorise")


async def test_orders_are_checked_before_anything_is_sent(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    payments = FinApiPayments(sandbox_manager)
    with pytest.raises(InvalidIbanError):
        Transfer(Money(1), "Bob", "DE89370400440532013001")
    with pytest.raises(PaymentFieldError, match="purpose"):
        Transfer(Money(1), "Bob", BOB, purpose="x" * 141)
    with pytest.raises(PaymentFieldError, match="counterpart_name"):
        Transfer(Money(1), "x" * 71, BOB)
    with pytest.raises(PaymentFieldError, match="reference"):
        await payments.create_money_transfer(
            "nobody", [Transfer(Money(1), "Bob", BOB)], reference="has space", account_id=1
        )
    with pytest.raises(PaymentFieldError, match="EUR"):
        await payments.create_money_transfer(
            "nobody", [Transfer(Money(1, "USD"), "Bob", BOB)], reference="r", iban_from=BOB
        )
    assert sandbox.stats()["api_calls"] == {}
