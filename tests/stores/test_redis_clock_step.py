"""A step of the Redis host's wall clock must not free a live lease (issue 22, finding 18c).

Redis expires keys (``PX``) on its host's wall clock: an NTP step forward there ends every
``PX`` at once. The redis-server here runs with ``tests/support/wallclock.c`` preloaded (gcc
builds it): its wall clock is the real one plus the seconds in a file the test rewrites, its
monotonic clock is left alone, as a real step leaves it. (libfaketime does the same but hangs
in the start-up of jemalloc, which Debian's redis-server uses.)
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from aiofinaccess.core.errors import LeaseBusyError
from aiofinaccess.stores.redis import RedisStore
from tests.stores.contract import ALICE
from tests.support.redis_server import running_redis

SHIM = Path(__file__).parent.parent / "support" / "wallclock.c"


@attrs.frozen
class SteppedRedis:
    url: str
    clock: Path

    async def step(self, seconds: int) -> None:
        """Step the server's wall clock ``seconds`` ahead of the real one."""
        self.clock.write_text(f"{seconds:+d}\n")
        await asyncio.sleep(0.05)  # the shim rereads it at every clock reading; let one pass


def build_shim(directory: Path) -> Path:
    """Compile the wall-clock shim into ``directory`` (gcc is on every machine of the project)."""
    library = directory / "wallclock.so"
    command = ["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(SHIM)]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603  (fixed arguments)
    return library


@pytest_asyncio.fixture
async def stepped(tmp_path: Path) -> AsyncIterator[SteppedRedis]:
    library = await asyncio.to_thread(build_shim, tmp_path)
    clock = tmp_path / "offset"
    clock.write_text("+0\n")
    environment = {"LD_PRELOAD": str(library), "WALLCLOCK_OFFSET_FILE": str(clock)}
    async with running_redis(environment=environment) as url:
        yield SteppedRedis(url, clock)


async def test_redis_expires_keys_on_its_wall_clock(stepped: SteppedRedis) -> None:
    """The edge itself: a key with 30 s left is gone after a 60-s step of the server's clock."""
    async with aioredis.from_url(stepped.url) as client:
        await client.set("probe", "1", px=30_000)
        await stepped.step(60)
        assert await client.get("probe") is None


async def test_a_wall_clock_step_on_the_redis_host_frees_no_live_lease(
    stepped: SteppedRedis,
) -> None:
    holder, waiter = RedisStore(stepped.url), RedisStore(stepped.url)
    try:
        async with holder.lease(ALICE, ttl=30) as held:
            await stepped.step(60)
            assert held.remaining() > 25  # the holder counts on its lease for 25 s more
            with pytest.raises(LeaseBusyError):
                async with waiter.lease(ALICE, ttl=0.5):
                    pass  # pragma: no cover
            assert await held.extend(30)
    finally:
        await holder.aclose()
        await waiter.aclose()
