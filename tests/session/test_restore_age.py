"""A restored set's age counts from before the store was asked, as a read's does.

``restore()`` anchored each set where its answer was processed: the time between the store
measuring the age and this process reading the answer (a busy loop, a slow network, a batch
of ``get`` calls on a store without ``get_many``) made the set look younger by as long. Under
load on two cores a worker with a 50 ms expiry margin handed out access tokens 50 to 200 ms
after they expired (tests/session/test_multiprocess.py on Python 3.12, after the write's own
transit was counted)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

import pytest

from aiofinaccess import ClientCredentials, Schedule, SessionManager, TokenKey, TokenSet
from aiofinaccess.core.tokens import Anchor
from aiofinaccess.stores import Versioned
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis
from tests.support.tokens import EVERIFIN

#: How long the answer takes to reach the manager after the store measured the age.
LATE = 1.0
LIFETIME = 300.0


class SlowAnswers(RedisStore):
    """A Redis store whose answers arrive ``LATE`` seconds after Redis measured them."""

    async def get(self, key: TokenKey) -> Versioned | None:
        found = await super().get(key)
        await asyncio.sleep(LATE)
        return found

    async def get_many(self, keys: Iterable[TokenKey]) -> dict[TokenKey, Versioned]:
        found = await super().get_many(keys)
        await asyncio.sleep(LATE)
        return found


@pytest.mark.parametrize("bulk", [True, False], ids=["get_many", "get"])
async def test_a_restored_set_is_never_younger_than_it_is(bulk: bool) -> None:
    key = TokenKey(EVERIFIN.name, "alice")
    async with running_redis() as url:
        prefix = f"restore-age-{uuid.uuid4().hex[:8]}:"
        writer = RedisStore(url, prefix=prefix)
        reader = SlowAnswers(url, prefix=prefix)
        if not bulk:
            reader.get_many = None  # type: ignore[assignment,method-assign]  (a store without)
        sent = Anchor(time.time() - 100.0, time.monotonic() - 100.0)
        token_set = TokenSet(
            "AT",
            refresh_token="RT",
            issued_at=sent.wall,
            expires_at=sent.wall + LIFETIME,
            anchor=sent,
        )
        try:
            await writer.put(key, token_set, expected_version=None)
        finally:
            await writer.aclose()
        async with SessionManager(store=reader, schedule=Schedule(enabled=False)) as manager:
            manager.register(EVERIFIN, ClientCredentials("c", "s"))
            assert await manager.restore() == 1
            held = await manager.token_set(EVERIFIN, "alice")
    expires = held.expires_at_monotonic()
    assert expires is not None
    true_expiry = sent.monotonic + LIFETIME
    assert expires <= true_expiry + 0.05, expires - true_expiry
