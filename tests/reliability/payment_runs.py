"""Seeded runs of finAPI money transfers against the sandbox with faults after commit and
crashes of the caller between send and record; a fresh caller resumes each crash from the
store by reference. Checked per run: no reference made two payments, and every payment in
the sandbox is the one a record holds (none the app does not know about).

Each run is one user on one sandbox, ``transfers`` transfers in a row, each of an amount drawn
from four (so the payments before one look like it: only the mark tells them apart). Per
transfer the seed decides a crash: at the record write after the send (the process dies
between send and record), or at a random moment of the call. An answer "unknown" is settled
as time passes: once the sandbox has nothing in flight, the virtual clock moves past
``settle_after`` and the reference is resolved again.

    python -m tests.reliability.payment_runs --runs 50 --transfers 40

The suite runs a few short runs (tests/sandbox/test_payment_runs.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from aiofinaccess import MemoryStore, SessionManager
from aiofinaccess.api.payment_ledger import PaymentRecord, RecordState
from aiofinaccess.errors import PaymentNotCreated, PaymentOutcomeUnknown
from aiofinaccess.finapi import FinApiData, FinApiPayments, Transfer
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.payments import Money, PaymentTimeouts, new_reference
from aiofinaccess.sandbox import Sandbox, run_sandbox
from aiofinaccess.stores import StoredRecord
from tests.support.finapi_journey import import_connection

BOB = "DE89370400440532013000"
KINDS = ("500", "503", "drop", "500_after_commit", "drop_after_commit")
SETTLE_AFTER = 600.0
FAST = PaymentTimeouts(request=5.0)
SETTLING = PaymentTimeouts(request=5.0, settle_after=SETTLE_AFTER)
#: How a call may end early: not at all, at the record write after the send, while the
#: request is at the sandbox, or at a random moment.
CRASHES = ("none", "at_record", "in_flight", "at_random")


class AheadClock:
    """The wall clock, ahead by what sleeping added: waiting takes no real time."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def wall(self) -> float:
        return time.time() + self.ahead

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    async def sleep(self, seconds: float) -> None:
        self.ahead += max(0.0, seconds)
        await asyncio.sleep(0)


class CrashingRecords(MemoryStore):
    """Payment records that kill the caller at the write after the send, when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_next = False
        self.added = asyncio.Event()  # a record was added: its request goes out next

    async def add_payment_record(self, scope: str, reference: str, data: bytes) -> bool:
        added = await super().add_payment_record(scope, reference, data)
        self.added.set()
        return added

    async def replace_payment_record(
        self, scope: str, reference: str, data: bytes, *, expected_version: int
    ) -> bool:
        if self.crash_next:
            self.crash_next = False
            raise asyncio.CancelledError  # dies here: sent, not recorded
        return await super().replace_payment_record(
            scope, reference, data, expected_version=expected_version
        )


@attrs.define
class Tally:
    """What the runs did and saw."""

    runs: int = 0
    transfers: int = 0
    faults: Counter[str] = attrs.Factory(Counter)
    crashes: Counter[str] = attrs.Factory(Counter)
    answers: Counter[str] = attrs.Factory(Counter)  # first answer to the caller
    reconciliations: Counter[str] = attrs.Factory(Counter)
    resolutions: Counter[str] = attrs.Factory(Counter)  # later answers (resumed, settled)
    payments: int = 0
    foreign: int = 0  # made by another app on the same finAPI user: never the app's
    duplicates: int = 0
    unknown_to_app: int = 0
    claimed_foreign: int = 0  # a record holding another app's payment
    unsettled: int = 0

    def report(self) -> str:
        """One line per field."""
        lines = []
        for field in attrs.fields(Tally):
            value = getattr(self, field.name)
            shown = dict(sorted(value.items())) if isinstance(value, Counter) else value
            lines.append(f"{field.name}: {shown}\n")
        return "".join(lines)

    def add(self, other: Tally) -> None:
        for field in attrs.fields(Tally):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(self, field.name, mine + theirs)


async def _quiet(sandbox: Sandbox) -> None:
    """Until no request is in flight at the sandbox (a cancelled caller's may still be)."""
    while sandbox.state.in_flight:  # noqa: ASYNC110  (a count: the sandbox signals nothing)
        await asyncio.sleep(0.005)


async def _answer(call: Any) -> tuple[str, Any]:
    try:
        return "created", await call
    except PaymentNotCreated:
        return "not_created", None
    except PaymentOutcomeUnknown as unknown:
        return ("ambiguous" if unknown.candidates else "unknown"), None


@attrs.define
class Attempt:
    """What one payment of a run works with."""

    tally: Tally
    rng: random.Random
    sandbox: Sandbox
    records: CrashingRecords
    clock: AheadClock


async def one_payment(
    attempt: Attempt, create: Callable[[], Awaitable[Any]], resolve: Callable[[], Awaitable[Any]]
) -> None:
    """Create one payment by a fresh caller (``create``), crashing it as the seed decides;
    resume a crash by reference with another caller; settle an unknown answer as time passes
    (``resolve``)."""
    tally, records = attempt.tally, attempt.records
    crash = attempt.rng.choices(CRASHES, (0.6, 0.15, 0.15, 0.1))[0]
    records.crash_next = crash == "at_record"
    records.added.clear()
    task = asyncio.ensure_future(_answer(create()))
    if crash == "in_flight":  # once the request is out, before its answer
        added = asyncio.ensure_future(records.added.wait())
        await asyncio.wait((task, added), return_when=asyncio.FIRST_COMPLETED)
        added.cancel()
        await asyncio.sleep(0.005)
        task.cancel()
    elif crash == "at_random":
        await asyncio.sleep(attempt.rng.uniform(0, 0.08))
        task.cancel()
    try:
        outcome, _ = await task
    except asyncio.CancelledError:
        outcome = "crashed"
    records.crash_next = False
    if outcome == "crashed":
        tally.crashes[crash] += 1
        outcome, _ = await _answer(create())  # resumed by reference
        tally.resolutions[f"resumed_{outcome}"] += 1
    else:
        tally.answers[outcome] += 1
    for _ in range(3):  # time passes; ask again
        if outcome not in ("unknown", "ambiguous"):
            break
        await _quiet(attempt.sandbox)
        attempt.clock.ahead += SETTLE_AFTER
        outcome, _ = await _answer(resolve())
        tally.resolutions[f"settled_{outcome}"] += 1
    else:
        tally.unsettled += 1


async def one_run(sandbox: Sandbox, manager: SessionManager, seed: int, transfers: int) -> Tally:
    """One seeded run on its own user; see the module's docstring."""
    rng = random.Random(seed)
    user = f"run{seed}"
    await import_connection(manager, user)
    [account, *_] = await FinApiData(manager).accounts(user)
    records, clock = CrashingRecords(), AheadClock()

    tally = Tally(runs=1, transfers=transfers)
    outsider = FinApiPayments(manager, records=MemoryStore(), clock=clock, timeouts=FAST)
    foreign: list[str] = []

    def caller() -> FinApiPayments:  # a fresh process: its own owner, the same store
        payments = FinApiPayments(manager, records=records, clock=clock, timeouts=SETTLING)
        callers.append(payments)
        return payments

    callers: list[FinApiPayments] = []
    sandbox.state.rng.seed(seed)
    before = Counter(sandbox.stats().get("faults_injected", {}))
    # every API request takes 0 to 50 ms at the sandbox: a caller cancelled in the middle
    # leaves its request to land after the one resuming it has listed the payments
    sandbox.set_faults(rate=0.3, kinds=KINDS, scope="api", retry_after=0.01, jitter=0.05)
    references = []
    for _ in range(transfers):
        reference = new_reference()
        references.append(reference)
        order = [Transfer(Money(rng.choice((1, 2, 3, 5))), "Bob", BOB)]
        if rng.random() < 0.1:  # another app pays the same just before: below the mark
            foreign.append(new_reference())
            await _answer(
                outsider.create_money_transfer(
                    user, order, reference=foreign[-1], account_id=account.id
                )
            )
            await _quiet(sandbox)

        def create(
            payments: FinApiPayments, order: list[Transfer] = order, reference: str = reference
        ) -> Any:
            return payments.create_money_transfer(
                user, order, reference=reference, account_id=account.id
            )

        await one_payment(
            Attempt(tally, rng, sandbox, records, clock),
            lambda: create(caller()),
            lambda reference=reference: caller().resolve(user, reference),
        )
    sandbox.set_faults()
    await _quiet(sandbox)
    after = Counter(sandbox.stats().get("faults_injected", {}))
    tally.faults = after - before
    for payments in callers:
        tally.reconciliations.update(payments.reconciliations)
    await _check(
        tally,
        sandbox=sandbox,
        records=records,
        user=user,
        references=references,
        foreign=set(foreign),
    )
    return tally


async def _check(
    tally: Tally,
    *,
    sandbox: Sandbox,
    records: MemoryStore,
    user: str,
    references: list[str],
    foreign: set[str],
) -> None:
    """Count the user's payments, references with two or more, the app's payments no record
    holds, and other apps' payments a record holds."""
    service = sandbox.service("payments")
    made = [p for p in service.payments.values() if p.user_id == user]
    mine = [p for p in made if p.reference not in foreign]
    stored: dict[str, StoredRecord] = await records.payment_records(f"finapi:{user}")
    held = {}
    for reference, stored_record in stored.items():
        record = PaymentRecord.from_bytes(stored_record.data)
        if record.state is RecordState.CREATED:
            held[record.payment_id] = reference
    tally.payments += len(mine)
    tally.foreign += len(made) - len(mine)
    tally.duplicates += sum(1 for ref in references if len(service.by_reference(ref)) > 1)
    tally.unknown_to_app += sum(1 for p in mine if held.get(p.id) != p.reference)
    tally.claimed_foreign += sum(1 for p in made if p.reference in foreign and p.id in held)


async def run(runs: int, transfers: int, first_seed: int = 1) -> Tally:
    """``runs`` seeded runs on one sandbox; their tally."""
    total = Tally()
    async with run_sandbox() as sandbox, SessionManager() as manager:
        for provider, credentials in sandbox_providers(sandbox):
            manager.register(provider, credentials)
        for seed in range(first_seed, first_seed + runs):
            total.add(await one_run(sandbox, manager, seed, transfers))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--transfers", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1, help="the first run's seed")
    options = parser.parse_args()
    tally = asyncio.run(run(options.runs, options.transfers, options.seed))
    sys.stdout.write(tally.report())


if __name__ == "__main__":
    main()
