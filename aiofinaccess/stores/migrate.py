"""Store migrations: re-sealing records, giving old sets due times, moving sets between stores.

* :func:`reseal`: records written before sealed records (:mod:`aiofinaccess.stores.codec`)
  carry no kind or key. Open the store with ``FernetCodec(keys, accept_unbound=True)`` in every
  process, ``await reseal(store)`` once (idempotent, safe while workers run), then drop
  ``accept_unbound`` after the longest pending-authorization TTL (10 minutes by default). A row
  swapped before that is sealed where it lies: re-authorize its users if others could write.
* :func:`schedule`: sets written before their store kept due times have none, so no worker
  would claim them. Run it once on a Redis store after every process is upgraded (SQLite adds
  the column on first open); every set falls due now and is rescheduled by its first claimant.
* :func:`copy_sets`: to another store or layout (SQLite to Redis, a one-hash-tag cluster prefix
  to the sharded layout): stop the old writers, then copy; every set arrives due at once.

Every function streams the keys.
"""

from __future__ import annotations

import time

from ..core.errors import StoreConflictError
from .protocol import RefreshDuty, TokenStore, carried

__all__ = ["copy_sets", "reseal", "schedule"]


async def reseal(store: TokenStore, *, lease_ttl: float = 30.0) -> int:
    """Rewrite every token set in ``store`` through its codec, sealed to its key.

    Each rewrite holds the key's refresh lease, so it never races a renewal (a renewal that
    lost its compare-and-swap could lose a rotated refresh token). A key another writer
    changed or deleted meanwhile is skipped: that writer sealed it already. On a
    :class:`~aiofinaccess.stores.RefreshDuty` store each rewritten set falls due at once (the
    store's protocol has no way to read a due time back), so the duty reschedules it from the
    set.

    Args:
        store: A store whose codec reads the old records (``accept_unbound=True``).
        lease_ttl: Seconds to wait for, and hold, each key's lease.

    Returns:
        How many token sets were rewritten.

    Raises:
        StoreError: A record cannot be read (wrong key, or ``accept_unbound`` not set).
    """
    done = 0
    async for key in store.keys():
        async with store.lease(key, ttl=lease_ttl):
            current = await store.get(key)
            if current is None:
                continue
            try:
                if isinstance(store, RefreshDuty):
                    await store.put(
                        key,
                        carried(current),
                        expected_version=current.version,
                        due_at=time.time(),
                    )
                else:
                    await store.put(key, carried(current), expected_version=current.version)
            except StoreConflictError:
                continue
            done += 1
    return done


async def schedule(store: TokenStore, *, due_at: float | None = None) -> int:
    """Give every stored set the due time ``due_at`` (now by default).

    Args:
        store: A :class:`~aiofinaccess.stores.RefreshDuty` store.
        due_at: Epoch seconds; the duty reschedules each set from the set itself once claimed.

    Returns:
        How many keys were listed (and rescheduled, unless deleted meanwhile).

    Raises:
        TypeError: ``store`` keeps no due times.
        StoreError: The store failed.
    """
    if not isinstance(store, RefreshDuty):
        raise TypeError(f"{type(store).__name__} keeps no due times")
    when = time.time() if due_at is None else due_at
    count = 0
    async for key in store.keys():
        await store.reschedule(key, when)
        count += 1
    return count


async def copy_sets(source: TokenStore, target: TokenStore, *, due_at: float | None = None) -> int:
    """Copy every set of ``source`` that ``target`` lacks; on a RefreshDuty target each copy
    falls due at ``due_at`` (now by default).

    Stop every writer of ``source`` first: a set renewed after its copy would leave the copy
    holding a spent refresh token.

    Returns:
        How many sets were copied (keys ``target`` already had are left alone).

    Raises:
        StoreError: Either store failed.
    """
    when = time.time() if due_at is None else due_at
    copied = 0
    async for key in source.keys():
        current = await source.get(key)
        if current is None:
            continue
        try:
            if isinstance(target, RefreshDuty):
                await target.put(key, carried(current), expected_version=None, due_at=when)
            else:
                await target.put(key, carried(current), expected_version=None)
        except StoreConflictError:
            continue
        copied += 1
    return copied
