"""Token stores: where token sets live between refreshes, processes and restarts.

The protocol is built for durable, shared stores (SQLite, Redis) from the start:

* **versioned compare-and-swap** - :meth:`TokenStore.put` writes only if the stored version is
  the one the writer read (``None``: "there must be none"), and returns the new version. A
  writer that lost the race gets :class:`~aiofinaccess.errors.StoreConflictError` and must
  re-read, never overwrite: the other writer may hold the only live refresh token.
* **a lease around a refresh** - :meth:`TokenStore.lease` is held while a refresh token is
  being redeemed, so only one process at a time spends it. Waiters re-read the store after the
  lease is theirs, and never refresh from their stale copy.
* **listing keys** - so a manager can restore every token set at start-up.
* **versions are opaque integers**: compare them for equality only. Durable stores draw them
  at random, so a key deleted and created again never repeats a version a reader remembers.
* **optional change feed** - a store shared between processes may offer
  ``changes() -> AsyncIterator[tuple[TokenKey, int | None]]`` (the key and its new version,
  ``None`` when deleted); the manager then adopts token sets another process renewed without
  waiting for its own copy to go stale (see :class:`ChangeFeed`).

Stores know nothing of managers, providers or HTTP. They raise
:class:`~aiofinaccess.errors.StoreError` (or a subclass) on failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

import attrs

from ..tokens import TokenKey, TokenSet

__all__ = ["ChangeFeed", "TokenStore", "Versioned"]


@attrs.frozen(slots=True)
class Versioned:
    """A stored token set and the version that guards the next write to it."""

    token_set: TokenSet
    version: int


@runtime_checkable
class TokenStore(Protocol):
    """What a session manager needs from a store. Every method is a coroutine or async CM."""

    async def get(self, key: TokenKey) -> Versioned | None:
        """Return the stored token set for ``key`` and its version, or ``None``."""
        ...

    async def put(self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None) -> int:
        """Write ``token_set`` if the stored version equals ``expected_version``.

        ``expected_version=None`` means the key must not exist yet.

        Returns:
            The new version.

        Raises:
            StoreConflictError: The stored version is not ``expected_version``.
            StoreError: The write failed.
        """
        ...

    async def delete(self, key: TokenKey, *, expected_version: int | None = None) -> bool:
        """Delete ``key`` (only at ``expected_version`` when given).

        Returns:
            True if something was deleted.
        """
        ...

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` exclusively for at most ``ttl`` seconds across every user of the store."""
        ...

    def keys(self, provider: str | None = None) -> AsyncIterator[TokenKey]:
        """Iterate over stored keys, optionally of one provider."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources. Idempotent."""
        ...


@runtime_checkable
class ChangeFeed(Protocol):
    """A store that tells its users when another process wrote a token set."""

    def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        """Yield ``(key, new version or None if deleted)`` for writes by anyone, until closed."""
        ...
