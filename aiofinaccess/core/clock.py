"""Time as a dependency: the manager reads clocks and sleeps only through a :class:`Clock`.

Tests pass a fake clock and never sleep; production uses :data:`SYSTEM_CLOCK`. A stored set is
placed on the reader's monotonic clock by :func:`anchor_stored`: by the age the store measured
on its own clock when it gives one (Redis), else by the reader's wall clock, which must then
agree with the writer's within ``RefreshPolicy.expiry_margin``. A writer's clock seen to
disagree is warned of once per process (:class:`SkewWarnings`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Final, Protocol

from .tokens import Anchor

__all__ = [
    "SKEW_WARNINGS",
    "SYSTEM_CLOCK",
    "Clock",
    "SkewWarnings",
    "SystemClock",
    "anchor_now",
    "anchor_stored",
    "clock_offset",
]

logger = logging.getLogger("aiofinaccess")


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


def anchor_stored(
    issued_at: float, age: float | None, *, wall: float, monotonic: float, asked: float
) -> Anchor:
    """Where a stored set issued at ``issued_at`` sits on this process's monotonic clock.

    Args:
        issued_at: The set's issue time (its writer's wall clock).
        age: Its age when the store answered, measured by the store, or ``None``.
        wall, monotonic: This process's clocks, read now (after the answer).
        asked: The monotonic reading taken before the store was asked: the store measured the
            age at some instant after it, so counting it from there can only make the set
            older than it is, never younger.
    """
    if age is None:  # no store clock: the set's instants are taken as this wall clock's
        return Anchor(wall, monotonic)
    return Anchor.aged(issued_at, age, min(asked, monotonic))  # min: a clock passed in may lie


def clock_offset(issued_at: float, age: float | None, wall: float) -> float:
    """How far the writer's wall clock runs ahead of ours (negative: behind), as far as a
    stored set tells: its issue time plus its age is the writer's clock now. Without an age
    only an issue time in our future shows anything (a positive offset; else ``0``)."""
    if age is None:
        return max(0.0, issued_at - wall)
    return issued_at + age - wall


class SkewWarnings:
    """Warns that clocks disagree: once per process, and again at most once an hour.

    Args:
        every: Seconds between repeated warnings (on the monotonic clock passed in).
    """

    __slots__ = ("_every", "_last", "repeats")

    def __init__(self, every: float = 3600.0) -> None:
        self._every = every
        self._last = -math.inf
        #: How many disagreements were seen but not logged (rate-limited).
        self.repeats = 0

    def reset(self) -> None:
        """Forget earlier warnings (the next disagreement is logged)."""
        self._last = -math.inf
        self.repeats = 0

    def check(self, offset: float, margin: float, monotonic: float) -> bool:
        """Log a warning when ``|offset|`` exceeds ``margin`` and none was logged within the
        last ``every`` seconds. Returns whether it logged."""
        if abs(offset) <= margin:
            return False
        if monotonic - self._last < self._every:
            self.repeats += 1
            return False
        self._last = monotonic
        logger.warning(
            "clock skew: a stored token set says the clock of the process that wrote it runs "
            "%.1f s %s of this process's clock (more than the %.1f s expiry margin); token "
            "ages are measured on the store's clock where it has one, but check NTP on both "
            "machines (warned once an hour)",
            abs(offset),
            "ahead" if offset > 0 else "behind",
            margin,
        )
        return True


#: The process's one :class:`SkewWarnings`.
SKEW_WARNINGS: Final = SkewWarnings()
