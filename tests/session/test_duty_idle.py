"""Idle users cost nothing (issue 27): serving processes stamp each set's last use in the
store, and the refresh duty leaves the sets nobody used for ``idle_after`` alone until they are
used again. Real parts: the sandbox (Keycloak) and SQLite or Redis stores."""

from __future__ import annotations

import asyncio
import time

from aiofinaccess import Duty, Schedule, SessionManager, Timeouts, TokenKey
from aiofinaccess.errors import StoreError
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores import RefreshDuty, TokenStore, UseStamps
from aiofinaccess.stores.sqlite import SQLiteStore
from tests.session.test_duty import (
    LIFETIME,
    all_renewed,
    manager,
    refreshes,
    sandbox_config,  # noqa: F401  (a fixture used by name)
    seeded,
    store_factory,  # noqa: F401  (a fixture used by name)
)
from tests.support.polling import until

ALICE, BOB, CAROL = (TokenKey("everifin", user) for user in ("alice", "bob", "carol"))
#: Due a second from now: stale at 57 s of a 60 s lifetime (POLICY's lead is 3 s).
DUE_SOON = LIFETIME - 4.0
IDLE_AFTER = 600.0


async def seed(
    store: TokenStore, sandbox: Sandbox, keys: list[TokenKey], *, via: TokenStore
) -> dict[str, int]:
    """Store each user's set, due about now, through a serving-only manager on ``via`` (another
    client of ``store``, which the manager closes) that stamps nothing; their versions."""
    async with manager(
        via, sandbox, duty=Duty(enabled=False), schedule=Schedule(jitter=0.0, idle_after=None)
    ) as setup:
        for key in keys:
            assert key.subject is not None
            await setup.store_token_set(
                "everifin", key.subject, seeded(sandbox, key.subject, age=DUE_SOON)
            )
    versions = {}
    for key in keys:
        found = await store.get(key)
        assert found is not None
        assert key.subject is not None
        versions[key.subject] = found.version
    return versions


def worker(store: TokenStore, sandbox: Sandbox, **schedule: object) -> SessionManager:
    return manager(
        store,
        sandbox,
        duty=Duty(enabled=True, poll=0.2),
        schedule=Schedule(jitter=0.0, idle_after=IDLE_AFTER, **schedule),  # type: ignore[arg-type]
    )


async def test_the_duty_renews_used_sets_and_leaves_idle_ones_alone(
    sandbox: Sandbox,
    store_factory: object,  # noqa: F811  (the fixture imported above)
) -> None:
    """Alice was last used long ago, Bob just now, Carol never stamped (stored before stamps):
    Bob and Carol are renewed (Carol counted as used from now), Alice leaves the duty with no
    token request."""
    store = store_factory()  # type: ignore[operator]
    assert isinstance(store, UseStamps)
    assert isinstance(store, RefreshDuty)
    versions = await seed(store, sandbox, [ALICE, BOB, CAROL], via=store_factory())  # type: ignore[operator]
    await store.mark_used({ALICE: 2 * IDLE_AFTER, BOB: 1.0})
    requests = refreshes(sandbox)
    async with worker(store_factory(), sandbox) as duty:
        await until(all_renewed(store, {"bob": versions["bob"], "carol": versions["carol"]}), 30.0)
        await until(lambda: _true_when(duty.stats.duty_idle == 1), 10.0)
    assert refreshes(sandbox) == requests + 2
    alice = await store.get(ALICE)
    assert alice is not None
    assert alice.version == versions["alice"]  # not renewed
    assert await store.due_count(now=time.time() + 10 * LIFETIME) == 2  # Alice has no due time
    idle = await store.idle_for([ALICE, BOB, CAROL])
    assert idle[ALICE] is not None
    assert idle[ALICE] >= 2 * IDLE_AFTER
    assert idle[CAROL] is not None
    assert idle[CAROL] < 30.0
    await store.aclose()


async def test_an_idle_user_who_comes_back_costs_one_renewal_on_demand(
    sandbox: Sandbox,
    store_factory: object,  # noqa: F811  (the fixture imported above)
) -> None:
    """Alice, left idle by the duty, asks for a token after it expired: one token request and
    one store write renew her set, which is back on the duty, and her use is stamped."""
    store = store_factory()  # type: ignore[operator]
    assert isinstance(store, UseStamps)
    assert isinstance(store, RefreshDuty)
    versions = await seed(store, sandbox, [ALICE], via=store_factory())  # type: ignore[operator]
    await store.mark_used({ALICE: 2 * IDLE_AFTER})
    async with worker(store_factory(), sandbox) as duty:
        await until(lambda: _true_when(duty.stats.duty_idle == 1), 10.0)
    assert await store.next_due() is None
    left = await store.get(ALICE)
    assert left is not None
    assert left.token_set.expires_at is not None
    # She comes back once her access token has expired (idle sets leave the duty when due).
    await asyncio.sleep(max(0.0, left.token_set.expires_at - time.time()))
    requests = refreshes(sandbox)
    serving = manager(
        store_factory(),  # type: ignore[operator]
        sandbox,
        duty=Duty(enabled=False),
        schedule=Schedule(idle_after=IDLE_AFTER),
    )
    async with serving:
        token = await serving.access_token("everifin", "alice")
        assert token
        await until(all_renewed(store, versions), 10.0)
    assert refreshes(sandbox) == requests + 1
    assert await store.next_due() is not None  # back on the duty
    idle = (await store.idle_for([ALICE]))[ALICE]
    assert idle is not None
    assert idle < 30.0
    assert serving.stats.use_stamps == 1
    await store.aclose()


async def test_with_keep_alive_an_idle_set_waits_for_its_refresh_tokens_deadline(
    sandbox: Sandbox,
    store_factory: object,  # noqa: F811  (the fixture imported above)
) -> None:
    """Keep-alive: an idle set is not renewed with each access token, only before its refresh
    token runs out."""
    store = store_factory()  # type: ignore[operator]
    assert isinstance(store, UseStamps)
    assert isinstance(store, RefreshDuty)
    await seed(store, sandbox, [ALICE], via=store_factory())  # type: ignore[operator]
    found = await store.get(ALICE)
    assert found is not None
    refresh_dead = found.token_set.refresh_expires_at
    assert refresh_dead is not None
    assert refresh_dead > time.time() + 600.0
    await store.mark_used({ALICE: 2 * IDLE_AFTER})
    requests = refreshes(sandbox)
    async with worker(store_factory(), sandbox, keep_alive=True) as duty:
        await until(lambda: _true_when(duty.stats.duty_idle == 1), 10.0)
    assert refreshes(sandbox) == requests
    due = await store.next_due()
    assert due is not None
    assert refresh_dead - 120.0 <= due < refresh_dead  # the keep-alive deadline, not sooner
    await store.aclose()


async def test_stamps_are_written_per_interval_and_never_for_the_dutys_own_renewals(
    sandbox: Sandbox, tmp_path: object
) -> None:
    """A serving process writes a use once per interval (an eighth of idle_after), nothing
    when nothing was used; a worker's renewal is no use."""
    path = f"{tmp_path}/stamps.db"
    store = SQLiteStore(path)
    versions = await seed(store, sandbox, [ALICE, BOB], via=SQLiteStore(path))
    fast = Schedule(jitter=0.0, idle_after=0.8)  # stamps every 0.1 s
    serving = manager(SQLiteStore(path), sandbox, duty=Duty(enabled=False), schedule=fast)
    async with serving:
        await serving.access_token("everifin", "alice")
        await until(lambda: _true_when(serving.stats.use_stamps == 1), 5.0)
        for _ in range(20):
            await serving.access_token("everifin", "alice")  # many uses in one interval
        await asyncio.sleep(0.3)
        assert serving.stats.use_stamps == 2
        await asyncio.sleep(0.3)  # no use: no stamp
        assert serving.stats.use_stamps == 2
    idle = await store.idle_for([ALICE, BOB])
    assert idle[ALICE] is not None
    assert idle[ALICE] < 1.0
    assert idle[BOB] is None
    await store.mark_used({BOB: 0.0})
    renewing = manager(SQLiteStore(path), sandbox, duty=Duty(enabled=True, poll=0.2), schedule=fast)
    async with renewing:
        await until(all_renewed(store, {"bob": versions["bob"]}), 30.0)
        await asyncio.sleep(0.5)  # several intervals after the renewal
    assert renewing.stats.use_stamps == 0
    bob = (await store.idle_for([BOB]))[BOB]
    assert bob is not None
    assert bob >= 0.5
    await store.aclose()


async def test_an_idle_set_whose_stamps_cannot_be_read_is_not_renewed_blind(
    sandbox: Sandbox,
    store_factory: object,  # noqa: F811  (the fixture imported above)
) -> None:
    """Alice is idle, but the duty's first read of her stamp fails: her claim runs out and the
    next read finds her idle, with no token request. (Renewing every set of a batch whose
    stamps could not be read cost an idle set one renewal per failed read, not one per idle
    stretch: the simulation's seed 30579, two failed reads, two renewals.)"""
    store = store_factory()  # type: ignore[operator]
    assert isinstance(store, UseStamps)
    assert isinstance(store, RefreshDuty)
    versions = await seed(store, sandbox, [ALICE], via=store_factory())  # type: ignore[operator]
    await store.mark_used({ALICE: 2 * IDLE_AFTER})
    requests = refreshes(sandbox)
    failing = store_factory()  # type: ignore[operator]
    reads = 0
    idle_for = failing.idle_for

    async def fails_once(keys: object) -> object:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise StoreError("the stamps are out of reach")
        return await idle_for(keys)

    failing.idle_for = fails_once
    worker = manager(
        failing,
        sandbox,
        duty=Duty(enabled=True, poll=0.2),
        schedule=Schedule(jitter=0.0, idle_after=IDLE_AFTER),
        timeouts=Timeouts(token=2.0, lease=1.0),  # a claim lasts 4 s
    )
    async with worker:
        await until(lambda: _true_when(reads >= 1), 10.0)
        await asyncio.sleep(1.0)
        assert refreshes(sandbox) == requests  # not renewed for want of its stamp
        await until(lambda: _true_when(worker.stats.duty_idle == 1), 15.0)
    assert refreshes(sandbox) == requests
    alice = await store.get(ALICE)
    assert alice is not None
    assert alice.version == versions["alice"]
    assert await store.next_due() is None
    await store.aclose()


async def _true_when(condition: bool) -> bool:
    return condition
