"""A payment record lost with the store (a failover to a replica that had not seen it, a
restored backup): the reference asked again must not make a second Everifin payment. Everifin
lists payments by ``externalId``, so the SDK looks before it sends and answers with the payment
already made (finAPI cannot be asked by reference: there, a lost record is the store's to
prevent)."""

from __future__ import annotations

from aiofinaccess import SessionManager
from aiofinaccess.api.money import Money
from aiofinaccess.everifin import BankConnectPayments, Paygate, PaymentOrder
from aiofinaccess.payments import new_reference
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores.memory import MemoryStore
from tests.reliability.payment_runs import AheadClock
from tests.support.everifin_journey import SK_IBAN, pis_user, with_paygate

ORDER = PaymentOrder(Money("12.50"), SK_IBAN, "Bob", variable_symbol="2026007")


async def test_a_paygate_link_whose_record_was_lost_is_not_made_again(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    with_paygate(sandbox_manager, sandbox)
    reference = new_reference()
    first = await Paygate(sandbox_manager, records=MemoryStore()).create_link(
        ORDER, reference=reference
    )
    after_failover = Paygate(sandbox_manager, records=MemoryStore())
    assert await after_failover.create_link(ORDER, reference=reference) == first
    assert len(sandbox.service("everifin_payments").by_reference(reference)) == 1
    assert await after_failover.resolve(reference) == first  # written down again


async def test_a_bankconnect_payment_whose_record_was_lost_is_not_made_again(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    await pis_user(sandbox_manager, sandbox, "alice")
    reference = new_reference()

    def payments() -> BankConnectPayments:
        return BankConnectPayments(sandbox_manager, records=MemoryStore(), clock=AheadClock())

    first = await payments().create_payment("alice", ORDER, reference=reference)
    assert (await payments().create_payment("alice", ORDER, reference=reference)).id == first.id
    assert len(sandbox.service("everifin_payments").by_reference(reference)) == 1


async def test_one_reference_of_two_users_is_two_payments(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """Records and the look-up before sending are the user's own: Bob's reference never
    answers with Alice's payment."""
    for user in ("alice", "bob"):
        await pis_user(sandbox_manager, sandbox, user)
    payments = BankConnectPayments(sandbox_manager, clock=AheadClock())
    reference = new_reference()
    alice = await payments.create_payment("alice", ORDER, reference=reference)
    bob = await payments.create_payment("bob", ORDER, reference=reference)
    assert alice.id != bob.id
    assert (await payments.resolve("alice", reference)).id == alice.id
