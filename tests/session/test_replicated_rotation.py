"""The session manager over a RedisStore with ``Replication`` whose replica lags: a rotated set
is served only once the replica has it; meanwhile callers get StoreError, never the set it
replaced, and no second token request is sent."""

from __future__ import annotations

import time
import uuid

import pytest
from aioresponses import aioresponses

from aiofinaccess import (
    ClientCredentials,
    RetryPolicy,
    Schedule,
    Secret,
    SessionManager,
    StoreError,
    TokenKey,
    TokenSet,
)
from aiofinaccess.stores.redis import RedisStore
from tests.support.failover import cli, replicated_redis, stopped
from tests.support.tokens import EVERIFIN, token_body, token_requests, token_url


async def test_a_rotated_set_is_served_only_once_a_replica_has_it(mocked: aioresponses) -> None:
    async with replicated_redis(60.0) as (primary, replica):
        url = f"redis://127.0.0.1:{primary}/0?wait_replicas=1&wait_timeout=0.5"
        store = RedisStore(url, prefix=f"m-{uuid.uuid4().hex[:8]}:")
        retry = RetryPolicy(backoff_initial=0.05, backoff_max=0.2)
        manager = SessionManager(store=store, schedule=Schedule(enabled=False), retry=retry)
        async with manager:
            manager.register(EVERIFIN, ClientCredentials("c", "s"))
            now = time.time()
            expired = TokenSet(
                access_token="AT-0", refresh_token="RT-0", issued_at=now - 400, expires_at=now - 100
            )
            await manager.store_token_set(EVERIFIN, "alice", expired)
            mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"), repeat=True)
            async with stopped(cli, replica):
                for _ in range(2):  # the renewal's callers, then one while its write is pending
                    with pytest.raises(StoreError):
                        await manager.access_token(EVERIFIN, "alice")
            await manager.wait_idle()
            assert await manager.access_token(EVERIFIN, "alice") == "AT-1"
            stored = await store.get(TokenKey(EVERIFIN.name, "alice"))
            assert stored is not None
            assert stored.token_set.refresh_token == Secret("RT-1")
            assert len(token_requests(mocked, token_url(EVERIFIN))) == 1
