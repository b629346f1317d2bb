"""A set whose refresh token has run out leaves the duty: one GrantLost per dead set, not
one per claim (issue 22, finding 13)."""

from __future__ import annotations

import asyncio
import time

import attrs

from aiofinaccess import Duty, Timeouts, TokenKey
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.session.events import GrantLost
from tests.session.duty_support import ClaimsMemory
from tests.session.test_duty import (
    LIFETIME,
    manager,
    sandbox_config,  # noqa: F401  (a fixture used by name)
    seeded,
)
from tests.support.polling import until

CLAIM_TTL = 1.0


async def test_a_dead_set_leaves_the_duty_with_one_reauth_event(sandbox: Sandbox) -> None:
    store = ClaimsMemory()
    key = TokenKey("everifin", "ann")
    expired = seeded(sandbox, "ann", age=LIFETIME + 10.0)
    dead = attrs.evolve(expired, refresh_expires_at=time.time() - 5.0)
    await store.put(key, dead, expected_version=None, due_at=time.time() - 1.0)
    events: list[GrantLost] = []
    async with manager(
        store,
        sandbox,
        duty=Duty(enabled=True, poll=0.1, gather=0.05, claim_ttl=CLAIM_TTL),
        timeouts=Timeouts(token=0.5, lease=0.5),
    ) as worker:
        worker.subscribe(lambda event: isinstance(event, GrantLost) and events.append(event))

        async def reauth() -> bool:
            return bool(events)

        await until(reauth, 10.0)
        # Three claim deadlines: a dead set still on the duty is claimed (and reported) again.
        await asyncio.sleep(3.5 * CLAIM_TTL)
        await worker.wait_idle()
        claims = worker.stats.duty_claimed
    assert [event.reason for event in events] == ["refresh_token_unavailable"]
    assert claims == 1
    assert await store.next_due() is None
