"""Seeded runs of Everifin payments under faults after commit and crashes of the caller between
send and record (tests/reliability/everifin_payment_runs.py; longer: ``python -m
tests.reliability.everifin_payment_runs --runs 50 --payments 40 [--api paygate]``): no
duplicate payment, none the app does not know about, and the runs did meet what they are
about."""

from __future__ import annotations

import pytest

from tests.reliability.everifin_payment_runs import Api, run


@pytest.mark.parametrize("api", ["bankconnect", "paygate"])
async def test_seeded_everifin_payment_runs_never_duplicate_nor_lose_a_payment(api: Api) -> None:
    tally = await run(runs=2, payments=12, api=api)
    assert tally.duplicates == 0
    assert tally.unknown_to_app == 0
    assert tally.claimed_foreign == 0
    assert tally.payments > 0
    assert tally.faults["500_after_commit"] + tally.faults["drop_after_commit"] > 0
    assert tally.crashes["at_record"] > 0
    assert tally.reconciliations["CREATED"] > 0
    assert tally.reconciliations["NOT_CREATED"] > 0
