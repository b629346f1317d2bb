"""Seeded runs of money transfers under faults after commit and crashes of the caller between
send and record (tests/reliability/payment_runs.py; longer: ``python -m
tests.reliability.payment_runs --runs 50 --transfers 40``): no duplicate payment, none the app
does not know about, and the runs did meet what they are about."""

from __future__ import annotations

from tests.reliability.payment_runs import run


async def test_seeded_payment_runs_never_duplicate_nor_lose_a_payment() -> None:
    tally = await run(runs=3, transfers=15)
    assert tally.duplicates == 0
    assert tally.unknown_to_app == 0
    assert tally.payments > 0
    # what the runs are about happened: faults after commit, crashes at the record, and
    # reconciliations that found payments and that settled "not created"
    assert tally.faults["500_after_commit"] + tally.faults["drop_after_commit"] > 0
    assert tally.crashes["at_record"] > 0
    assert tally.reconciliations["CREATED"] > 0
    assert tally.reconciliations["NOT_CREATED"] > 0
