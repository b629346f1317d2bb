"""The refresh duty shared by several workers costs the same per renewal as one worker: the
workers do not all wake for every due set (due sets gather between claims, so a fleet's claims
are bounded by ``workers / Duty.gather`` a second), and a worker that only renews never reads
the change feed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiofinaccess import Duty, Schedule, SessionManager, TokenKey
from aiofinaccess.core.tokens import Anchor, parse_token_response
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores.memory import MemoryStore
from tests.session.test_duty import (
    LIFETIME,
    POLICY,
    all_renewed,
    everifin,
    refreshes,
    sandbox_config,  # noqa: F401  (a fixture used by name)
)
from tests.support.polling import until
from tests.support.redis_server import running_redis

WORKERS = 4
SETS = 300
#: One set falls due every this many seconds (200 a second).
SPACING = 0.005


class CountingStore(MemoryStore):
    """A MemoryStore that counts the duty's calls to it."""

    def __init__(self) -> None:
        super().__init__()
        self.duty_calls = 0

    async def claim_due(self, **kwargs: Any) -> list[TokenKey]:
        self.duty_calls += 1
        return await super().claim_due(**kwargs)

    async def next_due(self, **kwargs: Any) -> float | None:
        self.duty_calls += 1
        return await super().next_due(**kwargs)


async def test_workers_do_not_all_wake_for_every_due_set(sandbox: Sandbox) -> None:
    store = CountingStore()
    provider, credentials = everifin(sandbox)
    lead = POLICY.lead(LIFETIME)
    first_due = time.time() + 1.0
    users = [f"user-{n}" for n in range(SETS)]
    async with SessionManager(
        store=store, policy=POLICY, schedule=Schedule(jitter=0.0), duty=Duty(enabled=False)
    ) as setup:
        setup.register(provider, credentials)  # type: ignore[arg-type]
        for n, user in enumerate(users):
            body = sandbox.service("keycloak").seed_session(user)
            # Issued so that it falls due at first_due + n * SPACING.
            issued = first_due + n * SPACING - (LIFETIME - lead)
            sent = Anchor(issued, time.monotonic() - (time.time() - issued))
            await setup.store_token_set("everifin", user, parse_token_response(body, sent=sent))
    before = {user: (await store.get(TokenKey("everifin", user))).version for user in users}  # type: ignore[union-attr]
    requests_before = refreshes(sandbox)
    workers = [
        SessionManager(
            store=store,
            policy=POLICY,
            schedule=Schedule(jitter=0.0),
            duty=Duty(enabled=True, poll=1.0),
        )
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.register(provider, credentials)  # type: ignore[arg-type]
        await worker.start()
    store.duty_calls = 0

    try:
        await until(all_renewed(store, before), 60.0)
        calls = store.duty_calls
        for worker in workers:
            await worker.wait_idle()
    finally:
        for worker in workers:
            await worker.aclose()
    renewed = refreshes(sandbox) - requests_before
    print(f"\n{calls} duty store calls for {renewed} renewals by {WORKERS} workers")  # noqa: T201
    assert renewed == SETS
    assert sandbox.stats()["reuse_violations"] == 0
    # Waking every worker for every due set made about 4 calls per renewal here; gathered
    # claims make about WORKERS / 0.1 s * 2 calls a second over 1.5 s: 0.4 per renewal.
    assert calls <= 0.75 * renewed


async def test_a_worker_that_only_renews_does_not_read_the_change_feed(sandbox: Sandbox) -> None:
    """Each renewal is published once and read by every subscriber: a duty-only worker that
    read them would add per-renewal work that grows with the fleet. It holds no set between
    renewals, so it has nothing to learn; a process subscribes once it serves a set."""
    import redis.asyncio as redis  # noqa: PLC0415  (the optional redis extra)

    from aiofinaccess.stores.redis import RedisStore  # noqa: PLC0415

    provider, credentials = everifin(sandbox)
    async with running_redis() as url:
        probe = redis.Redis.from_url(url)

        async def subscribers() -> int:
            counts = await probe.pubsub_numsub("herd:changes")
            return int(counts[0][1])

        async with SessionManager(
            store=RedisStore(url, prefix="herd:"), duty=Duty(enabled=True)
        ) as worker:
            worker.register(provider, credentials)  # type: ignore[arg-type]
            user = "user-0"
            body = sandbox.service("keycloak").seed_session(user)
            token_set = parse_token_response(body, sent=Anchor(time.time(), time.monotonic()))
            async with SessionManager(
                store=RedisStore(url, prefix="herd:"), duty=Duty(enabled=False)
            ) as app:
                app.register(provider, credentials)  # type: ignore[arg-type]
                assert await subscribers() == 0  # neither holds a set yet
                await app.store_token_set("everifin", user, token_set)
                await until(lambda: _equals(subscribers, 1), 5.0)
                await asyncio.sleep(0.2)
                assert await subscribers() == 1
                assert worker._watcher is None  # the one is the app's
        await probe.aclose()


async def _equals(count: Any, expected: int) -> bool:
    return bool(await count() == expected)


class ReadCountingStore(MemoryStore):
    """A MemoryStore that counts reads of token sets."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key: TokenKey) -> Any:
        self.reads += 1
        return await super().get(key)


async def test_a_scheduled_renewal_reads_its_set_once_before_the_lease_and_once_under_it(
    sandbox: Sandbox,
) -> None:
    """The duty reads a claimed set (renewed elsewhere? another client's?) and hands what it
    read to the renewal, which reads the store again only under the lease: two reads per
    renewal, not three."""
    store = ReadCountingStore()
    provider, credentials = everifin(sandbox)
    users = [f"user-{n}" for n in range(20)]
    async with SessionManager(
        store=store, policy=POLICY, schedule=Schedule(jitter=0.0), duty=Duty(enabled=False)
    ) as setup:
        setup.register(provider, credentials)  # type: ignore[arg-type]
        for user in users:
            body = sandbox.service("keycloak").seed_session(user)
            issued = time.time() - LIFETIME + 1.0  # due now
            sent = Anchor(issued, time.monotonic() - (time.time() - issued))
            await setup.store_token_set("everifin", user, parse_token_response(body, sent=sent))
    before = {user: (await store.get(TokenKey("everifin", user))).version for user in users}  # type: ignore[union-attr]
    requests_before = refreshes(sandbox)
    async with SessionManager(
        store=store, policy=POLICY, schedule=Schedule(jitter=0.0), duty=Duty(enabled=True)
    ) as worker:
        worker.register(provider, credentials)  # type: ignore[arg-type]
        store.reads = 0
        await worker.start()
        await until(_renewed_without_reading(store, before), 30.0)
        await worker.wait_idle()
        reads = store.reads
    assert refreshes(sandbox) - requests_before == len(users)
    assert reads == 2 * len(users)


def _renewed_without_reading(store: ReadCountingStore, before: dict[str, int]) -> Any:
    """``all_renewed``, without counting its own reads."""
    check = all_renewed(store, before)

    async def uncounted() -> bool:
        reads = store.reads
        try:
            return await check()
        finally:
            store.reads = reads

    return uncounted
