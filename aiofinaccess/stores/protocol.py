"""What a token store is, and the helpers a store of your own can use.

A store is a :class:`TokenStore`: versioned compare-and-swap (a writer that lost the race gets
:class:`~aiofinaccess.core.errors.StoreConflictError` and must re-read, never overwrite: the
other writer may hold the only live refresh token), a lease around each refresh that its holder
extends by owner token (:class:`Lease`), and streamed key listing. Versions are opaque: compare
them for equality only. A shared store may add a change feed (:class:`ChangeFeed`), the refresh
duty (:class:`RefreshDuty`) and its last-use stamps (:class:`UseStamps`), ages on its own clock
(:attr:`Versioned.age`) and pending authorizations (:class:`PendingAuthorizations`): the shipped
stores keep the duty, its stamps and pending authorizations, and ``RedisStore`` and
``PostgresStore`` add the change feed and ages.
A bad row is skipped, logged by hash and counted (:class:`StoreStats`). Stores raise
:class:`~aiofinaccess.core.errors.StoreError` on failure.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import attrs

from ..core._repr import fields_repr
from ..core.errors import StoreError, UsageError
from ..core.tokens import Anchor, TokenKey, TokenSet

if TYPE_CHECKING:
    from ..core.clock import Clock
    from .codec import TokenCodec

__all__ = [
    "LOCAL_LEASE",
    "ChangeFeed",
    "Claimed",
    "ConnectionRecords",
    "HeldLease",
    "Lease",
    "LocalLease",
    "PendingAuthorizations",
    "RefreshDuty",
    "StoreStats",
    "TokenStore",
    "UpdateBudgets",
    "UseStamps",
    "Versioned",
    "carried",
    "stored_age",
    "writer_age",
]


@attrs.frozen(slots=True)
class Versioned:
    """A stored token set and the version that guards the next write to it.

    ``age`` is the set's age in seconds when the store answered, measured without any reader's
    wall clock: the store's clock since the write plus the writer's own age of the set at
    the write (:func:`writer_age`). Stores with a clock of their own (Redis: ``TIME``) fill
    it in; ``None`` means "not measured" (SQLite and memory stores, whose clock is this
    machine's wall clock; records written before the stamp), and the reader then takes the
    set's instants as its own wall clock's.

    ``transit``: seconds of ``age`` the store counted as the write's time in transit (the
    distance from the writer's clock to the store's, within the tolerance), which may as well
    be the writer's clock running behind: the set is at least ``age - transit`` old.
    """

    __repr__ = fields_repr

    token_set: TokenSet
    version: int
    age: float | None = attrs.field(default=None, eq=False, kw_only=True)
    transit: float = attrs.field(default=0.0, eq=False, kw_only=True)


def writer_age(token_set: TokenSet, clock: Clock) -> float:
    """The set's age now on the writer's ``clock`` (monotonic when the set is anchored), for a
    store to stamp with its own time of the write."""
    return token_set.age(monotonic=clock.monotonic(), wall=clock.wall())


def carried(found: Versioned) -> TokenSet:
    """A set read from a store, anchored by the age the store measured (as read, without one),
    so that writing it to a store again (a migration) keeps its age rather than re-measuring
    it on this machine's wall clock."""
    if found.age is None:
        return found.token_set
    anchor = Anchor.aged(found.token_set.issued_at, found.age, time.monotonic())
    return found.token_set.with_anchor(anchor)


def stored_age(written: float, age_at_write: float, store_now: float) -> float:
    """A stamped set's age at ``store_now``: the store's clock since the write (never
    negative, should that clock step back) plus the writer's age of it at the write."""
    return max(0.0, store_now - written) + age_at_write


@attrs.define(slots=True)
class StoreStats:
    """What a shipped store skipped (counters that only grow): a bad row is logged by hash,
    counted here, and never ends a listing or a bulk read."""

    __repr__ = fields_repr

    #: Stored keys that do not parse, skipped by ``keys()``.
    malformed_keys: int = 0
    #: Records that do not decode (another codec or key, damaged bytes), skipped by ``get_many``.
    unreadable_records: int = 0
    #: Why the last of them did not decode (the codec's message: never a key or a secret).
    last_unreadable: str = ""


class Lease(Protocol):
    """The holder's handle on a store lease (see :meth:`TokenStore.lease`)."""

    def remaining(self) -> float:
        """Seconds the holder can still count on (``0`` once the lease is known lost)."""
        ...

    async def extend(self, ttl: float) -> bool:
        """Make the lease last at least ``ttl`` seconds from now; never shortens it.

        Returns:
            True if the lease is still ours (extended); False if another holder has it.

        Raises:
            StoreError: The store could not be asked (the lease may or may not still be ours).
        """
        ...


class LocalLease:
    """The lease of an in-process lock: it lasts as long as its holder, so it never runs out
    and extending it always succeeds. ``MemoryStore`` yields it; the session manager also
    treats a third-party store whose ``lease()`` yields no handle as holding one."""

    __slots__ = ()

    def remaining(self) -> float:
        """Never runs out."""
        return math.inf

    async def extend(self, ttl: float) -> bool:
        """Always still ours."""
        return True


LOCAL_LEASE: Final = LocalLease()


class HeldLease:
    """A holder's :class:`Lease` for stores whose lease lives on a server or in a file.

    The holder counts its lease from the moment *before* it asked the store (the store's own
    expiry can only be later), so :meth:`remaining` never overstates it. ``extend_at`` asks
    the store to push the lease to at least ``asked + ttl`` (``asked`` is this clock's reading
    just before the call) and answers whether the lease was still ours.

    Args:
        until: When the lease runs out, on ``clock``.
        extend_at: ``(asked, ttl) -> still ours?``; the store refuses anyone but the owner.
        clock: The clock ``until`` is on (the machine's monotonic clock by default).
    """

    __slots__ = ("_clock", "_extend_at", "_lost", "_until")

    def __init__(
        self,
        until: float,
        extend_at: Callable[[float, float], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._until = until
        self._extend_at = extend_at
        self._clock = clock
        self._lost = False

    def remaining(self) -> float:
        """Seconds the holder can still count on (``0`` once known lost)."""
        return 0.0 if self._lost else max(0.0, self._until - self._clock())

    async def extend(self, ttl: float) -> bool:
        """Make the lease last at least ``ttl`` seconds from now; False if it is lost."""
        asked = self._clock()
        if not await self._extend_at(asked, ttl):
            self._lost = True
            return False
        self._until = max(self._until, asked + ttl)
        return True


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

    def lease(self, key: TokenKey, *, ttl: float) -> AbstractAsyncContextManager[Lease]:
        """Hold ``key`` exclusively across every user of the store, for ``ttl`` seconds unless
        the holder extends it.

        Waits up to ``ttl`` seconds for a lease someone else holds, then raises
        :class:`~aiofinaccess.core.errors.LeaseBusyError`. Released on exit; a holder that dies
        loses it when it runs out.
        """
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


@runtime_checkable
class RefreshDuty(Protocol):
    """A store that keeps each token set's next due time and hands due sets to one worker at a time.

    Due times are wall-clock epoch seconds (the token sets' own expiries are wall-clock too, and
    the store is shared between machines). A set's due time is written atomically with the set
    itself: ``put(..., due_at=...)`` (a keyword that only RefreshDuty stores accept; ``None`` =
    not scheduled, e.g. a set with no refresh token that nobody needs to renew).

    **Claims.** :meth:`claim_due` moves each set it hands out to a *claim deadline* (its clock's
    now plus ``claim_for``) in the same atomic step that selects it, so no other claimant sees it
    until then. The claimant renews it and writes the next due time with ``put(..., due_at=...)``
    (or :meth:`reschedule`); a claimant that dies simply leaves its sets to fall due again at
    their deadline, and the next claimant finds them with every other due set. The owner is
    informational (stores may log or record it); exclusivity comes from the deadline alone, so
    ``claim_for`` must cover a renewal with margin.

    **The store's clock.** "Due" and the deadline are read on the store's clock, never the
    claimant's: a claimant whose clock is late or early takes what is due and holds it for
    ``claim_for``, like any other. Redis reads ``TIME`` inside the claim script (in a cluster,
    the clock of the node holding the shard); SQLite and the memory store run on the machine
    they live on, so their clock is that machine's (:func:`time.time`).

    **Scope.** A claimant names the client keys it holds (``clients``: one per provider it
    serves, see :func:`~aiofinaccess.core.tokens.client_label`) and gets nothing it could not
    renew: user sets of those providers and those very client sets. Another client's set, or a
    set of a provider it does not serve, stays due for the worker that can renew it.

    **Unrenewable entries.** A due entry whose key does not parse, or whose set is gone, is
    dropped from the duty by the claim that meets it (the set, if any, is left alone) and
    counted in :attr:`Claimed.dropped`: it never comes back.

    **Deletes.** ``delete(key)`` also clears the key's due time. A plain ``put`` without
    ``due_at`` clears it as well: a writer of a RefreshDuty store always says when the set is
    next due.

    **Shards.** A store may keep due times in several shards (Redis does, so that a cluster has
    no single hot key): a claim takes the most overdue sets first within a shard and spreads over
    shards so that none starves. The order of the returned list is not a promise.
    """

    async def put(
        self,
        key: TokenKey,
        token_set: TokenSet,
        *,
        expected_version: int | None,
        due_at: float | None = None,
    ) -> int:
        """Compare-and-swap like :meth:`TokenStore.put`; also set (or clear, for ``None``) the
        key's due time in the same atomic step.

        Raises:
            StoreConflictError: The stored version is not ``expected_version`` (the due time is
                left as it was).
            StoreError: The write failed.
        """
        ...

    async def claim_due(
        self, *, limit: int, claim_for: float, owner: str, clients: Collection[TokenKey]
    ) -> Claimed:
        """Atomically take up to ``limit`` sets in scope (see ``clients`` above) that are due on
        the store's clock, and push each one's due time to that clock's now plus ``claim_for``.

        Concurrent callers never get the same key before its deadline; a claimant that dies
        leaves its keys to fall due again at the deadline. Most overdue first within a shard;
        shards are visited so no shard starves.

        Raises:
            UsageError: ``limit`` is not a positive integer, ``claim_for`` not a positive
                number of seconds, or ``clients`` not client keys of distinct providers.
            StoreError: The store failed (some keys may have been claimed all the same: they
                fall due again at their deadline).
        """
        ...

    async def reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        """Set (or clear, ``None``) a key's due time without writing the set (e.g. a claimed set
        turned out to be renewed already by someone else and its due time must come from the
        stored set, or a dead set leaves the duty). No-op for an absent key, and, with
        ``expected_version``, for a set at another version (a login stored since keeps its
        own due time)."""
        ...

    async def next_due(self, *, clients: Collection[TokenKey] | None = None) -> float | None:
        """The earliest due time (claims included) in ``clients``' scope (everything: ``None``),
        or None: lets a worker sleep."""
        ...

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now`` (for metrics and the fleet benchmark's backlog
        figure)."""
        ...


@runtime_checkable
class UseStamps(Protocol):
    """A refresh-duty store that keeps when each token set was last used, so the duty leaves
    idle sets alone (``Schedule.idle_after``).

    Serving processes stamp uses in batches, each as an *age* (seconds since the use on the
    writer's own clock), and the store keeps the latest use on its own clock: no writer's wall
    clock enters, however skewed. Ages are read on the store's clock too. The stamp lives and
    dies with the set (a delete removes it; a ``put`` leaves it as it is).
    """

    async def mark_used(self, uses: Mapping[TokenKey, float]) -> None:
        """Stamp each key as used ``uses[key]`` seconds ago; a stamp older than the stored one
        changes nothing. A key not stored is skipped. A stored key without a due time falls
        due at once (on the store's clock): a set the duty left idle rejoins it.

        Raises:
            UsageError: An age is not a finite number of seconds >= 0.
            StoreError: The store failed (some stamps may be written).
        """
        ...

    async def idle_for(self, keys: Collection[TokenKey]) -> dict[TokenKey, float | None]:
        """Seconds since each stored key's last stamped use, on the store's clock (``None``:
        never stamped); keys not stored are left out."""
        ...


def check_uses(uses: Mapping[TokenKey, float]) -> list[tuple[TokenKey, float]]:
    """Validate :meth:`UseStamps.mark_used`'s ages; return them as ``(key, float)`` pairs."""
    checked = []
    for key, age in uses.items():
        if isinstance(age, bool) or not (
            isinstance(age, int | float) and math.isfinite(age) and age >= 0
        ):
            raise UsageError("a use's age must be a finite number of seconds >= 0")
        checked.append((key, float(age)))
    return checked


class Claimed(list[TokenKey]):
    """What :meth:`RefreshDuty.claim_due` took (a list of keys), and ``dropped``: how many due
    entries it met that nothing can renew (malformed, or their set gone) and took off the duty."""

    dropped: int = 0

    def __init__(self, keys: Iterable[TokenKey] = (), dropped: int = 0) -> None:
        super().__init__(keys)
        self.dropped = dropped


def check_claim(limit: int, claim_for: float) -> None:
    """Validate :meth:`RefreshDuty.claim_due`'s ``limit`` and ``claim_for``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError("a claim's limit must be a positive integer")
    if not (isinstance(claim_for, int | float) and math.isfinite(claim_for) and claim_for > 0):
        raise UsageError("a claim's claim_for must be a positive number of seconds")


def check_scope(clients: Collection[TokenKey] | None) -> dict[str, TokenKey] | None:
    """Validate a claim's ``clients``; return them by provider (``None`` stays ``None``)."""
    if clients is None:
        return None
    scope: dict[str, TokenKey] = {}
    for key in clients:
        if not isinstance(key, TokenKey) or not key.is_client or key.provider in scope:
            raise UsageError("a claim's clients must be client keys of distinct providers")
        scope[key.provider] = key
    return scope


def in_scope(key: TokenKey, scope: dict[str, TokenKey]) -> bool:
    """Whether a claimant holding ``scope``'s client keys can renew ``key``."""
    own = scope.get(key.provider)
    return own is not None and (not key.is_client or key == own)


def sort_claimed(
    found: Iterable[tuple[str, str]], scope: dict[str, TokenKey]
) -> tuple[Claimed, list[str]]:
    """A claim's rows ``(stored key, provider)``: the keys to renew, and the stored keys that
    no claim can renew (malformed, or not what the row's provider says), to take off the duty."""
    claimed, junk = Claimed(), []
    for text, provider in found:
        try:
            key: TokenKey | None = TokenKey.parse(text)
        except ValueError:
            key = None
        if key is None or key.provider != provider or not in_scope(key, scope):
            junk.append(text)
        else:
            claimed.append(key)
    return claimed, junk


def check_due(due_at: float | None) -> float | None:
    """Validate a due time (finite epoch seconds, or ``None``); return it as a float."""
    if due_at is None:
        return None
    if isinstance(due_at, bool) or not (isinstance(due_at, int | float) and math.isfinite(due_at)):
        raise UsageError("a due time must be finite epoch seconds or None")
    return float(due_at)


@runtime_checkable
class PendingAuthorizations(Protocol):
    """Short-lived records of authorization flows in flight, shared like the token sets.

    Keys are opaque strings (the web layer passes a hash of the OAuth ``state``), values are
    opaque bytes. Every record expires ``ttl`` seconds after it was last put; an expired
    record reads as absent. Durable stores pass the bytes through their token codec, so a
    :class:`~aiofinaccess.stores.codec.FernetCodec` encrypts a PKCE verifier at rest too.
    ``MemoryStore``, ``SQLiteStore``, ``RedisStore`` and ``PostgresStore`` implement it.
    """

    async def put_pending(self, state: str, data: bytes, *, ttl: float) -> None:
        """Store ``data`` under ``state`` (replacing any record) for ``ttl`` seconds.

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            StoreError: The write failed.
        """
        ...

    async def get_pending(self, state: str) -> bytes | None:
        """Return the live record under ``state`` without consuming it, or ``None``."""
        ...

    async def take_pending(self, state: str) -> bytes | None:
        """Atomically read and delete the record: of concurrent takers, exactly one gets it.

        Returns:
            The record, or ``None`` when there is none, it expired, or another taker won.
        """
        ...


@runtime_checkable
class ConnectionRecords(Protocol):
    """Bank connections' records and the outbox of their notices, shared by the fleet.

    Both are opaque to the store (the session's connection registry writes JSON; names are
    strings). **Records** are versioned like token sets: a write names the version it read
    (``None``: the name must be new) and a writer that lost gets
    :class:`~aiofinaccess.core.errors.StoreConflictError`. **Notices** are claimed by id, once:
    of all claimants of an id, ever, exactly one gets ``True`` (a finished notice's id stays
    claimed). A claimed notice is due for delivery again ``claim_for`` seconds later on the
    store's clock until :meth:`finish_notice`, so a claimant that dies before delivering leaves
    it to :meth:`overdue_notices`. The shipped stores implement it.
    """

    async def get_connection(self, name: str) -> tuple[bytes, int] | None:
        """The record under ``name`` and its version, or ``None``."""
        ...

    async def put_connection(self, name: str, data: bytes, *, expected_version: int | None) -> int:
        """Write the record if the stored version equals ``expected_version``; return the new one.

        Raises:
            StoreConflictError: The stored version is not ``expected_version``.
        """
        ...

    def list_connections(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every record, as ``(name, data)``."""
        ...

    async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
        """Claim ``notice`` (keeping ``data`` for redelivery) unless anyone ever claimed it."""
        ...

    async def overdue_notices(self, *, limit: int, claim_for: float) -> list[tuple[str, bytes]]:
        """Take up to ``limit`` claimed, unfinished notices whose claim ran out on the store's
        clock, claiming each for ``claim_for`` seconds more; concurrent callers never get the
        same notice within a claim."""
        ...

    async def finish_notice(self, notice: str) -> None:
        """Mark ``notice`` delivered: never overdue again, its id still claimed."""
        ...

    async def prune_notices(self, *, older_than: float) -> int:
        """Forget notices delivered more than ``older_than`` seconds ago (the store's clock);
        return how many. A pruned id can be claimed again: keep them longer than any decision
        can be in flight (a record's compare-and-set settles in seconds)."""
        ...


@runtime_checkable
class UpdateBudgets(Protocol):
    """Per connection, the unattended updates taken in a rolling window, shared by the fleet
    (PSD2's four per 24 hours; the decision is
    :func:`~aiofinaccess.core.update_budget.next_slot`). The shipped stores implement it."""

    async def take_update(self, name: str, *, limit: int, window: float) -> float | None:
        """Take one of ``name``'s ``limit`` slots per ``window`` seconds, atomically for every
        user of the store, on the store's clock: ``None`` when taken; else, taking nothing,
        when a slot frees (epoch seconds). A slot is never given back: the update it was taken
        for may have reached the bank whatever became of the call.

        Raises:
            UsageError: ``limit`` is not a positive integer or ``window`` not positive seconds.
            StoreError: The store failed (a slot may have been taken all the same).
        """
        ...


def check_ttl(ttl: float) -> float:
    """Validate a pending record's ``ttl``; return it."""
    if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
        raise UsageError("a pending record's ttl must be a positive number of seconds")
    return float(ttl)


def seal_pending(codec: TokenCodec, state: str, data: bytes) -> bytes:
    """Pass opaque bytes through a token codec, sealed to ``state``, so an encrypting codec
    protects them too.

    The codec protocol speaks token sets only; wrapping the bytes as one (base64 in the
    access-token slot) lets every codec, the app's own included, seal them unchanged.
    """
    wrapped = TokenSet(access_token=base64.urlsafe_b64encode(data).decode("ascii"))
    return codec.encode(wrapped, kind="pending", key=state)


def open_pending(codec: TokenCodec, state: str, sealed: bytes) -> bytes:
    """Inverse of :func:`seal_pending`.

    Raises:
        StoreError: The record cannot be decoded (another codec or key wrote it), or was
            sealed under another state or as a token set (a row moved in the store).
    """
    wrapped = codec.decode(sealed, kind="pending", key=state)
    try:
        return base64.urlsafe_b64decode(wrapped.access_token.reveal().encode("ascii"))
    except (binascii.Error, ValueError):
        raise StoreError("a pending authorization record is unreadable") from None
