"""Helpers shared by the refresh duty's regression tests (issue 22)."""

from __future__ import annotations

from typing import Any

from aiofinaccess import TokenKey
from aiofinaccess.stores.memory import MemoryStore
from aiofinaccess.stores.sqlite import SQLiteStore


class CountedClaims:
    """Mix-in: counts the claims a store answers, so a test can wait for a number of them."""

    claims = 0

    async def claim_due(self, **kwargs: Any) -> list[TokenKey]:
        self.claims += 1
        return await super().claim_due(**kwargs)  # type: ignore[misc, no-any-return]


class ClaimsMemory(CountedClaims, MemoryStore):
    """A MemoryStore counting claims."""


class ClaimsSQLite(CountedClaims, SQLiteStore):
    """A SQLiteStore counting claims."""


def claims_made(store: CountedClaims, count: int) -> Any:
    """A check for ``until``: has ``store`` answered ``count`` more claims than now?"""
    target = store.claims + count

    async def check() -> bool:
        return store.claims >= target

    return check
