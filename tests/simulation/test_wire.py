"""Messages on the simulated wire belong to the world, not to their sender: a crash cannot recall
a packet that left. A store write sent just before its sender crashes still reaches the store
(and its answer is dropped); an IdP request too. A message that raises (a harness bug) fails
the call waiting on it and the seed, rather than leaving the caller waiting (issue 22)."""

from __future__ import annotations

import asyncio
import random

import attrs
import pytest

from aiofinaccess.core.tokens import TokenKey, TokenSet
from tests.simulation.world import Config, Process, World

KEY = TokenKey("idp", "user-0")


def test_a_write_in_flight_reaches_the_store_after_its_sender_crashed() -> None:
    config = attrs.evolve(Config.draw(random.Random(0)), store_impl="sim", duty="off")
    world = World(0, config=config)
    store = world.store

    async def scenario() -> tuple[bool, bool]:
        process = Process(world, 0, 1)  # as World.boot makes one, not started
        client = store.client(process, duty=False)
        now = world.wall()
        token_set = TokenSet("AT", issued_at=now, expires_at=now + 60.0)
        write = process.spawn(client.put(KEY, token_set, expected_version=None))
        await asyncio.sleep(0)  # the write leaves: it travels for at least 0.5 ms
        await asyncio.sleep(0)
        sent = store.calls == 1
        process.crash()
        await asyncio.sleep(1.0)  # far past the longest trip (20 ms)
        return sent, write.cancelled()

    try:
        sent, cancelled = world.loop.run_until_complete(scenario())
    finally:
        world.loop.close()
    assert sent, "the write never left its process"
    assert cancelled  # the crash ended its sender's wait: the answer went nowhere
    assert KEY in store.records, "a write that had left its process never reached the store"


def test_a_message_that_raises_fails_its_reply_and_the_seed() -> None:
    """A harness bug inside a message reaches the caller waiting on it, and fails the seed."""
    world = World(0, config=attrs.evolve(Config.draw(random.Random(0)), store_impl="sim"))

    async def broken() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("the harness broke inside a message")

    async def scenario() -> None:
        reply: asyncio.Future[None] = world.loop.create_future()
        world.message(broken(), reply)
        async with asyncio.timeout(5):  # virtual seconds: a regression fails, never hangs
            with pytest.raises(RuntimeError, match="harness broke"):
                await reply

    try:
        world.loop.run_until_complete(scenario())
    finally:
        world.loop.close()
    assert [v for v in world.violations if "harness: a message raised" in v], world.violations


def test_a_message_that_raises_ends_the_world_at_once() -> None:
    """The app retries a failed store call for as long as it runs: a harness bug raised in
    every write (the inline PostgreSQL connections once lacked the store's new call) would
    keep a world running for ever. One raise ends the world where it happened."""
    world = World(0, config=attrs.evolve(Config.draw(random.Random(0)), store_impl="sim"))
    write = world.store.write
    raised: list[float] = []

    def breaks_once(*args: object) -> None:
        if not raised:
            raised.append(world.loop.time())
            raise RuntimeError("the harness broke inside a write")
        write(*args)  # type: ignore[arg-type]

    world.store.write = breaks_once  # type: ignore[method-assign]
    world.run()
    assert raised, "no write reached the store"
    assert [v for v in world.violations if "harness broke" in v], world.violations
    assert world.loop.time() < raised[0] + 1.0  # not the world's whole run (35 s or more)
