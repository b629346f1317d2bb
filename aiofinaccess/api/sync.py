"""The shape a sync worker needs, shared by the providers' incremental syncs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .everifin.bankconnect import Transaction, TransactionSync
    from .finapi.models import FinApiTransaction
    from .finapi.sync import FinApiTransactionSync

__all__ = ["IncrementalSync"]

_T_co = TypeVar("_T_co", covariant=True)


class IncrementalSync(Protocol[_T_co]):
    """What a sync worker needs: a cursor to persist and the changes since it.

    Both :class:`~aiofinaccess.everifin.TransactionSync` (Everifin) and
    :class:`~aiofinaccess.finapi.FinApiTransactionSync` fit.
    """

    cursor: Any

    def changes(self, *, per_page: int = ...) -> AsyncIterator[_T_co]:
        """Yield what changed since ``cursor``, advancing it."""
        ...


if TYPE_CHECKING:  # mypy proves both providers' syncs fit the one worker loop

    def _both_fit(
        everifin: TransactionSync, finapi: FinApiTransactionSync
    ) -> tuple[IncrementalSync[Transaction], IncrementalSync[FinApiTransaction]]:
        return everifin, finapi
