"""The sandbox's finAPI payments: control routes and fault kinds after commit (seeded runs of
payment requests under faults: tests/sandbox/test_payment_runs.py)."""

from __future__ import annotations

import aiohttp
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.finapi import FinApiData, FinApiPayments, Transfer
from aiofinaccess.payments import Money, new_reference
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
