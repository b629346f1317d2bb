"""Re-seal a store's token sets: the migration to records bound to their key.

Records written before sealed records (see :mod:`aiofinaccess.stores.codec`) carry no kind or
key, so a row copied over another is indistinguishable from the right one. The migration:

1. open the store with ``FernetCodec(keys, accept_unbound=True)`` in every process;
2. ``await reseal(store)`` once (it is idempotent, and safe while workers run);
3. after the longest pending-authorization TTL (default 10 minutes), drop ``accept_unbound``.

A row that was already swapped before step 2 is sealed where it lies: if an attacker could
write the store before, revoke and re-authorize those users instead.
"""

from __future__ import annotations

from ..core.errors import StoreConflictError
from . import TokenStore

__all__ = ["reseal"]


async def reseal(store: TokenStore, *, lease_ttl: float = 30.0) -> int:
    """Rewrite every token set in ``store`` through its codec, sealed to its key.

    Each rewrite holds the key's refresh lease, so it never races a renewal (a renewal that
    lost its compare-and-swap could lose a rotated refresh token). A key another writer
    changed or deleted meanwhile is skipped: that writer sealed it already.

    Args:
        store: A store whose codec reads the old records (``accept_unbound=True``).
        lease_ttl: Seconds to wait for, and hold, each key's lease.

    Returns:
        How many token sets were rewritten.

    Raises:
        StoreError: A record cannot be read (wrong key, or ``accept_unbound`` not set).
    """
    keys = [key async for key in store.keys()]  # noqa: SIM118  (a store, not a dict)
    done = 0
    for key in keys:
        async with store.lease(key, ttl=lease_ttl):
            current = await store.get(key)
            if current is None:
                continue
            try:
                await store.put(key, current.token_set, expected_version=current.version)
            except StoreConflictError:
                continue
            done += 1
    return done
