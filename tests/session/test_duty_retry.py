"""A due set whose renewal failed for a passing reason is tried again before its refresh token
runs out, not only when its claim does (issue 22, seed 41 of the grown simulation: a claim
longer than the refresh token's life left a live Keycloak session to die un-renewed)."""

from __future__ import annotations

import time
from typing import Any

import attrs

from aiofinaccess import Duty, Timeouts, TokenKey
from aiofinaccess.core.errors import StoreError
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

CLAIM_TTL = 30.0
REFRESH_LEFT = 4.0


class FirstLeaseFails(ClaimsMemory):
    """The first lease taken fails (a store hiccup after the set was read)."""

    failed = False

    def lease(self, key: TokenKey, *, ttl: float) -> Any:
        if not self.failed:
            self.failed = True
            raise StoreError("a store hiccup")
        return super().lease(key, ttl=ttl)


async def test_a_failed_renewal_is_tried_again_before_the_refresh_token_runs_out(
    sandbox: Sandbox,
) -> None:
    store = FirstLeaseFails()
    key = TokenKey("everifin", "ann")
    stale = seeded(sandbox, "ann", age=LIFETIME - 1.0)
    dying = attrs.evolve(stale, refresh_expires_at=time.time() + REFRESH_LEFT)
    first = await store.put(key, dying, expected_version=None, due_at=time.time() - 1.0)
    events: list[GrantLost] = []
    async with manager(
        store,
        sandbox,
        duty=Duty(enabled=True, poll=0.1, gather=0.05, claim_ttl=CLAIM_TTL),
        timeouts=Timeouts(token=2.0, lease=2.0),
    ) as worker:
        worker.subscribe(lambda event: isinstance(event, GrantLost) and events.append(event))

        async def renewed() -> bool:
            found = await store.get(key)
            return bool(events) or (found is not None and found.version != first)

        await until(renewed, 3 * REFRESH_LEFT)
    assert store.failed
    assert events == []
    found = await store.get(key)
    assert found is not None
    assert found.version != first
