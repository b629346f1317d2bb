"""Everifin BankConnect payments against the sandbox: the order's limits are typed errors before
anything is sent, the payment goes through its states (the user's page, the bank), and it is
created exactly once per reference: the answer lost after commit is found by its externalId,
a refusal is "not created" carrying the reference, a drop is "unknown" until it can no longer
land (seeded runs: tests/sandbox/test_everifin_payment_runs.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import attrs
import pytest

from aiofinaccess import SessionManager, SQLiteStore
from aiofinaccess.api.money import Money
from aiofinaccess.api.pipeline import Endpoint
from aiofinaccess.errors import (
    InvalidAmountError,
    InvalidIbanError,
    PaymentFieldError,
    PaymentNotCreated,
    PaymentOutcomeUnknown,
    UsageError,
)
from aiofinaccess.everifin import (
    BankConnectPaymentRoutes,
    BankConnectPayments,
    EverifinPaymentStatus,
    Paygate,
    PaymentOrder,
)
from aiofinaccess.payments import new_reference
from aiofinaccess.sandbox import Sandbox, headless_payment
from tests.reliability.payment_runs import AheadClock
from tests.support.everifin_journey import SK_IBAN, pis_user, store_seeded, with_paygate

ORDER = PaymentOrder(Money("12.50"), SK_IBAN, "Bob", message="invoice 7", variable_symbol="2026007")


@pytest.fixture
async def pis(sandbox: Sandbox, sandbox_manager: SessionManager) -> BankConnectPayments:
    await pis_user(sandbox_manager, sandbox, "alice")
    return BankConnectPayments(sandbox_manager, clock=AheadClock())


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"amount": Money("0")}, InvalidAmountError, "amount"),
        ({"recipient_iban": "SK3112000000198742637542"}, InvalidIbanError, "recipient_iban"),
        ({"recipient_name": "x" * 141}, PaymentFieldError, "recipient_name"),
        ({"message": "x" * 141}, PaymentFieldError, "message"),
        ({"reference": "x" * 36}, PaymentFieldError, "reference"),
        ({"variable_symbol": "12345678901"}, PaymentFieldError, "variable_symbol"),
        ({"specific_symbol": "12a"}, PaymentFieldError, "specific_symbol"),
        ({"constant_symbol": "12345"}, PaymentFieldError, "constant_symbol"),
    ],
)
def test_an_order_breaking_a_limit_is_a_typed_error(
    fields: dict[str, object], error: type[PaymentFieldError], field: str
) -> None:
    with pytest.raises(error) as refused:
        attrs.evolve(ORDER, **fields)
    assert refused.value.field == field


def test_the_longest_fields_pass_and_travel_as_everifin_names_them() -> None:
    order = PaymentOrder(
        Money("0.01"),
        "sk31 1200 0000 1987 4263 7541",
        "x" * 140,
        variable_symbol="1" * 10,
        constant_symbol="0308",
    )
    assert order.body() == {
        "amount": 0.01,
        "currency": "EUR",
        "recipientIban": SK_IBAN,
        "recipientName": "x" * 140,
        "variableSymbol": "1" * 10,
        "constantSymbol": "0308",
    }


async def test_a_payment_is_authorised_on_its_page_and_booked(
    sandbox: Sandbox, pis: BankConnectPayments
) -> None:
    reference = new_reference()
    payment = await pis.create_payment("alice", ORDER, reference=reference)
    assert (payment.status, payment.external_id, payment.amount) == ("CREATED", reference, 12.5)
    assert payment.link is not None
    async with aiohttp.ClientSession() as browser:
        await headless_payment(browser, payment.link)
    assert (await pis.payment("alice", payment.id)).status == EverifinPaymentStatus.PROCESSING
    sandbox.service("everifin_payments").steer(payment.id, "book")
    booked = await pis.payment("alice", payment.id)
    assert (booked.status, booked.final) == ("BOOKED", True)
    assert await pis.create_payment("alice", ORDER, reference=reference) == payment  # recorded


async def test_an_unauthorised_payment_can_be_withdrawn_once(pis: BankConnectPayments) -> None:
    payment = await pis.create_payment("alice", ORDER, reference=new_reference())
    await pis.withdraw("alice", payment.id)
    assert (await pis.payment("alice", payment.id)).status == "WITHDRAWN"
    with pytest.raises(Exception, match="409"):
        await pis.withdraw("alice", payment.id)


@pytest.mark.parametrize("kind", ["500_after_commit", "drop_after_commit"])
async def test_an_answer_lost_after_commit_is_found_by_its_reference(
    sandbox: Sandbox, pis: BankConnectPayments, kind: str
) -> None:
    reference = new_reference()
    sandbox.set_faults(burst=1, kinds=(kind,), scope="api", methods=("POST",))
    payment = await pis.create_payment("alice", ORDER, reference=reference)
    made = sandbox.service("everifin_payments").by_reference(reference)
    assert [p.id for p in made] == [payment.id]
    assert pis.reconciliations == {"CREATED": 1}


async def test_a_refusal_is_not_created_and_carries_the_reference(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    body = sandbox.service("keycloak").seed_session("bob", scope="ais")  # no pis
    await store_seeded(sandbox_manager, "bob", body)
    reference = new_reference()
    with pytest.raises(PaymentNotCreated) as refused:
        await BankConnectPayments(sandbox_manager).create_payment("bob", ORDER, reference=reference)
    assert refused.value.reference == reference
    assert "403" in str(refused.value.__cause__)


async def test_a_drop_before_commit_is_unknown_until_it_can_no_longer_land(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    await pis_user(sandbox_manager, sandbox, "carol")
    clock = AheadClock()
    pis = BankConnectPayments(sandbox_manager, clock=clock)
    reference = new_reference()
    sandbox.set_faults(burst=1, kinds=("drop",), scope="api", methods=("POST",))
    with pytest.raises(PaymentOutcomeUnknown) as unknown:
        await pis.create_payment("carol", ORDER, reference=reference)
    assert unknown.value.reference == reference
    clock.ahead += 600
    with pytest.raises(PaymentNotCreated):
        await pis.resolve("carol", reference)
    assert sandbox.service("everifin_payments").by_reference(reference) == []


async def test_a_reference_names_one_request(pis: BankConnectPayments) -> None:
    reference = new_reference()
    await pis.create_payment("alice", ORDER, reference=reference)
    with pytest.raises(UsageError):
        await pis.create_payment("alice", attrs.evolve(ORDER, message="other"), reference=reference)


async def test_the_routes_move(sandbox: Sandbox, sandbox_manager: SessionManager) -> None:
    await pis_user(sandbox_manager, sandbox, "dave")
    routes = attrs.evolve(BankConnectPaymentRoutes(), create=Endpoint("POST", "/nowhere"))
    reference = new_reference()
    with pytest.raises(PaymentNotCreated):  # 404: answered, so surely not created
        await BankConnectPayments(sandbox_manager, routes=routes).create_payment(
            "dave", ORDER, reference=reference
        )


async def test_two_processes_with_one_reference_send_once(sandbox: Sandbox, tmp_path: Path) -> None:
    """Two managers on one SQLite file (as two processes would be), paying through Paygate at
    once under one reference: one POST, and both get its payment."""
    path = tmp_path / "shared.db"
    async with (
        SessionManager(store=SQLiteStore(path)) as one,
        SessionManager(store=SQLiteStore(path)) as two,
    ):
        for manager in (one, two):
            with_paygate(manager, sandbox)
        reference = new_reference()
        sandbox.set_faults(latency=0.3, scope="api", methods=("POST",))
        made = await asyncio.gather(
            *(Paygate(manager).create_link(ORDER, reference=reference) for manager in (one, two))
        )
    assert made[0] == made[1]
    assert [p.id for p in sandbox.service("everifin_payments").by_reference(reference)] == [
        made[0].id
    ]
