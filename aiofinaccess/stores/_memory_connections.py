""":class:`~aiofinaccess.stores.protocol.ConnectionRecords` and
:class:`~aiofinaccess.stores.protocol.UpdateBudgets` in a process's memory: the ``MemoryStore``'s
half of the connection registry (atomic because nothing awaits inside)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from ..core.errors import StoreConflictError
from ..core.update_budget import check_budget, counted, next_slot
from .protocol import check_claim

__all__ = ["MemoryConnections"]


class MemoryConnections:
    """Connection records, the notices' outbox and the update budgets, in dicts."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[bytes, int]] = {}
        # id -> (data, due again at; None once finished)
        self._notices: dict[str, tuple[bytes, float | None]] = {}
        self._finished: dict[str, float] = {}  # id -> when it was finished
        self._budgets: dict[str, list[float]] = {}  # name -> when its slots were taken

    async def get_connection(self, name: str) -> tuple[bytes, int] | None:
        """The record under ``name`` and its version, or ``None``."""
        return self._records.get(name)

    async def put_connection(self, name: str, data: bytes, *, expected_version: int | None) -> int:
        """Write the record at ``expected_version``; return the new version."""
        found = self._records.get(name)
        version = None if found is None else found[1]
        if version != expected_version:
            raise StoreConflictError(
                f"connection record is at version {version}, not {expected_version}"
            )
        self._records[name] = (bytes(data), (version or 0) + 1)
        return (version or 0) + 1

    async def list_connections(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every record, as ``(name, data)``."""
        for name, (data, _) in list(self._records.items()):
            yield name, data

    async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
        """Claim ``notice`` unless it was ever claimed."""
        check_claim(1, claim_for)
        if notice in self._notices:
            return False
        self._notices[notice] = (bytes(data), time.time() + claim_for)
        return True

    async def overdue_notices(self, *, limit: int, claim_for: float) -> list[tuple[str, bytes]]:
        """Take up to ``limit`` unfinished notices whose claim ran out (a scan)."""
        check_claim(limit, claim_for)
        now = time.time()
        due = sorted(
            (at, notice)
            for notice, (_, at) in self._notices.items()
            if at is not None and at <= now
        )[:limit]
        taken = []
        for _, notice in due:
            data = self._notices[notice][0]
            self._notices[notice] = (data, now + claim_for)
            taken.append((notice, data))
        return taken

    async def finish_notice(self, notice: str) -> None:
        """Never overdue again; the id stays claimed."""
        if notice in self._notices and self._notices[notice][1] is not None:
            self._notices[notice] = (b"", None)
            self._finished[notice] = time.time()

    async def prune_notices(self, *, older_than: float) -> int:
        """Forget notices finished more than ``older_than`` seconds ago."""
        cutoff = time.time() - older_than
        old = [notice for notice, at in self._finished.items() if at <= cutoff]
        for notice in old:
            del self._finished[notice], self._notices[notice]
        return len(old)

    async def take_update(self, name: str, *, limit: int, window: float) -> float | None:
        """Take one of ``name``'s slots in the window, or say when one frees."""
        check_budget(limit, window)
        now = time.time()
        taken = counted(self._budgets.get(name, ()), now, window)
        wait = next_slot(taken, now, limit=limit, window=window)
        if wait is None:
            self._budgets[name] = [*taken, now]
        return wait
