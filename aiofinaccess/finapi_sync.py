"""Incremental sync of finAPI transactions, in the shape of Everifin's ``TransactionSync``.

finAPI has no "changed since" filter. What it has is an import timestamp on every transaction
(``importDate``), a ``minImportDate`` filter (a day) and ordering by ``importDate`` then
``id``. So the cursor is the position of the last transaction processed, ``(importDate, id)``;
a run asks from the cursor's day (one day earlier, as the filter's time zone is not
documented), ordered by that position, and skips everything at or before the cursor.

What this does not see: changes finAPI makes to a transaction *after* importing it (category,
``isNew``, ``finapiBookingDate`` moving towards the bank's date, deleted potential duplicates).
Reconcile those with an occasional full :meth:`FinApiData.transactions` pass.

One worker loop serves both providers through :class:`IncrementalSync`::

    async def drain(sync: IncrementalSync[object]) -> None:
        async for transaction in sync.changes():
            await upsert(transaction)
        await save_cursor(sync.cursor)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Final, Protocol, TypeVar

import attrs

from .errors import UnexpectedResponseError, ValidationError
from .finapi_data import FinApiData, TransactionFilters
from .finapi_models import GERMAN_TIME, FinApiTransaction, parse_instant

__all__ = ["FinApiSyncCursor", "FinApiTransactionSync", "IncrementalSync"]

_T_co = TypeVar("_T_co", covariant=True)
_ONE_DAY: Final = dt.timedelta(days=1)


class IncrementalSync(Protocol[_T_co]):
    """What a sync worker needs: a cursor to persist and the changes since it.

    Both :class:`~aiofinaccess.bankconnect.TransactionSync` (Everifin) and
    :class:`FinApiTransactionSync` fit.
    """

    cursor: Any

    def changes(self, *, per_page: int = ...) -> AsyncIterator[_T_co]:
        """Yield what changed since ``cursor``, advancing it."""
        ...


@attrs.frozen(slots=True, order=True)
class FinApiSyncCursor:
    """The last transaction processed: its import time, then its id.

    Store it as text with :meth:`to_text` and read it back with :meth:`from_text`.
    """

    imported_at: dt.datetime
    transaction_id: int

    def __attrs_post_init__(self) -> None:
        if self.imported_at.tzinfo is None:
            raise ValidationError("imported_at must be timezone-aware")

    def to_text(self) -> str:
        """``<ISO 8601 instant>/<id>``."""
        return f"{self.imported_at.isoformat()}/{self.transaction_id}"

    @classmethod
    def from_text(cls, text: str) -> FinApiSyncCursor:
        """Read :meth:`to_text`'s form.

        Raises:
            ValidationError: Not that form.
        """
        instant, _, number = text.rpartition("/")
        try:
            return cls(parse_instant(instant), int(number))
        except ValueError:
            raise ValidationError(f"not a finAPI sync cursor: {text!r}") from None

    @classmethod
    def of(cls, transaction: FinApiTransaction) -> FinApiSyncCursor:
        """The position of ``transaction``.

        Raises:
            UnexpectedResponseError: finAPI sent it without an ``importDate``.
        """
        if transaction.import_date is None:
            raise UnexpectedResponseError(f"transaction {transaction.id} has no importDate")
        return cls(transaction.import_date, transaction.id)


@attrs.define
class FinApiTransactionSync:
    """Incremental sync of a finAPI user's transactions (all accounts, or ``account_ids``).

    Each :meth:`changes` run yields every transaction imported since the last one, once, in
    import order, and moves :attr:`cursor` past each as it is yielded. Persist ``cursor``
    between runs (``cursor.to_text()``); ``None`` starts over.

    Args:
        data: The finAPI data client.
        user: The finAPI user's id (the manager holds their tokens).
        account_ids: Only these accounts; all when ``None``.
        cursor: The last transaction already processed, or ``None``.
        booking_date_from: Skip history booked before this date (the bank's booking date).
    """

    data: FinApiData
    user: str
    account_ids: tuple[int, ...] | None = None
    cursor: FinApiSyncCursor | None = None
    booking_date_from: dt.date | None = None

    async def changes(self, *, per_page: int = 500) -> AsyncIterator[FinApiTransaction]:
        """Yield what finAPI imported since :attr:`cursor`, advancing it as items are yielded."""
        start = self.cursor
        since = None if start is None else start.imported_at.astimezone(GERMAN_TIME).date()
        filters = TransactionFilters(
            account_ids=self.account_ids,
            min_bank_booking_date=self.booking_date_from,
            min_import_date=None if since is None else since - _ONE_DAY,
            order=("importDate,asc", "id,asc"),
        )
        async for transaction in self.data.transactions(self.user, filters, per_page=per_page):
            position = FinApiSyncCursor.of(transaction)
            # Compared with where the run started, not the moving cursor: should finAPI ever
            # not honour the order, an item would be yielded late rather than lost.
            if start is not None and position <= start:
                continue
            yield transaction
            if self.cursor is None or position > self.cursor:
                self.cursor = position
