"""The refresh duty of a :class:`~aiofinaccess.stores.sqlite.SQLiteStore`: claims, reschedules
and counts over the ``due_at`` column, one statement each (:mod:`._sqlite_schema` holds them).

A claim reads only the claimant's providers' rows, through the ``(provider, due_at)`` index,
skipping other clients' client sets, and decides on this machine's clock (every process sharing
the file runs on it). A claimed row whose key does not parse leaves the duty at once: its due
time is cleared (the row is left for an operator) and it is counted in
:attr:`~aiofinaccess.stores.Claimed.dropped`.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from ..core.errors import StoreError
from ..core.tokens import TokenKey
from . import _sqlite_schema as sql
from ._sqlite_lease import Execute
from .protocol import Claimed, check_claim, check_due, check_scope, sort_claimed

__all__ = ["DueRows"]


class DueRows:
    """The due times of one store, through its ``execute``."""

    def __init__(self, execute: Execute) -> None:
        self._execute = execute

    async def claim(
        self, *, limit: int, claim_for: float, clients: Collection[TokenKey]
    ) -> Claimed:
        """See :meth:`SQLiteStore.claim_due`."""
        check_claim(limit, claim_for)
        scope = check_scope(clients) or {}
        if not sql.HAS_RETURNING:  # pragma: no cover  (every supported platform has 3.35+)
            raise StoreError(f"the refresh duty needs SQLite >= 3.35, not {sql.SQLITE_VERSION}")
        if not scope:
            return Claimed()
        now = time.time()
        parameters: list[Any] = [now + claim_for]
        for provider, own in scope.items():
            kind = f"{provider}:client"
            parameters += [provider, now, len(kind), kind, str(own), limit]
        _, rows = await self._execute(sql.claim(len(scope)), [*parameters, limit])
        claimed, junk = sort_claimed(rows, scope)
        if junk:  # malformed: no claim could ever renew it
            await self._execute(sql.unschedule(len(junk)), junk)
            claimed.dropped = len(junk)
        return claimed

    async def reschedule(
        self, key: TokenKey, due_at: float | None, expected_version: int | None
    ) -> None:
        """See :meth:`SQLiteStore.reschedule`."""
        # Kept as written, as put's: every process sharing the file reads this machine's one
        # wall clock, which is the store's too (RedisStore moves a far-off writer's due time).
        due = check_due(due_at)
        await self._execute(sql.RESCHEDULE, (due, str(key), expected_version))

    async def next_due(self, clients: Collection[TokenKey] | None) -> float | None:
        """See :meth:`SQLiteStore.next_due`."""
        scope = check_scope(clients)
        if scope is None:
            _, rows = await self._execute(sql.NEXT_DUE, ())
            return float(rows[0][0]) if rows else None
        if not scope:
            return None
        parameters: list[Any] = []
        for provider, own in scope.items():
            kind = f"{provider}:client"
            parameters += [provider, len(kind), kind, str(own)]
        _, rows = await self._execute(sql.next_due(len(scope)), parameters)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def count(self, now: float) -> int:
        """See :meth:`SQLiteStore.due_count`."""
        _, rows = await self._execute(sql.DUE_COUNT, (now,))
        return int(rows[0][0])
