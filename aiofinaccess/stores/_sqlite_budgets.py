""":class:`~aiofinaccess.stores.protocol.UpdateBudgets` in SQLite: the ``SQLiteStore``'s update
budgets, one row per connection ``(name, taken)`` with the times its slots were taken (JSON).

A take is one ``BEGIN IMMEDIATE`` transaction (read the row, decide with
:func:`~aiofinaccess.core.update_budget.next_slot`, write it back) on a connection of its own,
run start to end in one worker thread: the write lock is held from the read to the commit, so
no other process reads the slots in between, and a cancelled caller cannot leave the
transaction open on the store's shared connection.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any, Final

from ..core.errors import StoreError
from ..core.update_budget import check_budget, counted, next_slot

__all__ = ["SCHEMA", "SQLiteBudgets"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS update_budgets (name TEXT PRIMARY KEY, taken TEXT NOT NULL);
"""

_READ: Final = "SELECT taken FROM update_budgets WHERE name = ?"
_WRITE: Final = (
    "INSERT INTO update_budgets (name, taken) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET taken = excluded.taken"
)


def take(path: str, busy_timeout: float, name: str, limit: int, window: float) -> float | None:
    """One take, in the calling thread (see the module docstring)."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # the write lock before the read
        row = conn.execute(_READ, (name,)).fetchone()
        now = time.time()  # read under the lock: no later taker can stamp an earlier time
        taken = counted(json.loads(row[0]) if row else (), now, window)
        wait = next_slot(taken, now, limit=limit, window=window)
        if wait is None:
            conn.execute(_WRITE, (name, json.dumps([*taken, now])))
        conn.execute("COMMIT")
        return wait
    finally:
        conn.close()  # rolls back a transaction that did not commit


class SQLiteBudgets:
    """The take; the store provides ``_path``, ``_busy_timeout`` and ``_connection``."""

    _path: str
    _busy_timeout: float

    async def _connection(self) -> Any:
        raise NotImplementedError  # pragma: no cover  (the store's own)

    async def take_update(self, name: str, *, limit: int, window: float) -> float | None:
        """Take one of ``name``'s slots in the window, or say when one frees."""
        check_budget(limit, window)
        await self._connection()  # the store is open and the table exists
        try:
            return await asyncio.to_thread(
                take, str(self._path), self._busy_timeout, name, limit, window
            )
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"the SQLite store failed ({type(exc).__name__}: {exc})") from exc
