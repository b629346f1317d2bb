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


async def test_a_worker_claims_no_set_of_a_provider_it_does_not_serve(sandbox: Sandbox) -> None:
    """One worker per provider: a set of provider B stays due for B's worker (claimed by A it
    would wait out A's claim, longer than a short token's lead)."""
    store = ClaimsMemory()
    key = TokenKey("finapi", "ann")  # the worker registers everifin only
    await store.put(
        key, seeded(sandbox, "ann", age=LIFETIME - 2.0), expected_version=None, due_at=1.0
    )
    async with manager(store, sandbox, duty=True, duty_poll=0.1, duty_gather=0.05) as worker:
        await until(claims_made(store, 3), 10.0)
        assert worker.stats.duty_claimed == 0
    assert await store.due_count(now=time.time()) == 1  # still due: B's worker takes it at once
