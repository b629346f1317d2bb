"""Payment records in the shipped stores: what a payment-creating request was, kept in the
token store before it is sent, so that whoever asks later (this process after a failure,
another after a crash) learns the outcome instead of sending it again. The protocol
(:class:`~aiofinaccess.core.payment_records.PaymentRecords`) lives in ``core``, where the
payment clients can speak it. Durable stores pass the bytes through their token codec,
sealed to the record's name, so a :class:`~aiofinaccess.stores.codec.FernetCodec` encrypts the
IBANs and amounts in them too. ``MemoryStore``, ``SQLiteStore``, ``RedisStore`` and
``PostgresStore`` implement it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from ..core.errors import UsageError
from ..core.payment_records import PaymentRecords, StoredRecord
from .protocol import open_pending, seal_pending

if TYPE_CHECKING:
    from .codec import TokenCodec

__all__ = ["Delegated", "PaymentRecords", "StoredRecord"]

_NAME_LIMIT: Final = 512


class Rows(Protocol):
    """A backend's payment records, as :class:`Delegated` reaches them."""

    async def add(self, scope: str, reference: str, data: bytes) -> bool: ...
    async def get(self, scope: str, reference: str) -> StoredRecord | None: ...
    async def replace(
        self, scope: str, reference: str, data: bytes, expected_version: int
    ) -> bool: ...
    async def scope(self, scope: str) -> dict[str, StoredRecord]: ...


class Delegated:
    """:class:`PaymentRecords` for a store that keeps its records in ``_payment_rows``."""

    _payment_rows: Rows

    async def add_payment_record(self, scope: str, reference: str, data: bytes) -> bool:
        """Create the record (through the codec) unless one exists; one atomic step."""
        return await self._payment_rows.add(scope, reference, data)

    async def get_payment_record(self, scope: str, reference: str) -> StoredRecord | None:
        """The record, or ``None``."""
        return await self._payment_rows.get(scope, reference)

    async def replace_payment_record(
        self, scope: str, reference: str, data: bytes, *, expected_version: int
    ) -> bool:
        """Write ``data`` if the record is at ``expected_version``; one atomic step."""
        return await self._payment_rows.replace(scope, reference, data, expected_version)

    async def payment_records(self, scope: str) -> dict[str, StoredRecord]:
        """Every record of ``scope``."""
        return await self._payment_rows.scope(scope)


def check_names(scope: str, reference: str) -> None:
    """Validate a record's scope and reference."""
    for name in (scope, reference):
        if not isinstance(name, str) or not 1 <= len(name) <= _NAME_LIMIT:
            raise UsageError("a payment record's scope and reference have 1 to 512 characters")


def record_name(scope: str, reference: str) -> str:
    """What a record is sealed to: its row, unambiguously (the scope's length first)."""
    return f"payment:{len(scope)}:{scope}:{reference}"


def seal_record(codec: TokenCodec, scope: str, reference: str, data: bytes) -> bytes:
    """A record's bytes through ``codec``, sealed to its row."""
    return seal_pending(codec, record_name(scope, reference), data)


def open_record(codec: TokenCodec, scope: str, reference: str, sealed: bytes) -> bytes:
    """Inverse of :func:`seal_record`.

    Raises:
        StoreError: Another codec or key wrote it, or it was sealed to another row.
    """
    return open_pending(codec, record_name(scope, reference), sealed)
