"""A fleet member for the notice kill test: sweep and redeliver until killed.

    python -m tests.reliability.notice_worker STORE_PATH LOG_PATH

Appends one line per claim it won (``C id``) and per delivery (``D id``) to LOG_PATH with
unbuffered appends, so what it did before a SIGKILL is on disk; ``R`` once it is running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys

from aiofinaccess import SQLiteStore
from aiofinaccess.connections import ConnectionRegistry
from aiofinaccess.core.clock import SYSTEM_CLOCK

#: The day-long leads scaled down: an end is announced 6, 4 and 2 seconds ahead.
LEADS = (dt.timedelta(seconds=6), dt.timedelta(seconds=4), dt.timedelta(seconds=2))
CLAIM_FOR = 1.0


async def main(store_path: str, log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def mark(line: str) -> None:
        os.write(fd, f"{line}\n".encode())

    class Logging(SQLiteStore):
        async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
            won = await super().claim_notice(notice, data, claim_for=claim_for)
            if won:
                mark(f"C {notice}")
            return won

    async with Logging(store_path) as store:
        registry = ConnectionRegistry(store, SYSTEM_CLOCK, leads=LEADS, claim_for=CLAIM_FOR)
        registry.subscribe(lambda event: mark(f"D {event.event_id}"))
        mark("R")
        while True:
            await registry.sweep()
            await registry.redeliver(limit=1000)
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
