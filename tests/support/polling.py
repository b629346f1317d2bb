"""Waiting for a condition that only an outside process or a real clock can make true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(check: Callable[[], Awaitable[bool]], timeout: float, every: float = 0.05) -> None:
    """Await ``check()`` every ``every`` seconds until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        await asyncio.sleep(every)
