"""Stopping a background task for certain, even when it loses a cancellation.

On CPython 3.11 ``asyncio.wait_for`` drops a cancel that arrives just as the awaited call
finishes (gh-86296, fixed in 3.12), and redis-py sends every command through it, so one
``cancel()`` and an ``await`` can hang. :func:`cancel_and_wait` cancels again until the task
has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait", "cancel_asked"]

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


def cancel_asked() -> bool:
    """Whether the running task was asked to cancel, rather than handed a stray
    ``CancelledError`` by a library it awaited (redis-py's ``wait_for`` on 3.11)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
