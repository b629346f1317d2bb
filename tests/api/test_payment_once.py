"""Exactly once against the sandbox: the record is written before the send, a failure is
answered "not created" or "unknown" (never a transport error), a crash between send and record
is resumed by reference, and two processes asking for one reference get one payment (the rules
as data: tests/api/test_payment_ledger.py; seeded runs: tests/sandbox/test_payment_runs.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aiofinaccess import SessionManager, SQLiteStore
from aiofinaccess.api.payment_ledger import PaymentRecord, RecordState
from aiofinaccess.errors import (
    ConfigurationError,
    PaymentNotCreated,
    PaymentOutcomeUnknown,
    UnprocessableEntityError,
    UsageError,
)
from aiofinaccess.finapi import FinApiData, FinApiPayments, Transfer
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.payments import Money, PaymentTimeouts, new_reference
from aiofinaccess.sandbox import Sandbox
from tests.reliability.payment_runs import AheadClock, CrashingRecords
from tests.support.finapi_journey import import_connection

BOB = "DE89370400440532013000"
ORDER = [Transfer(Money("4.20"), "Bob", BOB)]


async def account_of(manager: SessionManager, user: str) -> int:
    await import_connection(manager, user)
    [account, *_] = await FinApiData(manager).accounts(user)
    return account.id


async def state_of(payments: FinApiPayments, user: str, reference: str) -> RecordState:
    stored = await payments._ledger._records.get_payment_record(f"finapi:{user}", reference)
    assert stored is not None
    return PaymentRecord.from_bytes(stored.data).state


async def test_a_500_before_commit_is_not_created_and_stays_so(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    account = await account_of(sandbox_manager, "u500")
    payments = FinApiPayments(sandbox_manager)
    reference = new_reference()
    sandbox.set_faults(burst=1, kinds=("500",), scope="api", methods=("POST",))
    with pytest.raises(PaymentNotCreated) as first:
        await payments.create_money_transfer("u500", ORDER, reference=reference, account_id=account)
    assert first.value.reference == reference
    assert await state_of(payments, "u500", reference) is RecordState.NOT_CREATED
    with pytest.raises(PaymentNotCreated):  # asked again: the record answers, nothing is sent
        await payments.create_money_transfer("u500", ORDER, reference=reference, account_id=account)
    assert sandbox.service("payments").by_reference(reference) == []
    assert sandbox.stats()["faults_injected"] == {"500": 1}


async def test_a_refusal_is_not_created_with_the_cause(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    await account_of(sandbox_manager, "refused")
    payments = FinApiPayments(sandbox_manager)
    with pytest.raises(PaymentNotCreated) as refused:
        await payments.create_money_transfer(
            "refused", ORDER, reference=new_reference(), account_id=999_999
        )
    assert isinstance(refused.value.__cause__, UnprocessableEntityError)


async def test_a_drop_before_commit_is_unknown_until_it_can_no_longer_land(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    account = await account_of(sandbox_manager, "udrop")
    clock = AheadClock()
    payments = FinApiPayments(sandbox_manager, clock=clock)
    reference = new_reference()
    sandbox.set_faults(burst=1, kinds=("drop",), scope="api", methods=("POST",))
    with pytest.raises(PaymentOutcomeUnknown) as unknown:
        await payments.create_money_transfer(
            "udrop", ORDER, reference=reference, account_id=account
        )
    assert unknown.value.reference == reference
    assert unknown.value.candidates == ()
    with pytest.raises(PaymentOutcomeUnknown):
        await payments.resolve("udrop", reference)
    clock.ahead += 600
    with pytest.raises(PaymentNotCreated, match="not found"):
        await payments.resolve("udrop", reference)
    assert payments.reconciliations == {"UNKNOWN": 2, "NOT_CREATED": 1}
    with pytest.raises(PaymentNotCreated, match="no request was recorded"):
        await payments.resolve("udrop", new_reference())


async def test_a_reference_names_one_request(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    account = await account_of(sandbox_manager, "reuse")
    payments = FinApiPayments(sandbox_manager)
    reference = new_reference()
    made = await payments.create_money_transfer(
        "reuse", ORDER, reference=reference, account_id=account
    )
    again = await payments.create_money_transfer(
        "reuse", ORDER, reference=reference, account_id=account
    )
    assert again == made
    other = [Transfer(Money("4.21"), "Bob", BOB)]
    with pytest.raises(UsageError, match="another request"):
        await payments.create_money_transfer(
            "reuse", other, reference=reference, account_id=account
        )
    assert len(sandbox.service("payments").by_reference(reference)) == 1


async def test_a_crash_between_send_and_record_is_resumed_by_reference(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    account = await account_of(sandbox_manager, "crash")
    records, clock = CrashingRecords(), AheadClock()
    first = FinApiPayments(sandbox_manager, records=records, clock=clock)
    reference = new_reference()
    records.crash_next = True
    with pytest.raises(asyncio.CancelledError):
        await first.create_money_transfer("crash", ORDER, reference=reference, account_id=account)
    assert await state_of(first, "crash", reference) is RecordState.PENDING
    (made,) = sandbox.service("payments").by_reference(reference)
    resumed = FinApiPayments(sandbox_manager, records=records, clock=clock)  # a fresh process
    payment = await resumed.create_money_transfer(
        "crash", ORDER, reference=reference, account_id=account
    )
    assert payment.id == made.id
    assert clock.ahead > 100  # it waited out the dead sender's claim (120 s), then listed
    assert resumed.reconciliations == {"CREATED": 1}
    assert len(sandbox.service("payments").by_reference(reference)) == 1


async def test_a_request_still_in_flight_is_unknown_never_not_created(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """The caller dies while its request is at finAPI; the one resuming lists before the
    request lands: "unknown", and once it has landed, the payment (never "not created")."""
    account = await account_of(sandbox_manager, "slow")
    records, clock = CrashingRecords(), AheadClock()
    reference = new_reference()

    def create() -> Any:
        payments = FinApiPayments(sandbox_manager, records=records, clock=clock)
        return payments.create_money_transfer(
            "slow", ORDER, reference=reference, account_id=account
        )

    sandbox.set_faults(latency=0.3, scope="api", methods=("POST",))
    dying = asyncio.ensure_future(create())
    await records.added.wait()
    while not sandbox.state.in_flight:  # noqa: ASYNC110  (a count: the sandbox signals nothing)
        await asyncio.sleep(0.005)
    dying.cancel()
    with pytest.raises(PaymentOutcomeUnknown, match="may still land"):
        await create()
    while sandbox.state.in_flight:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    (made,) = sandbox.service("payments").by_reference(reference)
    assert (await create()).id == made.id


async def test_two_processes_with_one_reference_send_once(
    sandbox: Sandbox, sandbox_manager: SessionManager, tmp_path: Path
) -> None:
    """Two managers on one SQLite file (as two processes would be), asking at once: one
    POST, and both get its payment, the second from the record."""
    path = tmp_path / "shared.db"
    async with (
        SessionManager(store=SQLiteStore(path)) as one,
        SessionManager(store=SQLiteStore(path)) as two,
    ):
        for manager in (one, two):
            for provider, credentials in sandbox_providers(sandbox):
                manager.register(provider, credentials)
        account = await account_of(one, "twice")
        reference = new_reference()
        sandbox.set_faults(latency=0.3, scope="api", methods=("POST",))
        made = await asyncio.gather(
            *(
                FinApiPayments(manager).create_money_transfer(
                    "twice", ORDER, reference=reference, account_id=account
                )
                for manager in (one, two)
            )
        )
    assert made[0] == made[1]
    assert [p.id for p in sandbox.service("payments").by_reference(reference)] == [made[0].id]


async def test_a_store_without_payment_records_is_refused(sandbox_manager: SessionManager) -> None:
    class Bare:
        pass

    with pytest.raises(ConfigurationError, match="payment records"):
        FinApiPayments(sandbox_manager, records=Bare())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="claim_for"):
        PaymentTimeouts(request=200.0)
    for bad in (0, -1.0, True, "30"):
        with pytest.raises(ConfigurationError, match="request must be positive"):
            PaymentTimeouts(request=bad)  # type: ignore[arg-type]
