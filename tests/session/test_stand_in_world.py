"""The simulated store's stand-in world (a real loop, no simulation around it) fails a call
whose message raised, at once, instead of leaving the caller waiting for an answer that never
comes: a hook the harness lacks or breaks is a test failure, not a hang (issue 22)."""

from __future__ import annotations

import asyncio
import random

import pytest

from aiofinaccess import TokenKey, TokenSet
from tests.session.test_clock_skew import CORRECT
from tests.simulation.stand_in import StandInProcess, StandInWorld
from tests.simulation.store import DutyStoreClient, SharedStore

KEY = TokenKey("everifin", "alice")


class _BrokenWorld(StandInWorld):
    """A world whose hook for a landed write raises (as a hook it lacked would)."""

    def put_landed(self, key: object, token_set: object) -> None:
        raise RuntimeError("the harness broke inside a message")


async def test_a_message_that_raises_fails_its_call_instead_of_hanging() -> None:
    world = _BrokenWorld()
    shared = SharedStore(world, random.Random(7), faults=0.0)  # type: ignore[arg-type]
    client = DutyStoreClient(shared, StandInProcess(0, CORRECT))  # type: ignore[arg-type]
    now = CORRECT.wall()
    async with asyncio.timeout(5):  # a regression fails here rather than hanging the run
        with pytest.raises(RuntimeError, match="harness broke"):
            await client.put(KEY, TokenSet("AT", expires_at=now + 60), expected_version=None)
    with pytest.raises(RuntimeError, match="harness broke"):  # and the world reports it too
        world.check()
