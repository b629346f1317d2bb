"""The sandbox's finAPI payments: control routes, fault kinds after commit, and seeded runs of
payment requests under faults (each reference creates at most one payment; every failure that
may have created one is raised, never retried)."""

from __future__ import annotations

import aiohttp
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.errors import ServerError, TransportError
from aiofinaccess.finapi import FinApiData, FinApiPayments, Money, Transfer, new_reference
from aiofinaccess.sandbox import AFTER_COMMIT_KINDS, Faults, Sandbox
from tests.support.finapi_journey import import_connection

BOB = "DE89370400440532013000"


def test_after_commit_kinds_are_named_never_default() -> None:
    assert set(AFTER_COMMIT_KINDS).isdisjoint(Faults().kinds)
    assert Faults(kinds=AFTER_COMMIT_KINDS).kinds == AFTER_COMMIT_KINDS
    with pytest.raises(ValueError, match="fault kinds"):
        Faults(kinds=("after_commit",))


async def test_control_routes_list_by_reference_and_steer(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    await import_connection(sandbox_manager, "ctl")
    [account, *_] = await FinApiData(sandbox_manager).accounts("ctl")
    reference = new_reference()
    made = await FinApiPayments(sandbox_manager).create_money_transfer(
        "ctl", [Transfer(Money(4), "Bob", BOB)], reference=reference, account_id=account.id
    )
    base = sandbox.base_url + "/_sandbox/payments"
    async with aiohttp.ClientSession() as http:
        async with http.get(base, params={"reference": reference}) as listed:
            assert (await listed.json())["payments"] == [
                {"id": made.id, "status": "OPEN", "type": "MONEY_TRANSFER", "reference": reference}
            ]
        async with http.post(f"{base}/{made.id}", json={"event": "book"}) as refused:
            assert refused.status == 400
        async with http.post(f"{base}/{made.id}", json={"event": "authorise"}) as steered:
            assert (await steered.json()) == {"id": made.id, "status": "PENDING"}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_seeded_payment_runs_under_faults_never_duplicate(
    sandbox: Sandbox, sandbox_manager: SessionManager, seed: int
) -> None:
    """60 payments a seed, a third of the requests faulted before or after commit: each
    reference makes at most one payment, and exactly those the SDK saw succeed or raise as
    possibly sent can exist."""
    await import_connection(sandbox_manager, "runs")
    [account, *_] = await FinApiData(sandbox_manager).accounts("runs")
    payments = FinApiPayments(sandbox_manager)
    sandbox.state.rng.seed(seed)
    kinds = ("500", "503", "drop", *AFTER_COMMIT_KINDS)
    sandbox.set_faults(rate=0.33, kinds=kinds, scope="api")
    outcomes: dict[str, str] = {}
    for _ in range(60):
        reference = new_reference()
        try:
            await payments.create_money_transfer(
                "runs",
                [Transfer(Money(1), "Bob", BOB)],
                reference=reference,
                account_id=account.id,
            )
            outcomes[reference] = "created"
        except (TransportError, ServerError):
            outcomes[reference] = "ambiguous"
    sandbox.set_faults()
    service = sandbox.service("payments")
    made = {ref: len(service.by_reference(ref)) for ref in outcomes}
    assert set(made.values()) <= {0, 1}  # never two payments for one reference
    assert all(made[ref] == 1 for ref, outcome in outcomes.items() if outcome == "created")
    ambiguous = [ref for ref, outcome in outcomes.items() if outcome == "ambiguous"]
    committed = sum(made[ref] for ref in ambiguous)  # what reconciliation must find
    injected = sandbox.stats()["faults_injected"]
    assert sum(injected.values()) >= len(ambiguous) > 0
    assert committed == sum(injected.get(kind, 0) for kind in AFTER_COMMIT_KINDS)
