"""The renewal decision as a pure step: what to do next for one token set, and nothing else.

Theory of operation
-------------------
In the style of h11 and httpx's auth flows, every decision of a renewal lives here, as a
function of plain data, and the I/O driver (:mod:`aiofinaccess.session.renewal`) only carries the
steps out. :func:`next_step` is given a :class:`Situation` (what this process knows of the
token set, what the store holds, the clock, how much of the store's lease is left, whether
the API rejected a token, whether a redeemed set waits to be written) and returns exactly one
step:

* :class:`Persist` - a redeemed set waits to be stored. Nothing else may happen for this key
  first: the redeemed set holds the only live refresh token.
* :class:`Adopt` - the store holds a usable set this process does not have: take it, send
  nothing.
* :class:`Reinstate` - the store holds an older set of the session this process holds a newer
  set of (the store was rolled back: a failover, a restored backup): write the newer one back,
  never adopt the older one (its refresh token is spent). "Older" is decided by
  :func:`superseded` on what every process sees alike: the session's lineage and the number
  of renewals into it, never by clocks or store versions.
* :class:`Poison` - no grant can renew the set: the user must authorize again.
* :class:`WaitUntil` - a reissued token (finAPI client tokens) cannot be renewed before it
  expires; a rejected token waits for nothing.
* :class:`TakeLease` / :class:`ExtendLease` - the fence: a refresh is sent only by the holder
  of the store's lease; a lease that ran out or is known lost is asked about again.
* :class:`Redeem` - once an endpoint slot is free, make sure the lease has the whole token
  exchange plus a margin left (extending it then, not while waiting for the slot: a crash
  while waiting blocks the key for one lease only), and send the token request.

Nothing here reads a clock, sleeps or performs I/O; an unanchored token set cannot even be
planned (:func:`~aiofinaccess.core.lifecycle.plan` refuses it), so every stored set is anchored
where the driver reads it.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import attrs

from .lifecycle import Action, Deadlines, Renewal, choose_renewal, decide
from .tokens import TokenSet

__all__ = [
    "Adopt",
    "ExtendLease",
    "Persist",
    "Poison",
    "Redeem",
    "Reinstate",
    "Situation",
    "Step",
    "Stored",
    "TakeLease",
    "WaitUntil",
    "adoptable",
    "begun",
    "descended",
    "lineage",
    "next_step",
    "superseded",
]


@attrs.frozen(slots=True)
class Stored:
    """What the store holds for the key: an anchored set, its version and its deadlines.

    ``slack``: seconds between asking the store and its answer. The set is anchored as if the
    store had answered at once (as old as it can be: safe for its access token), so it may be
    up to that much younger: its refresh token is judged run out only if it is even then.
    """

    token_set: TokenSet
    version: int
    deadlines: Deadlines
    slack: float = 0.0


@attrs.frozen(slots=True)
class Situation:
    """Everything one renewal step depends on.

    Attributes:
        now: Monotonic seconds.
        stored: What the store held at the last read (``None``: nothing).
        known_version: The store version this process already holds (``None``: none).
        held: The set this process holds (``None``: none).
        rejected: An access token the API answered 401 to (never adopt it again).
        forced: The app asked to renew whatever the age (``refresh()``).
        background: A scheduled renewal: adopt only a *fresh* set, since a stale one would
            need renewing at once.
        is_client: A client token (``client_credentials``).
        can_use_password: The app supplies passwords (finAPI user tokens).
        refresh_failed: The refresh token was just refused; fall back to the password grant.
        dead_grant: Why the last redeem proved the stored grant dead (``None``: it did not).
        renew_not_before: The held set is a reissue that cannot be renewed earlier.
        lease_left: Seconds of store lease left (``None``: not held; ``0``: lost or run out).
        pending: A redeemed set waits to be written.
    """

    now: float
    stored: Stored | None
    known_version: int | None = None
    held: TokenSet | None = None
    rejected: str | None = None
    forced: bool = False
    background: bool = False
    is_client: bool = False
    can_use_password: bool = False
    refresh_failed: bool = False
    dead_grant: str | None = None
    renew_not_before: float = -math.inf
    lease_left: float | None = None
    pending: bool = False


@attrs.frozen(slots=True)
class Persist:
    """Write the redeemed set (compare-and-swap on the version it was redeemed from)."""


@attrs.frozen(slots=True)
class Adopt:
    """Take the stored set as this process's current set."""


@attrs.frozen(slots=True)
class Reinstate:
    """Write the held set over the older one the store holds (compare-and-swap on its
    version)."""


@attrs.frozen(slots=True)
class Poison:
    """No grant can renew the set: delete the dead one (at its version) and fail."""

    reason: str


@attrs.frozen(slots=True)
class WaitUntil:
    """Sleep until monotonic ``at``, then decide again."""

    at: float


@attrs.frozen(slots=True)
class TakeLease:
    """Acquire the store's lease for the key, then read the store again."""


@attrs.frozen(slots=True)
class ExtendLease:
    """Ask the store to push out a lease that ran out or is known lost (by owner: the store
    refuses anyone else)."""


@attrs.frozen(slots=True)
class Redeem:
    """Send one token request with ``grant``, fenced once an endpoint slot is held."""

    grant: Renewal


Step: TypeAlias = (
    Persist | Adopt | Reinstate | Poison | WaitUntil | TakeLease | ExtendLease | Redeem
)


def lineage(token_set: TokenSet) -> str:
    """The session a set belongs to: the lineage it records or, for a session's first set (or
    one stored before lineages were recorded), a fingerprint of its own refresh token (else
    access token)."""
    if token_set.lineage is not None:
        return token_set.lineage
    return (token_set.refresh_token or token_set.access_token).fingerprint()


def begun(token_set: TokenSet) -> TokenSet:
    """A session's first set (a login), with its lineage recorded: a fingerprint of its access
    token, new with every login even where the provider hands out the same refresh token."""
    if token_set.lineage is not None:
        return token_set  # it was stored before (a migration, a copy): keep its place
    return attrs.evolve(token_set, lineage=token_set.access_token.fingerprint(), generation=0)


def descended(fresh: TokenSet, previous: TokenSet | None) -> TokenSet:
    """``fresh``, renewed from ``previous``: the same session, one renewal further."""
    if previous is None:
        return begun(fresh)
    return attrs.evolve(fresh, lineage=lineage(previous), generation=previous.generation + 1)


def superseded(stored: TokenSet, held: TokenSet | None) -> bool:
    """Whether ``stored`` is an older set of the session ``held`` belongs to: renewals only
    ever go forward in a session, so only a store rolled back holds one. Its refresh token
    was spent to get ``held``: presenting it again is a replay, which ends the session."""
    return (
        held is not None
        and stored.generation < held.generation
        and lineage(stored) == lineage(held)
    )


def adoptable(situation: Situation) -> bool:
    """Whether the stored set can replace what this process holds without a request."""
    stored = situation.stored
    if stored is None or stored.version == situation.known_version:
        return False
    if superseded(stored.token_set, situation.held):
        return False
    if situation.rejected is not None and stored.token_set.access_token.reveal() == (
        situation.rejected
    ):
        return False
    action = decide(stored.deadlines, situation.now)
    if situation.background:
        return action is Action.USE
    return action is not Action.REFRESH_THEN_USE


def next_step(situation: Situation) -> Step:  # noqa: PLR0911  (one return per step kind)
    """Decide the one thing a renewal does next. Pure: same situation, same step."""
    if situation.pending:
        return Persist()
    stored = situation.stored
    if situation.dead_grant is not None:
        return Poison(situation.dead_grant)
    if stored is not None and superseded(stored.token_set, situation.held):
        return Reinstate()
    if adoptable(situation):
        return Adopt()
    grant = choose_renewal(
        None if stored is None else stored.token_set,
        None if stored is None else stored.deadlines,
        now=situation.now - (0.0 if stored is None else stored.slack),  # at its youngest
        is_client=situation.is_client,
        can_use_password=situation.can_use_password,
        refresh_failed=situation.refresh_failed,
    )
    if grant is Renewal.REAUTHORIZE:
        if stored is not None and situation.lease_left is None:
            # Run out here; another process may be renewing it (its answer still on its way):
            # only under the lease, once that renewal ended, is the store's word final.
            return TakeLease()
        return Poison("no_token_set" if stored is None else "refresh_token_unavailable")
    if (
        situation.rejected is None
        and not situation.forced
        and situation.renew_not_before > situation.now
    ):
        return WaitUntil(situation.renew_not_before)
    if situation.lease_left is None:
        return TakeLease()
    if situation.lease_left <= 0:
        return ExtendLease()
    return Redeem(grant)
