"""The token core's promise, checked over thousands of seeded, simulated schedules.

CI runs ``SIM_SEEDS`` seeds (2,000 by default) on every core; the long mode is
``python -m tests.simulation --seeds 100000``. A failing seed names its one-line replay.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable
from typing import Any

import pytest

from aiofinaccess.core.errors import AiofinaccessError, ApiError, TransportError
from aiofinaccess.core.lifecycle import Renewal, plan
from aiofinaccess.core.renewal_step import Stored
from aiofinaccess.core.tokens import Anchor, TokenKey
from aiofinaccess.session.duty import DutyLoop
from aiofinaccess.session.fence import Fence
from aiofinaccess.stores import Versioned
from tests.simulation.world import Process, World, run_seed

SEEDS = int(os.environ.get("SIM_SEEDS", "2000"))
START = int(os.environ.get("SIM_START", "0"))


def _violations(seed: int) -> tuple[int, list[str]]:
    return seed, run_seed(seed).violations


def test_every_seed_keeps_the_promise() -> None:
    """I1-I6 hold in every schedule of the CI budget (see tests/simulation/world.py)."""
    failing: list[str] = []
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        seeds = range(START, START + SEEDS)
        for seed, violations in pool.map(_violations, seeds, chunksize=25):
            if violations:
                failing.append(
                    f"seed {seed}: {violations[0]}\n"
                    f"  replay: python -m tests.simulation --seed {seed} -v"
                )
    assert failing == [], "\n".join(failing[:10])


def test_a_seed_replays_identically() -> None:
    """The same seed gives the same run: same requests, store calls, calls and violations."""

    def summary(world: World) -> tuple[object, ...]:
        return (
            world.idp.requests,
            world.store.calls,
            world.calls,
            world.idp.counter,
            tuple(world.violations),
        )

    for seed in (3, 1519):
        assert summary(run_seed(seed)) == summary(run_seed(seed))


# -- deliberately broken builds: the simulation must catch each within the CI budget ----------


def _no_fence(process: Process) -> None:
    """Take the lease, but never check or extend it before sending, and no heartbeat."""
    fence = process.manager._driver._fence
    fence.lease_needed = 0.0

    async def no_heartbeat(_self: Fence, _lease: object) -> None:
        return None

    fence._heartbeat = no_heartbeat.__get__(fence)  # type: ignore[method-assign]


def _unanchored(process: Process) -> None:
    """Plan a stored set as if it was issued the moment it is read (issue 11, bug 2)."""
    driver = process.manager._driver

    def as_if_new(found: Versioned, _asked: float | None = None) -> Stored:
        token_set = found.token_set
        token_set = token_set.with_anchor(Anchor(token_set.issued_at, process.clock.monotonic()))
        return Stored(token_set, found.version, plan(token_set, driver.policy))

    driver.anchored = as_if_new  # type: ignore[method-assign]


def _drop_unwritten(process: Process) -> None:
    """Give up on a redeemed set after the quick write attempts (issue 11, bug 4a)."""
    writes = process.manager._driver._writes
    writes.spent = lambda _token_set: True  # type: ignore[method-assign]


def _no_due_times(process: Process) -> None:
    """On a store that keeps the refresh duty, write sets without their due time."""
    driver = process.manager._driver
    if driver._due_at_for is not None:
        driver._due_at_for = lambda _token_set: None


def _failure_leaves_the_duty(process: Process) -> None:
    """The duty drops a claimed set from the store's schedule when its renewal fails once
    (instead of leaving it to fall due again at its claim deadline)."""
    for part in process.manager._lifetime._background:
        if isinstance(part, DutyLoop):

            async def renew_or_drop(
                key: TokenKey, loop: DutyLoop = part, claimed: Any = part._renew_claimed
            ) -> None:
                try:
                    await claimed(key)
                except AiofinaccessError:
                    await loop._reschedule(key, None)
                    raise

            part._renew_claimed = renew_or_drop  # type: ignore[method-assign]


def _lost_answer_ends_the_session(process: Process) -> None:
    """A refresh whose answer was lost gives the session up as dead, instead of leaving the
    replay to the driver's retry or the next renewal (which Keycloak's max reuse 1 accepts)."""
    redeemer = process.manager._driver._redeemer
    original = redeemer._after_failed_send

    async def give_up(
        entry: Any, registration: Any, run: Any, grant: Renewal, error: ApiError | TransportError
    ) -> None:
        sent = isinstance(error, TransportError) and error.request_sent
        if grant is Renewal.REFRESH_TOKEN and sent:
            run.dead_grant, run.dead_cause = "its answer was lost", None
            return
        await original(entry, registration, run, grant, error)

    redeemer._after_failed_send = give_up  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "mutation",
    [
        _no_fence,
        _unanchored,
        _drop_unwritten,
        _no_due_times,
        _failure_leaves_the_duty,
        _lost_answer_ends_the_session,
    ],
    ids=[
        "no fence",
        "stored sets unanchored",
        "redeemed set dropped",
        "no due times",
        "failed renewal leaves the duty",
        "a lost answer ends the session",
    ],
)
def test_a_broken_build_fails_within_the_ci_budget(mutation: Callable[[Process], None]) -> None:
    """Each bug the fixes removed, put back, is found by some seed of the CI budget."""
    for seed in range(START, START + SEEDS):
        violations = run_seed(seed, mutate=mutation).violations
        if violations:
            print(f"{mutation.__name__}: seed {seed} fails first: {violations[0]}")  # noqa: T201
            return
    pytest.fail(f"{mutation.__name__} survived {SEEDS} seeds")
