""":class:`~aiofinaccess.stores.protocol.ConnectionRecords` in SQLite: the ``SQLiteStore``'s half
of the connection registry.

Records are rows ``(name, version, data)`` written by a conditional update or insert; notices
are rows ``(id, data, due_at)``, claimed by an insert that does nothing when the id exists (so
one claimant ever wins), handed out again by one ``UPDATE ... RETURNING`` once ``due_at`` passes
(this machine's clock), finished by clearing ``due_at`` and stamping ``finished_at``, and
pruned by that stamp. The tables are created by the store's schema (``connection_records``,
``connection_notices``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from ..core.errors import StoreConflictError
from .protocol import check_claim

__all__ = ["SCHEMA", "SQLiteConnections"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS connection_records (
    name TEXT PRIMARY KEY, version INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS connection_notices (
    id TEXT PRIMARY KEY, data BLOB NOT NULL, due_at REAL, finished_at REAL
);
CREATE INDEX IF NOT EXISTS connection_notices_due ON connection_notices (due_at)
    WHERE due_at IS NOT NULL;
"""

_GET: Final = "SELECT data, version FROM connection_records WHERE name = ?"
_INSERT: Final = (
    "INSERT INTO connection_records (name, version, data) VALUES (?, 1, ?)"
    " ON CONFLICT (name) DO NOTHING"
)
_UPDATE: Final = (
    "UPDATE connection_records SET data = ?, version = version + 1 WHERE name = ? AND version = ?"
)
_LIST: Final = "SELECT name, data FROM connection_records ORDER BY name"
_CLAIM: Final = (
    "INSERT INTO connection_notices (id, data, due_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_OVERDUE: Final = """
UPDATE connection_notices SET due_at = ? WHERE id IN (
    SELECT id FROM connection_notices WHERE due_at IS NOT NULL AND due_at <= ?
    ORDER BY due_at LIMIT ?
) RETURNING id, data
"""
_FINISH: Final = (
    "UPDATE connection_notices SET due_at = NULL, data = x'', finished_at = ?"
    " WHERE id = ? AND due_at IS NOT NULL"
)
_PRUNE: Final = "DELETE FROM connection_notices WHERE finished_at <= ?"
#: Run by the schema's migration, after the column exists.
FINISHED_INDEX: Final = """
CREATE INDEX IF NOT EXISTS connection_notices_finished ON connection_notices (finished_at)
    WHERE finished_at IS NOT NULL
"""


class SQLiteConnections:
    """The statements; the store provides ``_execute``."""

    async def _execute(
        self, statement: str, parameters: Sequence[Any] = ()
    ) -> tuple[int, list[Any]]:
        raise NotImplementedError  # pragma: no cover  (the store's own)

    async def get_connection(self, name: str) -> tuple[bytes, int] | None:
        """The record under ``name`` and its version, or ``None``."""
        _, rows = await self._execute(_GET, (name,))
        return (bytes(rows[0][0]), int(rows[0][1])) if rows else None

    async def put_connection(self, name: str, data: bytes, *, expected_version: int | None) -> int:
        """Write the record at ``expected_version``; return the new version."""
        if expected_version is None:
            changed, _ = await self._execute(_INSERT, (name, bytes(data)))
        else:
            changed, _ = await self._execute(_UPDATE, (bytes(data), name, expected_version))
        if changed != 1:
            raise StoreConflictError(f"connection record is not at version {expected_version}")
        return 1 if expected_version is None else expected_version + 1

    async def list_connections(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every record, as ``(name, data)``."""
        _, rows = await self._execute(_LIST)
        for name, data in rows:
            yield str(name), bytes(data)

    async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
        """Claim ``notice`` unless it was ever claimed."""
        check_claim(1, claim_for)
        changed, _ = await self._execute(_CLAIM, (notice, bytes(data), time.time() + claim_for))
        return changed == 1

    async def overdue_notices(self, *, limit: int, claim_for: float) -> list[tuple[str, bytes]]:
        """Take up to ``limit`` unfinished notices whose claim ran out, in one statement."""
        check_claim(limit, claim_for)
        now = time.time()
        _, rows = await self._execute(_OVERDUE, (now + claim_for, now, limit))
        return [(str(notice), bytes(data)) for notice, data in rows]

    async def finish_notice(self, notice: str) -> None:
        """Never overdue again; the id stays claimed."""
        await self._execute(_FINISH, (time.time(), notice))

    async def prune_notices(self, *, older_than: float) -> int:
        """Forget notices finished more than ``older_than`` seconds ago."""
        changed, _ = await self._execute(_PRUNE, (time.time() - older_than,))
        return changed
