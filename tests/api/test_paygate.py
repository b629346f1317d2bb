"""Everifin Paygate against the sandbox: the merchant's client token (realm everifin_paygate,
client_credentials), payment links and embedded payments created once per reference, their
states, withdrawal, banks and orders; the payer's context as Paygate's sender headers."""

from __future__ import annotations

import pytest

from aiofinaccess import SessionManager
from aiofinaccess.api.money import Money
from aiofinaccess.api.pipeline import EndUser
from aiofinaccess.errors import ConflictError, InvalidAmountError, PaymentNotCreated
from aiofinaccess.everifin import Paygate, PaymentOrder
from aiofinaccess.payments import new_reference
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.everifin_journey import SK_IBAN, with_paygate

ORDER = PaymentOrder(Money("19.90"), SK_IBAN, "Shop", variable_symbol="2026001")


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(record_requests=True)


@pytest.fixture
async def paygate(sandbox: Sandbox, sandbox_manager: SessionManager) -> Paygate:
    with_paygate(sandbox_manager, sandbox)
    return Paygate(sandbox_manager)


async def test_a_link_is_made_once_per_reference_with_the_client_token(
    sandbox: Sandbox, paygate: Paygate
) -> None:
    reference = new_reference()
    link = await paygate.create_link(ORDER, reference=reference, hook_data={"cart": 7})
    assert (link.status, link.external_id, link.link is not None) == ("CREATED", reference, True)
    assert await paygate.create_link(ORDER, reference=reference, hook_data={"cart": 7}) == link
    assert await paygate.payments(external_id=reference) == [link]
    assert sandbox.stats()["token_requests"] == {"paygate_client_credentials": 1}
    [sent] = [e for e in sandbox.state.journal if e.path.endswith("/api/v1/link")]
    assert sent.headers["Authorization"].startswith("Bearer pg_at_")
    assert b'"externalId"' in sent.body


async def test_an_embedded_payment_carries_the_sender_and_is_processed(
    sandbox: Sandbox, paygate: Paygate
) -> None:
    payer = EndUser(ip_address="203.0.113.7", user_agent="Mozilla/5.0 (payer)")
    payment = await paygate.init_payment(ORDER, reference=new_reference(), sender=payer)
    [sent] = [e for e in sandbox.state.journal if e.method == "POST" and "/payments" in e.path]
    assert (sent.headers["x-ef-sender-ip"], sent.headers["x-ef-sender-user-agent"]) == (
        "203.0.113.7",
        "Mozilla/5.0 (payer)",
    )
    processed = await paygate.process(payment.id, "sk31 1200 0000 1987 4263 7541")
    assert (processed.status, processed.sender_iban) == ("PROCESSING", SK_IBAN)
    sandbox.service("everifin_payments").steer(payment.id, "book")
    assert (await paygate.payment(payment.id)).final


async def test_only_an_unauthorised_payment_is_withdrawn(
    sandbox: Sandbox, paygate: Paygate
) -> None:
    payment = await paygate.create_link(ORDER, reference=new_reference())
    await paygate.withdraw(payment.id)
    assert (await paygate.payment(payment.id)).status == "WITHDRAWN"
    with pytest.raises(ConflictError):
        await paygate.withdraw(payment.id)
    assert [p.id for p in await paygate.payments(status="WITHDRAWN")] == [payment.id]


async def test_banks_and_orders(paygate: Paygate) -> None:
    [bank] = await paygate.banks("SVK")
    assert (bank.id, bank.country_code) == ("EFT", "SVK")
    order = await paygate.create_order("45.00", reference=new_reference())
    assert (order.status, str(order.amount)) == ("UNPAID", "45.00")
    assert await paygate.order(order.id) == order
    with pytest.raises(InvalidAmountError):
        await paygate.create_order("-1", reference=new_reference())


async def test_a_refused_link_is_not_created(sandbox: Sandbox, paygate: Paygate) -> None:
    sandbox.set_faults(burst=1, kinds=("429",), scope="api", methods=("POST",), retry_after=120)
    reference = new_reference()
    with pytest.raises(PaymentNotCreated) as refused:
        await paygate.create_link(ORDER, reference=reference)
    assert refused.value.reference == reference
    assert sandbox.service("everifin_payments").by_reference(reference) == []
