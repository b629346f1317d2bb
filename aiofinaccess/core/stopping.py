"""Stopping a background task for certain, even when it loses a cancellation.

On CPython 3.11 ``asyncio.wait_for`` drops a cancel that arrives just as the awaited call
finishes (gh-86296, fixed in 3.12), and libraries such as redis-py send every command through
it. A task cancelled once can therefore go on waiting; one ``cancel()`` and an ``await`` is a
hang waiting to happen. :func:`cancel_and_wait` cancels again until the task has ended.

In ``core`` so that the stores' own background tasks (the Redis change-feed reader) stop
through it too, like the session's. Standard library only.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]

#: How long one cancellation may take to land before it is sent again.
_RECANCEL_AFTER = 0.1


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and return once it has ended, cancelling again while it lingers.

    The task's own exception, if any, is retrieved and dropped (its owner logs what matters).
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_RECANCEL_AFTER)
    if not task.cancelled():
        task.exception()
