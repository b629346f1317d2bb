"""A duty worker claims only what it can renew: user sets of the providers it registered, and
its own client's set (issue 22, findings 2 and 6)."""

from __future__ import annotations

import time

import attrs

from aiofinaccess import ClientCredentials, TokenKey
from aiofinaccess.core.tokens import client_label
from aiofinaccess.sandbox import Sandbox
from tests.session.duty_support import ClaimsMemory, claims_made
from tests.session.test_duty import (
    LIFETIME,
    everifin,
    manager,
    sandbox_config,  # noqa: F401  (a fixture used by name)
    seeded,
)
from tests.support.polling import until


async def test_a_worker_never_renews_another_clients_token(sandbox: Sandbox) -> None:
    """Client Y's token set is due in a store that worker X (other credentials) claims from:
    X must neither claim it nor send its own secret for it nor write it."""
    store = ClaimsMemory()
    _, credentials = everifin(sandbox)
    assert isinstance(credentials, ClientCredentials)
    other = attrs.evolve(credentials, client_secret="client-y-secret")
    key_y = TokenKey("everifin", client=client_label(other))
    stored = seeded(sandbox, "client-y", age=LIFETIME - 2.0)
    version = await store.put(key_y, stored, expected_version=None, due_at=time.time() - 1.0)
    async with manager(store, sandbox, duty=True, duty_poll=0.1, duty_gather=0.05) as worker_x:
        await until(claims_made(store, 3), 10.0)
        await worker_x.wait_idle()
        found = await store.get(key_y)
        assert found is not None
        assert found.version == version, "worker X wrote client Y's token set"
        assert worker_x.stats.token_requests == 0
        assert worker_x.stats.duty_claimed == 0
