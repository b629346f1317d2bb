"""An app that stores a login again after an error (its first write landed, then failed: a
replica that did not confirm it) must not bring back a refresh token spent since."""

from __future__ import annotations

import time

from aioresponses import aioresponses

from aiofinaccess import ClientCredentials, Schedule, Secret, SessionManager, TokenKey, TokenSet
from aiofinaccess.stores.memory import MemoryStore
from tests.support.tokens import EVERIFIN, token_body, token_requests, token_url


async def test_a_login_stored_again_after_its_renewal_keeps_the_renewed_set(
    mocked: aioresponses,
) -> None:
    store = MemoryStore()
    manager = SessionManager(store=store, schedule=Schedule(enabled=False))
    async with manager:
        manager.register(EVERIFIN, ClientCredentials("c", "s"))
        now = time.time()
        login = TokenSet(
            access_token="AT-0", refresh_token="RT-0", issued_at=now - 400, expires_at=now - 100
        )
        await manager.store_token_set(EVERIFIN, "alice", login)
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"), repeat=True)
        assert await manager.access_token(EVERIFIN, "alice") == "AT-1"  # RT-0 is spent
        await manager.store_token_set(EVERIFIN, "alice", login)  # the app's retry
        stored = await store.get(TokenKey(EVERIFIN.name, "alice"))
        assert stored is not None
        assert stored.token_set.refresh_token == Secret("RT-1")
        assert await manager.access_token(EVERIFIN, "alice") == "AT-1"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 1
