"""Token stores: where token sets live between refreshes, processes and restarts.

This namespace holds what a store is made of and what writing one takes: the protocols
(:class:`TokenStore`, :class:`RefreshDuty`, :class:`ChangeFeed`, :class:`PendingAuthorizations`,
:class:`PaymentRecords`), their values and helpers, the codecs that turn a token set into a
record, and :class:`Replication` (how many replicas a write waits for). The shipped stores
themselves are top-level: ``from aiofinaccess import MemoryStore, SQLiteStore, RedisStore``.

Wall: imports ``core`` (and the store drivers: aiosqlite, redis). Never ``oauth``, ``session``,
``api``, ``integrations``, ``cli`` or ``sandbox``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..core import _exports

if TYPE_CHECKING:  # what mypy sees; at run time ``__getattr__`` below imports on first use
    from .codec import FernetCodec as FernetCodec
    from .codec import JsonCodec as JsonCodec
    from .codec import TokenCodec as TokenCodec
    from .payment_records import PaymentRecords as PaymentRecords
    from .payment_records import StoredRecord as StoredRecord
    from .protocol import LOCAL_LEASE as LOCAL_LEASE
    from .protocol import ChangeFeed as ChangeFeed
    from .protocol import Claimed as Claimed
    from .protocol import ConnectionRecords as ConnectionRecords
    from .protocol import HeldLease as HeldLease
    from .protocol import Lease as Lease
    from .protocol import LocalLease as LocalLease
    from .protocol import PendingAuthorizations as PendingAuthorizations
    from .protocol import RefreshDuty as RefreshDuty
    from .protocol import StoreStats as StoreStats
    from .protocol import TokenStore as TokenStore
    from .protocol import UpdateBudgets as UpdateBudgets
    from .protocol import UseStamps as UseStamps
    from .protocol import Versioned as Versioned
    from .protocol import carried as carried
    from .protocol import stored_age as stored_age
    from .protocol import writer_age as writer_age
    from .replication import Replication as Replication

#: Each public name, once, by the module it lives in.
_HOMES: Final = {
    ".codec": "FernetCodec JsonCodec TokenCodec",
    ".payment_records": "PaymentRecords StoredRecord",
    ".protocol": (
        "LOCAL_LEASE ChangeFeed Claimed ConnectionRecords HeldLease Lease LocalLease "
        "PendingAuthorizations RefreshDuty StoreStats TokenStore UpdateBudgets UseStamps Versioned "
        "carried stored_age writer_age"
    ),
    ".replication": "Replication",
}

__all__ = _exports.exported(_HOMES)  # noqa: PLE0605  (derived from the one table)

if not TYPE_CHECKING:  # hidden from mypy, so a misspelt name stays a type error
    __getattr__, __dir__ = _exports.loader(__name__, _HOMES)
