"""Seeded runs of Everifin payments (BankConnect's, or Paygate's with ``--api paygate``) against
the sandbox with faults after commit and crashes of the caller between send and record, as
tests/reliability/payment_runs.py does for finAPI; a fresh caller resumes each crash from the
store by reference. Checked per run: no reference made two payments, and every payment in the
sandbox under one of the app's references is the one a record holds (none the app does not
know about).

    python -m tests.reliability.everifin_payment_runs --runs 50 --payments 40 [--api paygate]

The suite runs a few short runs (tests/sandbox/test_everifin_payment_runs.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections import Counter
from typing import Any, Literal

from aiofinaccess import MemoryStore, SessionManager
from aiofinaccess.api.payment_ledger import PaymentRecord, RecordState
from aiofinaccess.everifin import BankConnectPayments, Paygate, PaymentOrder
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.payments import Money, new_reference
from aiofinaccess.sandbox import Sandbox, run_sandbox
from tests.reliability.payment_runs import (
    FAST,
    KINDS,
    SETTLING,
    AheadClock,
    Attempt,
    CrashingRecords,
    Tally,
    _answer,
    _quiet,
    one_payment,
)
from tests.support.everifin_journey import SK_IBAN, pis_user, with_paygate

Api = Literal["bankconnect", "paygate"]


def _client(api: Api, manager: SessionManager, **options: Any) -> BankConnectPayments | Paygate:
    if api == "paygate":
        return Paygate(manager, **options)
    return BankConnectPayments(manager, **options)


def _create(client: BankConnectPayments | Paygate, user: str, order: PaymentOrder, ref: str) -> Any:
    if isinstance(client, Paygate):
        return client.create_link(order, reference=ref)
    return client.create_payment(user, order, reference=ref)


def _resolve(client: BankConnectPayments | Paygate, user: str, ref: str) -> Any:
    return client.resolve(ref) if isinstance(client, Paygate) else client.resolve(user, ref)


async def one_run(
    sandbox: Sandbox, manager: SessionManager, seed: int, payments: int, api: Api
) -> Tally:
    """One seeded run (BankConnect: on its own user; Paygate: on the merchant)."""
    rng = random.Random(seed)
    user = f"run{seed}"
    await pis_user(manager, sandbox, user)
    records, clock = CrashingRecords(), AheadClock()
    tally = Tally(runs=1, transfers=payments)
    outsider = _client(api, manager, records=MemoryStore(), clock=clock, timeouts=FAST)
    callers: list[BankConnectPayments | Paygate] = []

    def caller() -> BankConnectPayments | Paygate:  # a fresh process: the same store
        client = _client(api, manager, records=records, clock=clock, timeouts=SETTLING)
        callers.append(client)
        return client

    sandbox.state.rng.seed(seed)
    before = Counter(sandbox.stats().get("faults_injected", {}))
    sandbox.set_faults(rate=0.3, kinds=KINDS, scope="api", retry_after=0.01, jitter=0.05)
    references: list[str] = []
    foreign: list[str] = []
    for _ in range(payments):
        reference = new_reference()
        references.append(reference)
        order = PaymentOrder(Money(rng.choice((1, 2, 3, 5))), SK_IBAN, "Bob")
        if rng.random() < 0.1:  # another app pays the same at the same time
            foreign.append(new_reference())
            await _answer(_create(outsider, user, order, foreign[-1]))
            await _quiet(sandbox)
        await one_payment(
            Attempt(tally, rng, sandbox, records, clock),
            lambda order=order, reference=reference: _create(caller(), user, order, reference),
            lambda reference=reference: _resolve(caller(), user, reference),
        )
    sandbox.set_faults()
    await _quiet(sandbox)
    tally.faults = Counter(sandbox.stats().get("faults_injected", {})) - before
    for client in callers:
        tally.reconciliations.update(client.reconciliations)
    scope = "everifin_paygate:merchant" if api == "paygate" else f"everifin:{user}"
    await _check(
        tally,
        sandbox=sandbox,
        records=records,
        scope=scope,
        references=references,
        foreign=set(foreign),
    )
    return tally


async def _check(
    tally: Tally,
    *,
    sandbox: Sandbox,
    records: MemoryStore,
    scope: str,
    references: list[str],
    foreign: set[str],
) -> None:
    service = sandbox.service("everifin_payments")
    held = {}
    for reference, stored in (await records.payment_records(scope)).items():
        record = PaymentRecord.from_bytes(stored.data)
        if record.state is RecordState.CREATED:
            held[record.payment_id] = reference
    mine = [p for ref in references for p in service.by_reference(ref)]
    tally.payments += len(mine)
    tally.foreign += sum(len(service.by_reference(ref)) for ref in foreign)
    tally.duplicates += sum(1 for ref in references if len(service.by_reference(ref)) > 1)
    tally.unknown_to_app += sum(1 for p in mine if held.get(p.id) != p.external_id)
    tally.claimed_foreign += sum(
        1 for ref in foreign for p in service.by_reference(ref) if p.id in held
    )


async def run(runs: int, payments: int, api: Api = "bankconnect", first_seed: int = 1) -> Tally:
    """``runs`` seeded runs on one sandbox; their tally."""
    total = Tally()
    async with run_sandbox() as sandbox, SessionManager() as manager:
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        with_paygate(manager, sandbox)
        for seed in range(first_seed, first_seed + runs):
            total.add(await one_run(sandbox, manager, seed, payments, api))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--payments", type=int, default=40)
    parser.add_argument("--api", choices=("bankconnect", "paygate"), default="bankconnect")
    parser.add_argument("--seed", type=int, default=1, help="the first run's seed")
    options = parser.parse_args()
    tally = asyncio.run(run(options.runs, options.payments, options.api, options.seed))
    sys.stdout.write(tally.report())


if __name__ == "__main__":
    main()
