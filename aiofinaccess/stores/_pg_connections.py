""":class:`~aiofinaccess.stores.protocol.ConnectionRecords` in PostgreSQL: the
``PostgresStore``'s half of the connection registry.

Records are rows ``(name, version, data)`` written by a conditional update or insert; notices
are rows ``(id, data, due_at)``, claimed by ``INSERT ... ON CONFLICT DO NOTHING`` (one claimant
ever wins), handed out again by one ``UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING`` once
``due_at`` passes on the database's clock, finished by clearing ``due_at`` and stamping
``finished_at``, and pruned by that stamp. Update budgets are rows ``(name, taken)``: a take
locks its row (``SELECT ... FOR UPDATE`` in one transaction), decides with
:func:`~aiofinaccess.core.update_budget.next_slot` and writes it back. The tables come with the
schema's third and fifth migrations (``_pg_schema.MIGRATIONS``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..core.errors import StoreConflictError
from ..core.update_budget import check_budget, counted, next_slot
from ._pg_schema import NOW
from .protocol import check_claim

__all__ = ["PgConnections"]


class PgConnections:
    """The statements; the store provides ``_call``, ``_connections`` and ``_sql.schema``."""

    _sql: Any
    _connections: Any  # the store's pool (``_pg_pool.Connections``)

    _call: Any  # the store's: (what, key, method, *args) -> the statement's result

    def _tables(self) -> tuple[str, str]:
        s = self._sql.schema
        return f"{s}.connection_records", f"{s}.connection_notices"

    async def get_connection(self, name: str) -> tuple[bytes, int] | None:
        """The record under ``name`` and its version, or ``None``."""
        records, _ = self._tables()
        row = await self._call(
            "get connection", None, "fetchrow",
            f"SELECT data, version FROM {records} WHERE name = $1", name,
        )  # fmt: skip
        return None if row is None else (bytes(row[0]), int(row[1]))

    async def put_connection(self, name: str, data: bytes, *, expected_version: int | None) -> int:
        """Write the record at ``expected_version``; return the new version."""
        records, _ = self._tables()
        if expected_version is None:
            statement = (
                f"INSERT INTO {records} (name, version, data) VALUES ($1, 1, $2)"
                " ON CONFLICT (name) DO NOTHING RETURNING version"
            )
            found = await self._call("put connection", None, "fetchval", statement, name, data)
        else:
            statement = (
                f"UPDATE {records} SET data = $2, version = version + 1"
                " WHERE name = $1 AND version = $3 RETURNING version"
            )
            found = await self._call(
                "put connection", None, "fetchval", statement, name, data, expected_version
            )
        if found is None:
            raise StoreConflictError(f"connection record is not at version {expected_version}")
        return int(found)

    async def list_connections(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every record, as ``(name, data)``."""
        records, _ = self._tables()
        rows = await self._call(
            "list connections", None, "fetch", f"SELECT name, data FROM {records} ORDER BY name"
        )
        for row in rows:
            yield str(row[0]), bytes(row[1])

    async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
        """Claim ``notice`` unless it was ever claimed."""
        check_claim(1, claim_for)
        _, notices = self._tables()
        statement = (
            f"INSERT INTO {notices} (id, data, due_at) VALUES ($1, $2, {NOW} + $3::float8)"
            " ON CONFLICT (id) DO NOTHING RETURNING true"
        )
        won = await self._call("claim notice", None, "fetchval", statement, notice, data, claim_for)
        return won is True

    async def overdue_notices(self, *, limit: int, claim_for: float) -> list[tuple[str, bytes]]:
        """Take up to ``limit`` unfinished notices whose claim ran out, in one statement."""
        check_claim(limit, claim_for)
        _, notices = self._tables()
        statement = (
            f"UPDATE {notices} SET due_at = {NOW} + $2::float8 WHERE id IN ("
            f" SELECT id FROM {notices} WHERE due_at <= {NOW}"
            " ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, data"
        )
        rows = await self._call("overdue notices", None, "fetch", statement, limit, claim_for)
        return [(str(row[0]), bytes(row[1])) for row in rows]

    async def finish_notice(self, notice: str) -> None:
        """Never overdue again; the id stays claimed."""
        _, notices = self._tables()
        statement = (
            f"UPDATE {notices} SET due_at = NULL, data = ''::bytea, finished_at = {NOW}"
            " WHERE id = $1 AND due_at IS NOT NULL"
        )
        await self._call("finish notice", None, "execute", statement, notice)

    async def prune_notices(self, *, older_than: float) -> int:
        """Forget notices finished more than ``older_than`` seconds ago (the database's clock)."""
        _, notices = self._tables()
        statement = f"DELETE FROM {notices} WHERE finished_at <= {NOW} - $1::float8"
        status = await self._call("prune notices", None, "execute", statement, older_than)
        return int(str(status).rsplit(" ", 1)[-1])

    async def take_update(self, name: str, *, limit: int, window: float) -> float | None:
        """Take one of ``name``'s slots in the window, or say when one frees (one transaction)."""
        check_budget(limit, window)
        budgets = f"{self._sql.schema}.update_budgets"

        async def take(conn: Any) -> float | None:
            await conn.execute(
                f"INSERT INTO {budgets} (name, taken) VALUES ($1, '{{}}')"
                " ON CONFLICT (name) DO NOTHING",
                name,
            )
            row = await conn.fetchval(
                f"SELECT taken FROM {budgets} WHERE name = $1 FOR UPDATE", name
            )
            now = float(await conn.fetchval(f"SELECT {NOW}"))  # read under the row's lock
            taken = counted(row or (), now, window)
            wait = next_slot(taken, now, limit=limit, window=window)
            if wait is None:
                await conn.execute(
                    f"UPDATE {budgets} SET taken = $2 WHERE name = $1", name, [*taken, now]
                )
            return wait

        result: float | None = await self._connections.transact("take update", take)
        return result
