"""The SQL of :class:`~aiofinaccess.stores.sqlite.SQLiteStore`: its schema, the one migration, the
connection's set-up, and every statement the store runs, each written once.

* **Leases** are rows ``(key, owner, expires_at)``: taken by an insert that may replace only an
  expired row (:data:`ACQUIRE`), extended and released only while the owner is ours, expiring
  with a killed holder. Times are on the machine's monotonic clock (an NTP step cannot free a
  live lease); a row from an earlier boot reads as expired (:data:`LONGEST_LEASE`).
* **Pending authorizations** are rows ``(state, data, expires_at)``; a take is one
  ``DELETE ... RETURNING`` (SQLite >= 3.35), so exactly one process gets the row.
* **Refresh duty**: a ``due_at`` column (epoch seconds, ``NULL`` = not scheduled) with partial
  indexes, written by the same statement as the set; a claim is one statement (:func:`claim`)
  over the claimant's providers' rows. :func:`prepare` adds the column to an older database on
  first open, under the write lock, with every existing set due at once.
* **Last use**: a ``used_at`` column (epoch seconds, ``NULL`` = never stamped) that only
  :func:`mark_used` writes (a put leaves it), added to an older database the same way.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Final

from ..core.errors import StoreError
from ._sql_payments import SQLITE_TABLE
from ._sqlite_budgets import SCHEMA as BUDGETS_SCHEMA
from ._sqlite_connections import FINISHED_INDEX
from ._sqlite_connections import SCHEMA as CONNECTIONS_SCHEMA

if TYPE_CHECKING:
    import aiosqlite

__all__ = [
    "ACQUIRE",
    "DELETE_SET",
    "DUE_COUNT",
    "EXTEND",
    "GET_PENDING",
    "GET_SET",
    "HAS_RETURNING",
    "HAS_SET",
    "INSERT_SET",
    "KEYS",
    "KEYS_BATCH",
    "LONGEST_LEASE",
    "NEXT_DUE",
    "PRUNE_PENDING",
    "PUT_PENDING",
    "RELEASE",
    "RESCHEDULE",
    "SCHEMA",
    "SQLITE_VERSION",
    "STAMP_BATCH",
    "TAKE_PENDING",
    "UPDATE_SET",
    "claim",
    "get_many",
    "idle_for",
    "mark_used",
    "next_due",
    "prepare",
    "unschedule",
]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS token_sets (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, version INTEGER NOT NULL,
    data BLOB NOT NULL, updated_at REAL, due_at REAL, used_at REAL
);
CREATE INDEX IF NOT EXISTS token_sets_provider ON token_sets (provider);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_authorizations (
    state TEXT PRIMARY KEY, data BLOB NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_authorizations_expiry ON pending_authorizations (expires_at);
"""

# Run once per connection, under the write lock, after SCHEMA: databases written before the
# refresh duty lack the column, and get it with every existing set due at once.
_DUE_INDEX: Final = """
CREATE INDEX IF NOT EXISTS token_sets_due ON token_sets (due_at) WHERE due_at IS NOT NULL
"""
# Claims and a claimant's next due time read one provider at a time.
_PROVIDER_DUE_INDEX: Final = """
CREATE INDEX IF NOT EXISTS token_sets_provider_due ON token_sets (provider, due_at)
WHERE due_at IS NOT NULL
"""

# -- token sets ---------------------------------------------------------------------------------
GET_SET: Final = "SELECT version, data FROM token_sets WHERE key = ?"
HAS_SET: Final = "SELECT 1 FROM token_sets WHERE key = ?"
INSERT_SET: Final = (
    "INSERT INTO token_sets (key, provider, version, data, updated_at, due_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
UPDATE_SET: Final = (
    "UPDATE token_sets SET version = ?, data = ?, updated_at = ?, due_at = ?"
    " WHERE key = ? AND version = ?"
)
DELETE_SET: Final = "DELETE FROM token_sets WHERE key = ? AND coalesce(?, version) = version"
#: The listing; ``WHERE provider = ?`` is appended for one provider (it uses the index).
KEYS: Final = "SELECT key FROM token_sets"
#: Rows fetched per step while listing keys.
KEYS_BATCH: Final = 500


def get_many(count: int) -> str:
    """The statement reading ``count`` sets by key (only placeholders vary, never values)."""
    marks = ",".join("?" * count)
    return f"SELECT key, version, data FROM token_sets WHERE key IN ({marks})"  # noqa: S608


# -- refresh duty -------------------------------------------------------------------------------
# A claim reads each of its providers' due rows through the (provider, due_at) index, most
# overdue first, skipping other clients' client sets (``provider:client...`` but not ours), and
# takes the most overdue of those across providers. Parameters: the deadline; per provider:
# provider, now, length of and ``provider:client``, our client key, limit; the limit.
_CLAIM_ONE: Final = (
    "SELECT * FROM (SELECT rowid AS id, due_at FROM token_sets WHERE provider = ?"
    " AND due_at <= ? AND (substr(key, 1, ?) <> ? OR key = ?) ORDER BY due_at LIMIT ?)"
)
_NEXT_ONE: Final = (
    "SELECT * FROM (SELECT due_at FROM token_sets WHERE provider = ? AND due_at IS NOT NULL"
    " AND (substr(key, 1, ?) <> ? OR key = ?) ORDER BY due_at LIMIT 1)"
)


def claim(providers: int) -> str:
    """The claim of due rows of ``providers`` providers (only placeholders vary)."""
    parts = " UNION ALL ".join([_CLAIM_ONE] * providers)
    return (
        "UPDATE token_sets SET due_at = ? WHERE rowid IN ("  # noqa: S608  (placeholders only)
        f"SELECT id FROM ({parts}) ORDER BY due_at LIMIT ?) RETURNING key, provider"
    )


def next_due(providers: int) -> str:
    """The earliest due time among ``providers`` providers' rows in scope."""
    return f"SELECT min(due_at) FROM ({' UNION ALL '.join([_NEXT_ONE] * providers)})"  # noqa: S608


def unschedule(count: int) -> str:
    """Clear the due times of ``count`` rows by key (rows no claim can renew)."""
    marks = ",".join("?" * count)
    return f"UPDATE token_sets SET due_at = NULL WHERE key IN ({marks})"  # noqa: S608


RESCHEDULE: Final = (
    "UPDATE token_sets SET due_at = ? WHERE key = ? AND coalesce(?, version) = version"
)
NEXT_DUE: Final = "SELECT due_at FROM token_sets WHERE due_at IS NOT NULL ORDER BY due_at LIMIT 1"
DUE_COUNT: Final = "SELECT count(*) FROM token_sets WHERE due_at <= ?"

#: Keys per stamp or idle statement (two parameters a key, well under SQLite's limit).
STAMP_BATCH: Final = 400


def mark_used(count: int) -> str:
    """Stamp ``count`` keys' last use (parameters: key and use time per key, then now): the
    latest use wins, and a set without a due time falls due now."""
    rows = ",".join(["(?, ?)"] * count)
    return (
        f"WITH u(key, at) AS (VALUES {rows}) UPDATE token_sets"  # noqa: S608  (placeholders only)
        " SET used_at = max(coalesce(token_sets.used_at, u.at), u.at),"
        " due_at = coalesce(token_sets.due_at, ?) FROM u WHERE token_sets.key = u.key"
    )


def idle_for(count: int) -> str:
    """The last use of ``count`` stored keys (``NULL``: never stamped)."""
    marks = ",".join("?" * count)
    return f"SELECT key, used_at FROM token_sets WHERE key IN ({marks})"  # noqa: S608


# -- pending authorizations ---------------------------------------------------------------------
PUT_PENDING: Final = """
INSERT INTO pending_authorizations (state, data, expires_at) VALUES (?, ?, ?)
ON CONFLICT (state) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at
"""
PRUNE_PENDING: Final = "DELETE FROM pending_authorizations WHERE expires_at <= ?"
GET_PENDING: Final = "SELECT data FROM pending_authorizations WHERE state = ? AND expires_at > ?"
TAKE_PENDING: Final = (
    "DELETE FROM pending_authorizations WHERE state = ? RETURNING data, expires_at"
)
# RETURNING arrived in SQLite 3.35 (2021); Debian 12 ships 3.40.
HAS_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35)
SQLITE_VERSION: Final = sqlite3.sqlite_version

# -- leases -------------------------------------------------------------------------------------
# Take the lease if nobody holds it, or if the holder's lease expired (it crashed or overran),
# or if the row comes from an earlier boot (the monotonic clock restarted below its end).
ACQUIRE: Final = """
INSERT INTO leases (key, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE leases.expires_at < ? OR leases.expires_at > ?
"""
# Never shortens: the heartbeat and the fence before a send may both extend.
EXTEND: Final = "UPDATE leases SET expires_at = max(expires_at, ?) WHERE key = ? AND owner = ?"
RELEASE: Final = "DELETE FROM leases WHERE key = ? AND owner = ?"
#: No lease lasts longer than this; a row ending further ahead predates a reboot.
LONGEST_LEASE: Final = 86_400.0


async def prepare(conn: aiosqlite.Connection) -> None:
    """Switch a new connection to WAL, create the tables and migrate an older database.

    Raises:
        StoreError: The file system does not support WAL.
        sqlite3.Error: SQLite failed (the caller closes the connection and reports it).
    """
    async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
        row = await cursor.fetchone()
    if row is None or str(row[0]).lower() != "wal":
        raise StoreError("the store's file system does not support SQLite's WAL mode")
    # WAL + NORMAL syncs at checkpoints, not at every commit: a committed write
    # survives a crash of the process; only an OS crash can lose the last commits.
    await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.executescript(SCHEMA)
    await conn.executescript(SQLITE_TABLE)
    await conn.executescript(CONNECTIONS_SCHEMA)
    await conn.executescript(BUDGETS_SCHEMA)
    await _migrate(conn)


async def _migrate(conn: aiosqlite.Connection) -> None:
    """Add ``due_at``, ``used_at`` and the notices' ``finished_at`` to a database written
    before them (once, atomically)."""
    # Another process may be migrating right now; on failure the caller closes the
    # connection, which rolls the transaction back.
    await conn.execute("BEGIN IMMEDIATE")
    async with conn.execute("PRAGMA table_info(token_sets)") as cursor:
        columns = {str(row[1]) for row in await cursor.fetchall()}
    if "due_at" not in columns:
        await conn.execute("ALTER TABLE token_sets ADD COLUMN due_at REAL")
        await conn.execute("UPDATE token_sets SET due_at = 0")
    if "used_at" not in columns:
        await conn.execute("ALTER TABLE token_sets ADD COLUMN used_at REAL")
    async with conn.execute("PRAGMA table_info(connection_notices)") as cursor:
        if "finished_at" not in {str(row[1]) for row in await cursor.fetchall()}:
            await conn.execute("ALTER TABLE connection_notices ADD COLUMN finished_at REAL")
    await conn.execute(_DUE_INDEX)
    await conn.execute(_PROVIDER_DUE_INDEX)
    await conn.execute(FINISHED_INDEX)
    await conn.execute("COMMIT")
