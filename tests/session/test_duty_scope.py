"""A duty worker claims only what it can renew: user sets of the providers it registered, and
its own client's set (issue 22, findings 2 and 6)."""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest

from aiofinaccess import ClientCredentials, Duty, TokenKey, UsageError
from aiofinaccess.core.tokens import client_label
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.session.registry import Registry
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
    async with manager(store, sandbox, duty=Duty(enabled=True, poll=0.1, gather=0.05)) as worker_x:
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
    async with manager(store, sandbox, duty=Duty(enabled=True, poll=0.1, gather=0.05)) as worker:
        await until(claims_made(store, 3), 10.0)
        assert worker.stats.duty_claimed == 0
    assert await store.due_count(now=time.time()) == 1  # still due: B's worker takes it at once


class Unfiltered(ClaimsMemory):
    """A third-party store whose claims ignore ``clients``: hands out everything due."""

    async def claim_due(self, **kwargs: Any) -> Any:
        everything = [TokenKey(name, client="any#1") for name in ("everifin", "finapi")]
        return await super().claim_due(**{**kwargs, "clients": everything})


async def test_a_store_that_does_not_filter_gets_nothing_renewed_it_should_not(
    sandbox: Sandbox,
) -> None:
    """The duty checks every key it is handed: another client's set and another provider's
    are left to their claim deadline, never renewed with this worker's credentials."""
    store = Unfiltered()
    _, credentials = everifin(sandbox)
    assert isinstance(credentials, ClientCredentials)
    other = TokenKey("everifin", client="any#1")
    unserved = TokenKey("finapi", "ann")
    versions = {}
    for key in (other, unserved):
        versions[key] = await store.put(
            key, seeded(sandbox, "x", age=LIFETIME - 2.0), expected_version=None, due_at=1.0
        )
    async with manager(store, sandbox, duty=Duty(enabled=True, poll=0.1, gather=0.05)) as worker:
        await until(lambda: _true(worker.stats.duty_claimed >= 2), 10.0)
        await worker.wait_idle()
        assert worker.stats.token_requests == 0
    for key, version in versions.items():
        found = await store.get(key)
        assert found is not None
        assert found.version == version


def test_the_registry_refuses_another_clients_key(sandbox: Sandbox) -> None:
    """Entries are found by provider and subject: another client's key would be renewed, and
    written over, with this process's credentials."""
    registry = Registry()
    provider, credentials = everifin(sandbox)
    assert isinstance(credentials, ClientCredentials)
    registry.add(provider, credentials, None)  # type: ignore[arg-type]
    own = TokenKey("everifin", client=client_label(credentials))
    other = TokenKey("everifin", client=client_label(attrs.evolve(credentials, client_secret="y")))
    assert registry.serves(own)
    assert registry.serves(TokenKey("everifin", "ann"))
    assert not registry.serves(other)
    assert not registry.serves(TokenKey("finapi", "ann"))
    with pytest.raises(UsageError):
        registry.entry(other, for_duty=True)
    assert registry.entry(own, for_duty=True).key == own
    with pytest.raises(UsageError):
        registry.entry(other, for_duty=True)  # not even with the own client's entry held


async def _true(value: bool) -> bool:
    return value
