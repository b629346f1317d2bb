"""fleet.py's reading of its record: token requests attributed to the due event they served,
renewals done twice, lateness, and what a SIGKILLed worker left behind (benchmarks/_fleet_plan.py).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


import _fleet_plan as plan_

from aiofinaccess import RefreshPolicy

# Two sets; interval 80 s (ttl 100, due 20 s before expiry); set 0 due at 1000, set 1 at 1049.44.
PLAN = plan_.Plan(sets=2, ttl=100, lead=20.0, first_due=1000.0, nonce="n")


def record(process: str, *lines: str) -> plan_.Record:
    return plan_.parse_record(process, "\n".join(lines) + "\n")


def test_the_plan_spreads_due_times_over_one_interval_and_matches_the_sandbox() -> None:
    plan = plan_.Plan(sets=1000, ttl=100, lead=20.0, first_due=1000.0, nonce="n")
    dues = sorted(plan.due(i) for i in range(plan.sets))
    assert dues[0] == 1000.0
    assert dues[-1] < 1080.0
    gaps = [b - a for a, b in itertools.pairwise(dues)]
    assert max(gaps) < 0.2  # evenly spread: 1000 sets over 80 s
    session_id, access, refresh, expiry = plan.sandbox_row(7)
    token_set = plan.token_set(7)
    assert token_set.access_token.reveal() == access
    assert token_set.refresh_token is not None
    assert token_set.refresh_token.reveal() == refresh
    assert token_set.expires_at == pytest.approx(expiry)
    assert token_set.extra["session_state"] == session_id
    assert plan_.index_of(plan_.subject(7)) == 7
    assert plan_.index_of("alice") is None


def test_lifetime_renews_the_fleet_at_the_rate_asked() -> None:
    policy = RefreshPolicy()
    ttl = plan_.lifetime_for(100_000, 300.0, policy)
    rate = 100_000 / (ttl - plan_.ahead(ttl, policy))
    assert 295 < rate < 305


def test_each_request_counts_against_the_due_event_it_served() -> None:
    worker = record(
        "w0",
        "p 1000.200000 0 1080.000000",  # set 0 renewed 0.2 s late, next due 1080
        "p 1049.900000 1 1129.000000",  # set 1 (due 1049.44) renewed 0.46 s late
        "p 1080.100000 0 1160.000000",
    )
    journal = [
        [1000.1, "n-0", 200],
        [1049.8, "n-1", 200],
        [1049.85, "n-1", 400],  # a stale-token request for the same due event
        [1080.05, "n-0", 200],
        [1080.07, "n-0", 200],  # renewed twice
        [999.0, "n-1", 200],  # before set 1's first due time: premature
        [1000.0, "other-0", 200],  # another plan's session
    ]
    chained = plan_.chains(PLAN, [worker])
    window = plan_.renewals(PLAN, chained, journal, start=1000.0, end=1100.0, settle=1.0)
    assert window.due_events == 3
    assert window.renewed == 3
    assert window.unrenewed == 0
    assert window.lateness == pytest.approx([0.2, 0.1, 0.457], abs=0.01)
    assert window.token_requests == 5
    assert window.successful_requests == 4
    assert window.done_twice == 1
    assert window.served == 3
    assert window.premature_requests == 1
    assert window.by_process == {"w0": 3}


def test_a_due_event_nobody_renewed_counts_as_unrenewed() -> None:
    chained = plan_.chains(PLAN, [record("w0", "p 1000.200000 0 1080.000000")])
    window = plan_.renewals(PLAN, chained, [], start=1000.0, end=1100.0, settle=1.0)
    # Set 0 at 1000 was renewed; set 0 at 1080 and set 1 at 1049.4 were not.
    assert (window.due_events, window.renewed, window.unrenewed) == (3, 1, 2)


def test_orphans_of_a_killed_worker() -> None:
    killed = record(
        "w0",
        "f 990.000000 0.5",
        "c 1000.000000 1050.000000 0,1",
        "p 1000.300000 0 1080.000000",  # stored set 0 before it died; set 1 still held
    )
    others = [record("w1", "p 1050.400000 1 1130.000000")]
    journal = [[1000.2, "n-0", 200], [1000.25, "n-1", 200]]  # set 1 rotated, never stored
    orphans = plan_.orphans(killed, others, journal, PLAN, killed_at=1000.5)
    assert orphans.claimed == 1
    assert orphans.renewed_by_others == 1
    assert orphans.after_deadline == pytest.approx([0.4])
    assert orphans.not_renewed == 0
    assert orphans.rotated_at_death == 1
    assert plan_.held(killed, 1000.1) == {0: (1000.0, 1050.0), 1: (1000.0, 1050.0)}


def test_a_set_rotated_as_its_worker_died_and_never_renewed_is_lost_in_the_window() -> None:
    killed = record("w0", "c 1000.000000 1050.000000 0,1")
    journal = [[1000.4, "n-1", 200]]  # set 1's answer died with the worker
    orphans = plan_.orphans(killed, [], journal, PLAN, killed_at=1000.5)
    assert (orphans.claimed, orphans.not_renewed, orphans.rotated_at_death) == (2, 2, 1)
    assert orphans.lost_in_window == 1  # set 0 was lost otherwise: nobody renewed it


def test_a_rescheduled_claim_is_not_held() -> None:
    killed = record("w0", "c 1000.000000 1050.000000 1", "s 1000.100000 1 1129.000000")
    assert plan_.held(killed, 1001.0) == {}


def test_two_grants_an_interval_apart_are_not_a_double_even_if_a_write_went_unrecorded() -> None:
    # The killed worker's write for set 0 landed in Redis but never reached its record: the
    # next renewal (a whole interval later) falls in the same due event's span, yet the set
    # was renewed once per interval.
    chained = plan_.chains(PLAN, [record("w1", "p 1080.300000 0 1160.000000")])
    journal = [[1000.2, "n-0", 200], [1080.2, "n-0", 200]]
    window = plan_.renewals(PLAN, chained, journal, start=900.0, end=1100.0, settle=1.0)
    assert window.done_twice == 0
    assert window.token_requests == 2
