"""What a store that keeps payment records offers (the SDK's payment clients speak it; the
shipped stores implement it: :mod:`aiofinaccess.stores.payment_records`).

A record is opaque bytes under ``(scope, reference)`` (the SDK's scope is a provider and a
user; the reference is the client reference the request carries) with a version that guards
every change: :meth:`PaymentRecords.add_payment_record` creates it only where none exists (of
concurrent adders, exactly one wins: the one that may send), and
:meth:`PaymentRecords.replace_payment_record` changes it only at the version the writer read.
Records are never deleted by the SDK.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

__all__ = ["PaymentRecords", "StoredRecord"]


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
