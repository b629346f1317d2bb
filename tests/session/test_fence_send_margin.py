"""The last check before a refresh leaves keeps the write after it covered: a pause since the
fence that ate more than half the lease's margin stops the send (simulation seed 3620: a
process paused before its send sent with 1.3 s of a 10-s lease left, its exchange took it, its
write failed twice, the lease ran out and another process replayed the spent token)."""

from __future__ import annotations

import pytest

from aiofinaccess.core.clock import SystemClock
from aiofinaccess.core.fencing import LeaseLapsed
from aiofinaccess.core.settings import Timeouts
from aiofinaccess.session.fence import Fence
from aiofinaccess.session.jobs import Job


class _Lease:
    def __init__(self, remaining: float) -> None:
        self.left = remaining

    def remaining(self) -> float:
        return self.left

    async def extend(self, ttl: float) -> bool:
        self.left = max(self.left, ttl)
        return True


def _fence() -> Fence:
    # send_check reads only the timeouts and the job's lease
    return Fence(access=None, clock=SystemClock(), timeouts=Timeouts(token=1.0, lease=10.0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "sends"),
    [
        (3.5, True),  # what the fence asks for: the exchange and a quarter lease
        (2.3, True),  # a short wait since the fence: more than half the margin left
        (2.1, False),  # a pause ate more than half the margin
        (1.3, False),  # seed 3620: the exchange fits, the write after it does not
    ],
)
def test_the_send_needs_the_exchange_and_half_the_margin(left: float, sends: bool) -> None:
    run = Job(lease=_Lease(left))
    check = _fence().send_check(run)
    if sends:
        check()
    else:
        with pytest.raises(LeaseLapsed):
            check()
