"""The renewal decision as a pure step: what to do next for one token set, and nothing else.

:func:`next_step` takes a :class:`Situation` (plain data: what this process holds, what the
store holds, the clock, the lease left, a rejected token, a redeemed set waiting to be written)
and returns exactly one step; the driver (:mod:`aiofinaccess.session.renewal`) carries it out.

* :class:`Persist`, :class:`WriteFailed` - a redeemed set holds the only live refresh token:
  nothing else happens for the key until the store has it, or it is no longer worth writing.
* :class:`Deliver`, :class:`Late` - it is stored: hand it out, unless the answer came after
  the new token's own expiry.
* :class:`Adopt` - the store holds a usable set this process does not have: take it.
* :class:`Reinstate` - the store holds an older set of this process's session (it was rolled
  back): write the newer one back (:func:`superseded`: by lineage and renewals, never clocks).
* :class:`Poison` - no grant can renew the set: the user must authorize again.
* :class:`WaitUntil` - a reissued token (finAPI client tokens) cannot be renewed before it
  expires.
* :class:`TakeLease`, :class:`ExtendLease`, :class:`Redeem` - the fence: a refresh is sent
  only by the holder of the store's lease, with the whole exchange plus a margin left.

Nothing here reads a clock, sleeps or performs I/O.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import attrs

from ._repr import fields_repr
from .lifecycle import Action, Deadlines, Renewal, choose_renewal, decide
from .tokens import TokenSet

__all__ = [
    "Adopt",
    "Deliver",
    "ExtendLease",
    "Late",
    "Persist",
    "Poison",
    "Redeem",
    "Reinstate",
    "Situation",
    "Step",
    "Stored",
    "TakeLease",
    "WaitUntil",
    "WriteFailed",
    "adoptable",
    "begun",
    "descended",
    "lineage",
    "next_step",
    "superseded",
    "worth_writing_until",
]


@attrs.frozen(slots=True)
class Stored:
    """What the store holds for the key: an anchored set, its version and its deadlines.

    ``slack``: seconds the set may be younger than anchored: the time between asking the store
    and its answer, and the write's transit the store counted (``Versioned.transit``, which may
    be the writer's clock behind the store's). The set is anchored at its oldest (safe for
    handing out its access token); its refresh token is judged run out only if it is even at
    its youngest.
    """

    __repr__ = fields_repr

    token_set: TokenSet
    version: int
    deadlines: Deadlines
    slack: float = 0.0


# A situation and a step live for one decision: no slots (they save memory on what is kept,
# and cost a second class to build).
@attrs.frozen(slots=False, eq=False)  # an input: built for each step, never compared
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
        write_failed: Writing it just failed (``write_failures`` in a row so far).
        write_attempts: Failed writes after which callers get the error (the job goes on).
        callers_waiting: The job's callers have no answer yet.
        pending_until: When the redeemed set stops being worth writing (see
            :func:`worth_writing_until`).
        written: The redeemed set was just stored and published (``stored`` is it now).
        late_answers: Answers so far that came after their own token's expiry.
    """

    __repr__ = fields_repr

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
    write_failed: bool = False
    write_failures: int = 0
    write_attempts: int = 1
    callers_waiting: bool = False
    pending_until: float = math.inf
    written: bool = False
    late_answers: int = 0


@attrs.frozen(slots=False)
class Persist:
    """Write the redeemed set (compare-and-swap on the version it was redeemed from)."""

    __repr__ = fields_repr


@attrs.frozen(slots=False)
class WriteFailed:
    """Writing the redeemed set failed. ``fail_callers``: they have waited long enough (the job
    goes on trying; they never get a token the store has not accepted). ``give_up``: the set
    is no longer worth writing: abandon it and fail; else back off and write again."""

    __repr__ = fields_repr

    fail_callers: bool
    give_up: bool


@attrs.frozen(slots=False)
class Deliver:
    """The redeemed set is stored and published: hand it to the callers."""

    __repr__ = fields_repr


@attrs.frozen(slots=False)
class Late:
    """The answer came after the new token's own expiry: never hand it out. ``again``: one more
    round (the lease is still held); else the renewal fails."""

    __repr__ = fields_repr

    again: bool


@attrs.frozen(slots=False)
class Adopt:
    """Take the stored set as this process's current set."""

    __repr__ = fields_repr


@attrs.frozen(slots=False)
class Reinstate:
    """Write the held set over the older one the store holds (compare-and-swap on its
    version)."""

    __repr__ = fields_repr


@attrs.frozen(slots=False)
class Poison:
    """No grant can renew the set: delete the dead one (at its version) and fail."""

    __repr__ = fields_repr

    reason: str


@attrs.frozen(slots=False)
class WaitUntil:
    """Sleep until monotonic ``at``, then decide again."""

    __repr__ = fields_repr

    at: float


@attrs.frozen(slots=False)
class TakeLease:
    """Acquire the store's lease for the key, then read the store again."""

    __repr__ = fields_repr


@attrs.frozen(slots=False)
class ExtendLease:
    """Ask the store to push out a lease that ran out or is known lost (by owner: the store
    refuses anyone else)."""

    __repr__ = fields_repr


@attrs.frozen(slots=False)
class Redeem:
    """Send one token request with ``grant``, fenced once an endpoint slot is held."""

    __repr__ = fields_repr

    grant: Renewal


Step: TypeAlias = (
    Persist
    | WriteFailed
    | Deliver
    | Late
    | Adopt
    | Reinstate
    | Poison
    | WaitUntil
    | TakeLease
    | ExtendLease
    | Redeem
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


def worth_writing_until(token_set: TokenSet, deadlines: Deadlines) -> float:
    """When a redeemed set stops being worth writing: its refresh token dies (or, without one,
    its access token expires)."""
    if token_set.refresh_token is not None:
        return deadlines.refresh_token_dead_at
    return deadlines.expires_at


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
    if situation.written:
        return _after_write(situation)
    if situation.pending:
        if situation.write_failed:
            return WriteFailed(
                fail_callers=situation.callers_waiting
                and situation.write_failures >= situation.write_attempts,
                give_up=situation.now >= situation.pending_until,
            )
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


def _after_write(situation: Situation) -> Deliver | Late:
    """An answer so late that the new token is already spent is never handed out (a token
    *issued* expired, ``expires_in: 0`` from a server other than finAPI, is: there is nothing
    better to get)."""
    stored = situation.stored
    assert stored is not None  # noqa: S101  (written: the store holds the redeemed set)
    if (stored.token_set.lifetime or 0.0) > 0 and decide(
        stored.deadlines, situation.now
    ) is Action.REFRESH_THEN_USE:
        return Late(again=situation.late_answers == 0)
    return Deliver()
