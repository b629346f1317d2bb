"""Renewal races the simulation found, each pinned by a small test: an ambiguous refresh waits
a token timeout before its replay, an answer later than its own expiry is never handed out, a
poisoned key adopts a login another process stored, an acquisition whose caller left leaves no
unretrieved exception, a dead grant keeps a new login on the duty, and a process paused before
its send never replays."""

from __future__ import annotations

import asyncio
import gc
import random
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from aiofinaccess import (
    ClientCredentials,
    ReauthorizationRequired,
    Schedule,
    SessionManager,
    StoreError,
    Timeouts,
    TokenSet,
)
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock
from tests.support.tokens import EVERIFIN, expired_set, token_body, token_requests, token_url

USER = "alice"
CLIENT = ClientCredentials("c", "s")


async def test_an_ambiguous_refresh_waits_a_token_timeout_before_trying_again(
    mocked: aioresponses, clock: FakeClock
) -> None:
    """Seed 165: a refresh timed out, was retried at once, and the first request arrived later
    and replayed the token. The retry now waits until the first surely arrived or died."""
    async with SessionManager(
        clock=clock, schedule=Schedule(enabled=False), timeouts=Timeouts(token=7.0)
    ) as manager:
        manager.register(EVERIFIN, CLIENT)
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(token_url(EVERIFIN), exception=TimeoutError())
        mocked.post(token_url(EVERIFIN), payload=token_body("AT-1", "RT-1"))
        assert await manager.access_token(EVERIFIN, USER) == "AT-1"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 2
        assert max(clock.slept) >= 7.0


async def test_an_answer_later_than_its_own_expiry_is_never_handed_out(
    mocked: aioresponses, clock: FakeClock
) -> None:
    """Seed 1519: the answer took longer than the new token's lifetime and the caller got a
    token that had already expired. Such a set gets one more round."""
    answers = iter([("AT-LATE", "RT-1", 301.0), ("AT-2", "RT-2", 0.0)])

    def slow(url: URL, **kwargs: Any) -> CallbackResult:
        access, refresh, took = next(answers)
        clock.advance(took)  # the answer travelled longer than expires_in
        return CallbackResult(payload=token_body(access, refresh, expires_in=300))

    async with SessionManager(clock=clock, schedule=Schedule(enabled=False)) as manager:
        manager.register(EVERIFIN, CLIENT)
        await manager.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(token_url(EVERIFIN), callback=slow, repeat=True)
        assert await manager.access_token(EVERIFIN, USER) == "AT-2"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 2


async def test_a_poisoned_key_adopts_a_login_another_process_stored(
    mocked: aioresponses, clock: FakeClock
) -> None:
    """Seed 10: a grant died in one process; another stored the user's new login; the first
    kept refusing. One store read (never a provider request) now finds the new login."""
    store = MemoryStore()
    async with (
        SessionManager(store=store, clock=clock, schedule=Schedule(enabled=False)) as worker,
        SessionManager(store=store, clock=clock, schedule=Schedule(enabled=False)) as web,
    ):
        worker.register(EVERIFIN, CLIENT)
        web.register(EVERIFIN, CLIENT)
        await worker.store_token_set(EVERIFIN, USER, expired_set(clock))
        mocked.post(token_url(EVERIFIN), status=400, payload={"error": "invalid_grant"})
        with pytest.raises(ReauthorizationRequired):
            await worker.access_token(EVERIFIN, USER)
        fresh = TokenSet("AT-NEW", issued_at=clock.wall(), expires_at=clock.wall() + 300)
        await web.store_token_set(EVERIFIN, USER, fresh)
        assert await worker.access_token(EVERIFIN, USER) == "AT-NEW"
        assert len(token_requests(mocked, token_url(EVERIFIN))) == 1


async def test_an_acquisition_whose_caller_left_leaves_no_unretrieved_exception(
    clock: FakeClock,
) -> None:
    """Seed 98 (earlier harness): an app stored a login, its caller was cancelled, the write
    failed; the owned task's error surfaced as "Task exception was never retrieved"."""

    class SlowFailingStore(MemoryStore):
        async def put(self, *args: Any, **kwargs: Any) -> int:
            await asyncio.sleep(0.05)
            raise StoreError("disk full")

    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        async with SessionManager(
            store=SlowFailingStore(), clock=clock, schedule=Schedule(enabled=False)
        ) as m:
            m.register(EVERIFIN, CLIENT)
            caller = asyncio.ensure_future(m.store_token_set(EVERIFIN, USER, expired_set(clock)))
            await asyncio.sleep(0.01)
            caller.cancel()
            await asyncio.gather(caller, return_exceptions=True)
            await m.wait_idle()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert [context.get("message") for context in seen] == []


def test_a_dead_grant_does_not_take_a_new_login_off_the_duty() -> None:
    """Seed 31974: the duty's renewal met invalid_grant, the app stored a new login, and only
    then did the duty clear the key's due time, the new set's (I6)."""
    from tests.simulation.world import run_seed  # noqa: PLC0415

    assert run_seed(31974).violations == []


def _freezing(process: Any) -> None:
    """Issue 22, finding 16's variant of the simulation: one token request in five stops its
    process just before it goes out (its store calls, the lease's heartbeat among them, wait
    too), for ``token_timeout`` plus half to one and a half leases."""
    from tests.simulation.world import Process  # noqa: PLC0415

    assert isinstance(process, Process)
    world, rng = process.world, random.Random(f"{process.world.seed}:{process.pid}:freeze")
    frozen_until = [0.0]
    for name in ("idp", "fin"):
        client = process.manager.oauth(name)
        send = client._token  # type: ignore[attr-defined]

        async def token(grant: str, fields: Any, send: Any = send) -> Any:
            if rng.random() < 0.2:
                freeze = world.config.token_timeout + world.config.lease_ttl * rng.uniform(0.5, 1.5)
                frozen_until[0] = world.loop.time() + freeze
                await asyncio.sleep(freeze)
            return await send(grant, fields)

        client._token = token  # type: ignore[attr-defined]
    store = process.manager._store
    call = store._call  # type: ignore[attr-defined]

    async def held_while_frozen(effect: Any, **options: Any) -> Any:
        if frozen_until[0] > world.loop.time():
            await asyncio.sleep(frozen_until[0] - world.loop.time())
        return await call(effect, **options)  # fails_after, at_send: as the store's own call

    store._call = held_while_frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [4, 8, 13, 24])
def test_a_process_paused_before_its_send_never_replays(seed: int) -> None:
    """Issue 22, finding 16: with freezes before sends, these seeds replayed a refresh token
    another process had redeemed while the sender was stopped (I1) before the last check where
    a request leaves (core/fencing.py); 12 of seeds 0-29 did."""
    import attrs  # noqa: PLC0415

    from tests.simulation.config import Config  # noqa: PLC0415
    from tests.simulation.world import run_seed  # noqa: PLC0415

    # The variant freezes the simulated store's calls: these seeds' worlds on that store (seed
    # 13 became a real-SQLite world later, where the variant's patch does not apply).
    config = attrs.evolve(Config.for_seed(seed, random.Random(seed)), store_impl="sim")
    violations = run_seed(seed, mutate=_freezing, config=config).violations
    assert [v for v in violations if "I1" in v] == []
