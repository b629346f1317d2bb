"""Time as a dependency: the manager reads clocks and sleeps only through a :class:`Clock`.

Tests pass a fake clock and never sleep; production uses :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol

from .tokens import Anchor

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """Wall-clock and monotonic readings, and a way to wait."""

    def wall(self) -> float:
        """UNIX seconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clocks: :func:`time.time`, :func:`time.monotonic`, :func:`asyncio.sleep`."""

    __slots__ = ()

    def wall(self) -> float:
        """UNIX seconds (UTC)."""
        return time.time()

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the event loop."""
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Final = SystemClock()


def anchor_now(clock: Clock) -> Anchor:
    """Read both clocks at once, to anchor a token request at its send time."""
    return Anchor(wall=clock.wall(), monotonic=clock.monotonic())
