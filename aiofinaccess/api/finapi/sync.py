"""Incremental sync of finAPI transactions, in the shape of Everifin's ``TransactionSync``.

finAPI has no "changed since" filter. What it has is an import timestamp on every transaction
(``importDate``), a ``minImportDate`` filter (a day) and ordering by ``importDate`` then
``id``. So the cursor is the position of the last transaction processed, ``(importDate, id)``.
The first run reads everything oldest first. A later run asks from the cursor's day (one day
earlier, as the filter's time zone is not documented) newest first, stops at the page that
reaches the cursor, and yields what it found oldest first: it reads what is new, not the
whole of the cursor's day.

What this does not see: changes finAPI makes to a transaction *after* importing it (category,
``isNew``, ``finapiBookingDate`` moving towards the bank's date, deleted potential duplicates).
Reconcile those with an occasional full :meth:`FinApiData.transactions` pass.

One worker loop serves both providers through :class:`~aiofinaccess.IncrementalSync`::

    async def drain(sync: IncrementalSync[object]) -> None:
        async for transaction in sync.changes():
            await upsert(transaction)
        await save_cursor(sync.cursor)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Final

import attrs

from ...core.errors import UnexpectedResponseError, ValidationError
from .data import FinApiData, TransactionFilters
from .models import GERMAN_TIME, FinApiTransaction, parse_instant

__all__ = ["FinApiSyncCursor", "FinApiTransactionSync"]

_ONE_DAY: Final = dt.timedelta(days=1)


def _utc(moment: dt.datetime) -> dt.datetime:
    # Kept in UTC: positions compare by plain arithmetic, with no daylight-saving folds.
    if moment.tzinfo is None:
        raise ValidationError("imported_at must be timezone-aware")
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # the first hours of year 1 east of UTC
        raise ValidationError(f"imported_at is out of range in UTC: {moment}") from None


@attrs.frozen(slots=True, order=True)
class FinApiSyncCursor:
    """The last transaction processed: its import time (kept in UTC), then its id.

    Store it as text with :meth:`to_text` and read it back with :meth:`from_text`.
    """

    imported_at: dt.datetime = attrs.field(converter=_utc)
    transaction_id: int

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
    import order, and moves :attr:`cursor` past each when the loop asks for the next one (so a
    loop that breaks, or crashes, sees the item it stopped on again: at least once, as
    Everifin's sync). Persist ``cursor`` between runs (``cursor.to_text()``); ``None`` starts
    over.

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
        fresh = self._ascending(per_page) if start is None else self._since(start, per_page)
        async for transaction in fresh:
            yield transaction
            position = FinApiSyncCursor.of(transaction)
            if self.cursor is None or position > self.cursor:
                self.cursor = position

    def _filters(self, since: dt.date | None, order: tuple[str, ...]) -> TransactionFilters:
        return TransactionFilters(
            account_ids=self.account_ids,
            min_bank_booking_date=self.booking_date_from,
            min_import_date=None if since is None else since - _ONE_DAY,
            order=order,
        )

    def _ascending(self, per_page: int) -> AsyncIterator[FinApiTransaction]:
        """The first run: everything, oldest import first."""
        return self.data.transactions(
            self.user, self._filters(None, ("importDate,asc", "id,asc")), per_page=per_page
        )

    async def _since(
        self, start: FinApiSyncCursor, per_page: int
    ) -> AsyncIterator[FinApiTransaction]:
        """Later runs: newest first until a page reaches the cursor, then yielded oldest first.

        So a run reads what is new (and the rest of one page), not the whole of the cursor's
        day. A page that is not newest first (finAPI not honouring the order) does not count
        as reaching the cursor: the scan reads on rather than stop early.
        """
        since = start.imported_at.astimezone(GERMAN_TIME).date()
        filters = self._filters(since, ("importDate,desc", "id,desc"))
        fresh: dict[int, FinApiTransaction] = {}
        page = 1
        while True:
            found = await self.data.transactions_page(
                self.user, filters, page=page, per_page=per_page
            )
            positions = [FinApiSyncCursor.of(t) for t in found.transactions]
            for transaction, position in zip(found.transactions, positions, strict=True):
                if position > start:
                    fresh[transaction.id] = transaction  # a shifted page may repeat one
            newest_first = positions == sorted(positions, reverse=True)
            reached = any(position <= start for position in positions)
            if (reached and newest_first) or page >= found.paging.page_count:
                break
            page += 1
        for transaction in sorted(fresh.values(), key=FinApiSyncCursor.of):
            yield transaction
