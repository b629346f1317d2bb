"""Every money-moving request is written down under its reference before it is sent: finAPI's
standing orders and its four payment forms, and Paygate's orders, like the payments. The same
reference asked again (by this process or another sharing the store) gives the same answer
without a second POST; after an answer lost after commit it is never sent again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.errors import PaymentOutcomeUnknown, UsageError
from aiofinaccess.everifin import Paygate
from aiofinaccess.finapi import FinApiData, FinApiPayments, PaymentForms, StandingOrder, Transfer
from aiofinaccess.payments import Money, new_reference
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.everifin_journey import with_paygate
from tests.support.finapi_journey import import_connection

BOB = "DE89370400440532013000"
ORDER = StandingOrder(
    Money("50"), "Landlord", BOB, start_date=dt.date(2027, 1, 1), frequency="MONTHLY"
)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(record_requests=True)


def posts(sandbox: Sandbox, suffix: str) -> int:
    return sum(1 for e in sandbox.state.journal if e.method == "POST" and e.path.endswith(suffix))


async def test_a_standing_order_is_created_once_per_reference(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    await import_connection(sandbox_manager, "alice")
    payments = FinApiPayments(sandbox_manager)
    reference = new_reference()
    first = await payments.create_standing_order("alice", ORDER, reference=reference)
    again = await FinApiPayments(sandbox_manager).create_standing_order(
        "alice", ORDER, reference=reference
    )
    assert again == first
    assert posts(sandbox, "/standingOrders") == 1
    other = attrs.evolve(ORDER, amount=Money("51"))
    with pytest.raises(UsageError):
        await payments.create_standing_order("alice", other, reference=reference)


@pytest.mark.parametrize(
    "form",
    ["standalonePayment", "paymentWithAccountId", "directDebitWithAccountId", "standingOrder"],
)
async def test_each_payment_form_is_created_once_per_reference(
    sandbox: Sandbox, sandbox_manager: SessionManager, form: str
) -> None:
    await import_connection(sandbox_manager, "former")
    account = (await FinApiData(sandbox_manager).accounts("former"))[0].id
    transfers = [Transfer(Money("3.10"), "Bob", BOB)]
    reference = new_reference()

    def create(forms: PaymentForms) -> Awaitable[Any]:
        make: dict[str, Callable[[], Awaitable[Any]]] = {
            "standalonePayment": lambda: forms.standalone_payment(
                "former", transfers, reference=reference
            ),
            "paymentWithAccountId": lambda: forms.payment_with_account(
                "former", account, transfers, reference=reference
            ),
            "directDebitWithAccountId": lambda: forms.direct_debit_with_account(
                "former",
                account,
                [_debit()],
                reference=reference,
                execution_date=dt.date(2026, 12, 24),
            ),
            "standingOrder": lambda: forms.standing_order("former", ORDER, reference=reference),
        }
        return make[form]()

    first = await create(PaymentForms(sandbox_manager))
    assert await create(PaymentForms(sandbox_manager)) == first
    assert posts(sandbox, f"/api/webForms/{form}") == 1


def _debit() -> Any:
    from aiofinaccess.finapi import DirectDebit  # noqa: PLC0415

    return DirectDebit(
        Money("9.99"),
        "Carol",
        "GB82 WEST 1234 5698 7654 32",
        mandate_id="M-1",
        mandate_date=dt.date(2026, 1, 2),
        creditor_id="DE98ZZZ09999999999",
    )


async def test_a_paygate_order_is_created_once_per_reference(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    with_paygate(sandbox_manager, sandbox)
    reference = new_reference()
    first = await Paygate(sandbox_manager).create_order("45.00", reference=reference)
    assert await Paygate(sandbox_manager).create_order("45.00", reference=reference) == first
    assert posts(sandbox, "/api/v2/orders") == 1


async def test_an_order_whose_answer_was_lost_is_never_sent_again(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    with_paygate(sandbox_manager, sandbox)
    paygate = Paygate(sandbox_manager)
    reference = new_reference()
    sandbox.set_faults(burst=1, kinds=("500_after_commit",), scope="api", methods=("POST",))
    with pytest.raises(PaymentOutcomeUnknown) as lost:
        await paygate.create_order("45.00", reference=reference)
    assert lost.value.reference == reference
    with pytest.raises(PaymentOutcomeUnknown):
        await paygate.create_order("45.00", reference=reference)
    assert posts(sandbox, "/api/v2/orders") == 1
