"""Payment records: what a payment-creating request was, kept in the token store before it is
sent, so that whoever asks later (this process after a failure, another after a crash) learns
the outcome instead of sending it again.

A record is opaque bytes under ``(scope, reference)`` (the SDK's scope is a provider and a
user; the reference is the client reference the request carries) with a version that guards
every change: :meth:`PaymentRecords.add_payment_record` creates it only where none exists (of
concurrent adders, exactly one wins: the one that may send), and
:meth:`PaymentRecords.replace_payment_record` changes it only at the version the writer read.
Records are never deleted by the SDK. Durable stores pass the bytes through their token codec,
sealed to the record's name, so a :class:`~aiofinaccess.stores.codec.FernetCodec` encrypts the
IBANs and amounts in them too. ``MemoryStore``, ``SQLiteStore``, ``RedisStore`` and
``PostgresStore`` implement it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import attrs

from ..core.errors import UsageError
from .protocol import open_pending, seal_pending

if TYPE_CHECKING:
    from .codec import TokenCodec

__all__ = ["PaymentRecords", "StoredRecord"]

_NAME_LIMIT: Final = 512


@attrs.frozen(slots=True)
class StoredRecord:
    """A payment record's bytes and the version that guards its next change (from 1)."""

    data: bytes = attrs.field(repr=False)
    version: int


@runtime_checkable
class PaymentRecords(Protocol):
    """A store that keeps payment records (see the module's docstring)."""

    async def add_payment_record(self, scope: str, reference: str, data: bytes) -> bool:
        """Create the record at version 1 unless one exists.

        Returns:
            True if this call created it; False if a record was there (it is left as it was).

        Raises:
            UsageError: ``scope`` or ``reference`` is empty or longer than 512 characters.
            StoreError: The write failed (it may or may not have been made).
        """
        ...

    async def get_payment_record(self, scope: str, reference: str) -> StoredRecord | None:
        """The record and its version, or ``None``."""
        ...

    async def replace_payment_record(
        self, scope: str, reference: str, data: bytes, *, expected_version: int
    ) -> bool:
        """Write ``data`` (version + 1) if the record is at ``expected_version``.

        Returns:
            True if written; False if the record is at another version or absent.
        """
        ...

    async def payment_records(self, scope: str) -> dict[str, StoredRecord]:
        """Every record of ``scope``, by reference."""
        ...


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
