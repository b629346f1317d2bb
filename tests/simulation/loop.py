"""An asyncio event loop on virtual time: sleeping costs nothing, and a stall is detected.

The loop is the standard selector loop with a selector that owns no file descriptors: where
the real one would block for ``timeout`` seconds, this one moves the virtual clock forward by
``timeout`` and returns at once. Every timer (``asyncio.sleep``, ``asyncio.timeout``, the SDK's
clock) therefore fires in virtual time, in the order the standard loop fires them; with one
seeded random generator behind every delay, a run is a pure function of its seed.

Nothing in a simulation may touch a real socket, thread or file: the selector raises if
anything registers a descriptor other than the loop's own wake-up pipe. A loop with nothing
ready and no timer is stalled for good (everybody waits for something that cannot happen):
:class:`Stalled` is raised instead of blocking forever.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class Stalled(RuntimeError):
    """Every task waits and no timer is pending: the simulated system hangs."""


class _VirtualSelector(selectors.BaseSelector):
    def __init__(self, loop_time: list[float]) -> None:
        self._time = loop_time
        self._map: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(
            fileobj, fileobj if isinstance(fileobj, int) else 0, events, data
        )
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Stalled("every task waits and no timer is pending")
        self._time[0] += max(0.0, timeout)
        return []

    def get_map(self) -> dict[Any, selectors.SelectorKey]:
        return self._map

    def close(self) -> None:
        self._map.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock is virtual (starts at 0, moves only when idle)."""

    def __init__(self) -> None:
        self._virtual_now = [0.0]
        super().__init__(selector=_VirtualSelector(self._virtual_now))

    def time(self) -> float:
        return self._virtual_now[0]
