"""A SQLite store written before notices were pruned gets ``finished_at`` on open: its old
finished notices stay (no stamp to prune them by), new ones are pruned, and the update budgets'
table is there."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from aiofinaccess import SQLiteStore


def older_store(directory: Path) -> Path:
    """A file with the notices' table as it was, and one finished notice."""
    directory.chmod(0o700)
    path = directory / "tokens.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE connection_notices (id TEXT PRIMARY KEY, data BLOB NOT NULL, due_at REAL);"
        "INSERT INTO connection_notices VALUES ('before', x'', NULL);"
    )
    old.close()
    path.chmod(0o600)
    return path


async def test_an_older_store_is_upgraded_on_open(tmp_path: Path) -> None:
    async with SQLiteStore(older_store(tmp_path)) as store:
        assert await store.claim_notice("after", b"x", claim_for=60) is True
        await store.finish_notice("after")
        await asyncio.sleep(0.2)
        assert await store.prune_notices(older_than=0.1) == 1
        assert await store.claim_notice("before", b"x", claim_for=60) is False
        assert await store.take_update("c", limit=1, window=60) is None
