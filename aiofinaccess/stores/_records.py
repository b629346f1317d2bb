"""Reading stored rows in bulk: one that does not parse or decode is skipped, logged by hash
and counted (:class:`~aiofinaccess.stores.StoreStats`), so it never ends a restore or a listing.

A single ``get`` of such a record still raises: its caller asked for that key.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from ..core.errors import StoreError
from ..core.tokens import TokenKey
from .protocol import StoreStats, Versioned

if TYPE_CHECKING:
    from .codec import TokenCodec

__all__ = ["parse_key", "read_record"]

logger = logging.getLogger("aiofinaccess")


def parse_key(stats: StoreStats, text: str, store: str) -> TokenKey | None:
    """``text`` as a key, or ``None`` (logged by hash and counted) when it does not parse."""
    try:
        return TokenKey.parse(text)
    except ValueError:
        stats.malformed_keys += 1
        hashed = hashlib.sha256(text.encode(errors="replace")).hexdigest()[:12]
        logger.warning("the %s store holds a malformed token key (%s); skipping it", store, hashed)
        return None


def read_record(
    codec: TokenCodec,
    stats: StoreStats,
    key: TokenKey,
    version: object,
    data: bytes,
    *,
    age: float | None = None,
    transit: float = 0.0,
) -> Versioned | None:
    """Decode one stored set, or ``None`` (logged by key hash and counted) when it does not."""
    try:
        token_set = codec.decode(data, kind="token_set", key=str(key))
        return Versioned(token_set, int(version), age=age, transit=transit)  # type: ignore[call-overload]
    except Exception as exc:  # a codec may raise anything: all mean unreadable
        stats.unreadable_records += 1
        # The codecs' own messages name no key or secret; any other error only by its type.
        why = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
        stats.last_unreadable = why
        logger.warning("token set %s is unreadable (%s); skipping it", key.hashed, why)
        return None
