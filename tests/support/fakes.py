"""Shared fakes: a clock that never sleeps, the real clocks moved on by a stall, stores that
fail on demand, a log recorder, and waiting on the loop without a clock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from aiofinaccess.core.tokens import TokenKey, TokenSet
from aiofinaccess.stores import Versioned
from aiofinaccess.stores.memory import MemoryStore


class StallingClock:
    """The machine's clocks, moved on by ``gone`` seconds when told (a paused process, a wait
    for a connection, seen from outside)."""

    def __init__(self) -> None:
        self.gone = 0.0

    def wall(self) -> float:
        return time.time() + self.gone

    def monotonic(self) -> float:
        return time.monotonic() + self.gone

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """Wall and monotonic clocks that move only when told to; ``sleep`` advances them.

    With ``settle`` set, a sleeper first waits for it (for example "no renewal is running"),
    so time never jumps past work that is still in flight.
    """

    def __init__(self, wall: float = 1_800_000_000.0, monotonic: float = 1000.0) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self.slept: list[float] = []
        self.settle: Callable[[], Awaitable[None]] | None = None

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._monotonic += seconds

    async def sleep(self, seconds: float) -> None:
        if self.settle is not None:
            await self.settle()
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class FailingStore:
    """A memory store whose writes fail while ``fail_puts`` is set."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.fail_puts = False
        self.put_attempts = 0

    async def get(self, key: TokenKey) -> Versioned | None:
        return await self.inner.get(key)

    async def put(self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None) -> int:
        self.put_attempts += 1
        if self.fail_puts:
            raise OSError("disk full")
        return await self.inner.put(key, token_set, expected_version=expected_version)

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        return await self.inner.delete(key, expected_version=expected_version)

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[None]:
        return self.inner.lease(key, ttl=ttl)

    def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        return self.inner.keys(provider)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingHandler(logging.Handler):
    """Keeps every formatted record, including its args and extras."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.names.append(record.name)
        parts = [record.getMessage(), repr(record.args), repr(record.__dict__)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
        self.texts.append("\n".join(parts))


def settled_when_idle(
    tasks: Callable[[], set[asyncio.Task[object]]],
) -> Callable[[], Awaitable[None]]:
    """A ``FakeClock.settle`` that waits until no other task of ``tasks()`` is running."""

    async def settle() -> None:
        current = asyncio.current_task()
        for _ in range(10_000):
            if all(task.done() or task is current for task in tasks()):
                return
            await asyncio.sleep(0)
        raise AssertionError("work did not settle")

    return settle


async def eventually(condition: Callable[[], bool], rounds: int = 100_000) -> None:
    """Yield to the loop until ``condition()`` holds (bounded: a hang is a failure)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
