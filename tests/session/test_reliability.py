"""Quick variants of the reliability runs (the full ones: python -m tests.reliability.crash|storm).

The crash test SIGKILLs a renewing worker and requires that no session is lost by a kill
outside the window between sending a refresh and persisting its answer. The fault storm runs
sessions under a 30 % failure rate and requires: no expired token handed out, no session lost,
only typed errors, no unretrieved task exception, and recovery within one backoff interval.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.crash import run_crash_test
from tests.reliability.storm import run_storm

KILLS = int(os.environ.get("CRASH_KILLS", "8"))


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_crash_quick(store: str) -> None:
    """A handful of SIGKILLs: losses only ever inside the send-to-persist window."""
    report = await run_crash_test(kills=KILLS, store=store, users=10)
    assert report.kills_inside_window + report.kills_outside_window == KILLS
    assert report.lost_outside_window == 0
    assert report.lost_total == report.lost_inside_window
    assert report.sessions_alive_at_end == report.users - report.lost_total


async def test_fault_storm_quick(tmp_path: Path) -> None:
    """Ten seconds of a 30 % storm over 100 sessions, then recovery."""
    report = await run_storm(
        sessions=100, storm_seconds=10, store_path=tmp_path / "storm.db", concurrency=20
    )
    assert sum(report.faults_injected.values()) > 100
    assert report.untyped_failures == 0
    assert report.expired_served == 0
    assert report.server_401 == 0
    assert report.reuse_violations == report.sessions_killed == report.reauth_required == 0
    assert report.unretrieved_task_errors == 0
    assert report.sessions_working_after == report.sessions
    assert report.recovery_seconds <= report.recovery_limit_seconds
