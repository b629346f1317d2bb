"""Messages on the simulated wire: what a message that broke does to the call waiting on it.

A message (a store call's trip, a token request's) is a task of the world's; its sender awaits a
reply future the message settles. A message that raises (a bug of the harness: a hook missing
or broken) would leave that future pending and its caller waiting for good: the reply fails
with the message's error instead, and the world reports it.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["undelivered"]


def undelivered(task: asyncio.Task[Any], reply: asyncio.Future[Any] | None) -> BaseException | None:
    """What the finished message ``task`` raised (``None``: it ended well or was cancelled);
    ``reply``, if still pending, fails with it."""
    if task.cancelled():
        return None
    error = task.exception()
    if error is not None and reply is not None and not reply.done():
        reply.set_exception(error)
    return error
