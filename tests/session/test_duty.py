"""The refresh duty (issue 16): due times in the store, claimed by one worker per set.

Real parts: the sandbox (Keycloak rotation with reuse detection) and SQLite or Redis stores
shared by several managers in one process (the CLI worker test runs separate processes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from aiofinaccess import (
    Duty,
    Limits,
    RefreshPolicy,
    Schedule,
    SessionManager,
    SQLiteStore,
    Timeouts,
    TokenKey,
)
from aiofinaccess.core.tokens import Anchor, TokenSet, client_label, parse_token_response
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.integrations.testing import sandbox_providers
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.stores import RefreshDuty, TokenStore
from aiofinaccess.stores.memory import MemoryStore
from aiofinaccess.stores.redis import RedisStore
from tests.support.polling import until
from tests.support.redis_server import running_redis

LIFETIME = 60.0
#: Renew in the last few seconds of a token's life, so "due now" is easy to arrange.
POLICY = RefreshPolicy(lead_fraction=0.05, min_lead=1.0, max_lead=3.0, expiry_margin=0.5)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(keycloak_access_ttl=LIFETIME)


@pytest.fixture(params=["sqlite", "redis"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[type[TokenStore] | object]:
    """Opens a new client of one shared store per call (one per simulated process)."""
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        yield lambda: SQLiteStore(path)
        return
    async with running_redis() as url:
        yield lambda: RedisStore(url, prefix="duty-test:")


def seeded(sandbox: Sandbox, user: str, *, age: float) -> TokenSet:
    """A live Keycloak session for ``user`` whose token set looks ``age`` seconds old."""
    body = sandbox.service("keycloak").seed_session(user)
    return parse_token_response(body, sent=Anchor(time.time() - age, time.monotonic() - age))


def everifin(sandbox: Sandbox) -> tuple[object, object]:
    return sandbox_providers(sandbox)[1]


def manager(store: TokenStore, sandbox: Sandbox, **options: object) -> SessionManager:
    options.setdefault("schedule", Schedule(jitter=0.0))
    built = SessionManager(store=store, policy=POLICY, **options)  # type: ignore[arg-type]
    provider, credentials = everifin(sandbox)
    built.register(provider, credentials)  # type: ignore[arg-type]
    return built


async def seed_users(
    store: TokenStore, sandbox: Sandbox, users: list[str], *, age: float, via: TokenStore
) -> dict[str, int]:
    """Store each user's set through a serving-only manager on ``via`` (another client of
    ``store``, which the manager closes), which writes its due time; return their versions."""
    async with manager(via, sandbox, duty=Duty(enabled=False)) as setup:
        for user in users:
            await setup.store_token_set("everifin", user, seeded(sandbox, user, age=age))
    versions = {}
    for user in users:
        found = await store.get(TokenKey("everifin", user))
        assert found is not None
        versions[user] = found.version
    return versions


def all_renewed(store: TokenStore, before: dict[str, int]) -> Callable[[], Awaitable[bool]]:
    """A check for ``until``: has every user of ``before`` a stored set newer than its version?"""

    async def check() -> bool:
        for user, version in before.items():
            found = await store.get(TokenKey("everifin", user))
            if found is None or found.version == version:
                return False
        return True

    return check


def refreshes(sandbox: Sandbox) -> int:
    count: int = sandbox.stats()["token_requests"].get("everifin_refresh_token", 0)
    return count


async def test_managers_with_the_duty_renew_each_due_set_exactly_once(
    sandbox: Sandbox, store_factory: object
) -> None:
    """Three managers share one store: 30 due sets, 30 token requests, no reuse."""
    users = [f"user-{n}" for n in range(30)]
    store = store_factory()  # type: ignore[operator]
    assert isinstance(store, RefreshDuty)
    before = await seed_users(
        store,
        sandbox,
        users,
        age=LIFETIME - 2.0,
        via=store_factory(),  # type: ignore[operator]
    )
    assert await store.due_count(now=time.time() + 5) == len(users)
    requests_before = refreshes(sandbox)
    workers = [
        manager(store_factory(), sandbox, duty=Duty(batch=4, poll=0.2))  # type: ignore[operator]
        for _ in range(3)
    ]
    for worker in workers:
        await worker.start()

    try:
        await until(all_renewed(store, before), 60.0)
        await asyncio.sleep(1.0)  # any second renewal would show up now
        for worker in workers:
            await worker.wait_idle()
    finally:
        for worker in workers:
            await worker.aclose()
    stats = sandbox.stats()
    assert refreshes(sandbox) - requests_before == len(users)
    assert stats["reuse_violations"] == 0
    assert stats["sessions_killed"] == 0
    assert sum(worker.stats.duty_claimed for worker in workers) >= len(users)
    assert sum(worker.stats.token_requests for worker in workers) == len(users)
    # Each renewed set is due again a lifetime later, and no worker kept the sets it renewed.
    assert await store.due_count(now=time.time() + 5) == 0
    assert all(len(worker._registry) == 0 for worker in workers)
    await store.aclose()


async def test_a_serving_only_manager_keeps_a_bounded_working_set(sandbox: Sandbox) -> None:
    """working_set=K: never more than K entries, and every user is still served."""
    store = MemoryStore()
    users = [f"user-{n}" for n in range(25)]
    await seed_users(store, sandbox, users, age=0.0, via=store)
    async with manager(
        store, sandbox, duty=Duty(enabled=False), limits=Limits(working_set=5)
    ) as serving:
        for _round in range(3):
            for user in users:
                token = await serving.access_token("everifin", user)
                stored = await store.get(TokenKey("everifin", user))
                assert stored is not None
                assert token == stored.token_set.access_token.reveal()
                # Entries whose job is still letting go may be kept: none is, once idle.
                await serving.wait_idle()
                assert len(serving._registry) <= 5
        assert serving.stats.working_set_evictions >= 3 * len(users) - 5
        assert serving.stats.token_requests == 0  # served from the store, nothing renewed
        assert serving.stats.duty_claimed == 0  # serving only: claims nothing


class CountingStore(MemoryStore):
    """A memory store that counts the reads a manager makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.scans = 0

    async def get(self, key: TokenKey):  # type: ignore[no-untyped-def]
        self.reads += 1
        return await super().get(key)

    async def get_many(self, keys):  # type: ignore[no-untyped-def]
        self.reads += 1
        return await super().get_many(keys)

    def keys(self, provider: str | None = None):  # type: ignore[no-untyped-def]
        self.scans += 1
        return super().keys(provider)


async def test_start_reads_no_set_of_a_store_with_the_duty(sandbox: Sandbox) -> None:
    """10,000 stored sets: start() makes one probe read, no scan, and holds nothing."""
    store = CountingStore()
    template = seeded(sandbox, "template", age=0.0)
    far = time.time() + 3600
    for n in range(10_000):
        await store.put(
            TokenKey("everifin", f"user-{n}"), template, expected_version=None, due_at=far
        )
    started = time.perf_counter()
    async with manager(store, sandbox, duty=Duty(enabled=True)) as fleet:
        await fleet.ready()
        elapsed = time.perf_counter() - started
        assert store.scans == 0
        assert store.reads <= 1  # the probe that proves the store answers
        assert len(fleet._registry) == 0
        # ... and still serves any user on demand.
        await fleet.access_token("everifin", "user-9999")
        assert len(fleet._registry) == 1
    print(f"\nstart() with 10,000 stored sets: {elapsed * 1000:.1f} ms")  # noqa: T201
    # Without the duty (the per-process scheduler) the same start restores every set.
    plain = CountingStore()
    for n in range(1_000):
        await plain.put(TokenKey("everifin", f"user-{n}"), template, expected_version=None)
    async with manager(plain, sandbox) as local:
        assert plain.scans == 1
        assert len(local._registry) == 1_000


async def test_claims_of_a_killed_worker_fall_to_others_after_their_deadline(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A worker that claimed a batch and died: another renews those sets once the claims end."""
    path = tmp_path / "shared.db"
    store = SQLiteStore(path)
    users = [f"user-{n}" for n in range(6)]
    before = await seed_users(store, sandbox, users, age=LIFETIME - 2.0, via=SQLiteStore(path))
    claim_for = 3.0
    for user in users:  # due now on the store's clock, whatever the jitter drew
        await store.reschedule(TokenKey("everifin", user), time.time() - 1.0)
    _, credentials = everifin(sandbox)
    claimed = await store.claim_due(
        limit=100,
        claim_for=claim_for,
        owner="killed",
        clients=[TokenKey("everifin", client=client_label(credentials))],  # type: ignore[arg-type]
    )
    deadline = time.time() + claim_for
    assert sorted(key.subject or "" for key in claimed) == sorted(users)
    requests_before = refreshes(sandbox)
    async with manager(SQLiteStore(path), sandbox, duty=Duty(poll=0.2)) as survivor:
        await asyncio.sleep(max(0.0, deadline - time.time() - 0.5))
        assert refreshes(sandbox) == requests_before  # still claimed by the dead worker

        await until(all_renewed(store, before), 30.0)
        renewed_by = time.time() - deadline
        await survivor.wait_idle()
    print(f"\nclaims of a dead worker renewed {renewed_by:.2f} s after their deadline")  # noqa: T201
    assert renewed_by <= 1.0 + 0.5  # the poll interval and one renewal
    assert refreshes(sandbox) - requests_before == len(users)
    assert sandbox.stats()["sessions_killed"] == 0
    await store.aclose()


async def test_a_set_renewed_elsewhere_is_rescheduled_not_renewed(sandbox: Sandbox) -> None:
    """A claimed set that someone renewed since it fell due gets its due time from the set."""
    store = MemoryStore()
    await seed_users(store, sandbox, ["ann"], age=LIFETIME - 2.0, via=store)
    key = TokenKey("everifin", "ann")
    # Another process renews it (and, being old code or a crash, leaves the old due time).
    async with manager(store, sandbox, duty=Duty(enabled=False)) as other:
        await other.refresh("everifin", "ann")
    await store.reschedule(key, time.time() - 1.0)
    requests_before = refreshes(sandbox)
    async with manager(store, sandbox, duty=Duty(enabled=True, poll=0.1)) as worker:
        await until(lambda: _true_when(worker.stats.duty_renewed_elsewhere >= 1), 30.0)
        await worker.wait_idle()
    assert refreshes(sandbox) == requests_before
    due = await store.next_due()
    assert due is not None
    assert due > time.time() + LIFETIME / 2


async def _true_when(value: bool) -> bool:
    return value


def test_options_are_checked() -> None:
    for build, message in (
        (lambda: Limits(working_set=0), "Limits.working_set must be a positive number"),
        (lambda: Duty(batch=0), "Duty.batch must be a positive number"),
        (
            lambda: SessionManager(
                duty=Duty(claim_ttl=15.0), timeouts=Timeouts(token=10.0, lease=10.0)
            ),
            r"Duty.claim_ttl must be at least Timeouts.token \+ lease",
        ),
        (lambda: Duty(poll=0.0), "Duty.poll must be a positive number"),
        (lambda: Duty(gather=-1.0), "Duty.gather must be a positive number"),
        (lambda: Duty(enabled="yes"), "Duty.enabled must be True, False or None"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigurationError, match=message):
            build()


def test_duty_true_needs_a_store_that_keeps_due_times() -> None:
    class PlainStore:
        async def get(self, key: TokenKey) -> None:
            return None

    with pytest.raises(ConfigurationError, match=r"Duty\(enabled=True\) needs a store"):
        SessionManager(store=PlainStore(), duty=Duty(enabled=True))  # type: ignore[arg-type]
