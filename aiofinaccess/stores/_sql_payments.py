"""Payment records in SQL (:class:`~aiofinaccess.stores.sqlite.SQLiteStore` and
:class:`~aiofinaccess.stores.postgres.PostgresStore`): rows ``(scope, reference, version,
data)``. An add is an insert that does nothing on a taken key; a replace is an update guarded
by the version; each reports through ``RETURNING`` whether it wrote, so one statement decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..core.payment_records import StoredRecord
from .payment_records import check_names, open_record, seal_record

if TYPE_CHECKING:
    from .codec import TokenCodec

__all__ = ["POSTGRES", "POSTGRES_TABLE", "SQLITE", "SQLITE_TABLE", "PaymentRows"]

#: Run one statement with its parameters; return its rows.
Run = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]

SQLITE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS payment_records (
    scope TEXT NOT NULL, reference TEXT NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (scope, reference)
);
"""


#: PostgresStore's migration creating the table (``{s}`` is the quoted schema).
POSTGRES_TABLE: Final = """
    CREATE TABLE {s}.payment_records (
        scope text NOT NULL, reference text NOT NULL, version bigint NOT NULL,
        data bytea NOT NULL, PRIMARY KEY (scope, reference)
    );
    """


@attrs.frozen
class Statements:
    """The four statements, in one dialect (``{t}`` is the table)."""

    add: str
    get: str
    replace: str
    scope: str

    def on(self, table: str) -> Statements:
        return Statements(*(text.format(t=table) for text in attrs.astuple(self)))


SQLITE: Final = Statements(
    add="INSERT INTO {t} VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING RETURNING 1",
    get="SELECT version, data FROM {t} WHERE scope = ? AND reference = ?",
    replace=(
        "UPDATE {t} SET version = version + 1, data = ?"
        " WHERE scope = ? AND reference = ? AND version = ? RETURNING 1"
    ),
    scope="SELECT reference, version, data FROM {t} WHERE scope = ?",
).on("payment_records")
POSTGRES: Final = Statements(
    add="INSERT INTO {t} VALUES ($1, $2, 1, $3) ON CONFLICT DO NOTHING RETURNING 1",
    get="SELECT version, data FROM {t} WHERE scope = $1 AND reference = $2",
    replace=(
        "UPDATE {t} SET version = version + 1, data = $1"
        " WHERE scope = $2 AND reference = $3 AND version = $4 RETURNING 1"
    ),
    scope="SELECT reference, version, data FROM {t} WHERE scope = $1",
)


class PaymentRows:
    """One store's payment records, through its ``run`` and ``codec``."""

    def __init__(self, statements: Statements, run: Run, codec: TokenCodec) -> None:
        self._sql = statements
        self._run = run
        self._codec = codec

    async def add(self, scope: str, reference: str, data: bytes) -> bool:
        check_names(scope, reference)
        sealed = seal_record(self._codec, scope, reference, data)
        return bool(await self._run(self._sql.add, (scope, reference, sealed)))

    async def get(self, scope: str, reference: str) -> StoredRecord | None:
        rows = await self._run(self._sql.get, (scope, reference))
        if not rows:
            return None
        version, sealed = rows[0]
        return StoredRecord(open_record(self._codec, scope, reference, bytes(sealed)), version)

    async def replace(self, scope: str, reference: str, data: bytes, expected_version: int) -> bool:
        sealed = seal_record(self._codec, scope, reference, data)
        args = (sealed, scope, reference, expected_version)
        return bool(await self._run(self._sql.replace, args))

    async def scope(self, scope: str) -> dict[str, StoredRecord]:
        rows = await self._run(self._sql.scope, (scope,))
        return {
            reference: StoredRecord(
                open_record(self._codec, scope, reference, bytes(sealed)), version
            )
            for reference, version, sealed in rows
        }
