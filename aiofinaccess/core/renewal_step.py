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

from ._record import Record
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
    "spent",
    "superseded",
    "worth_writing_until",
]


class Stored(Record):
    """What the store holds for the key: an anchored set, its version and its deadlines.

    ``slack``: seconds the set may be younger than anchored: the time between asking the store
    and its answer, and the write's transit the store counted (``Versioned.transit``, which may
    be the writer's clock behind the store's). The set is anchored at its oldest (safe for
    handing out its access token); its refresh token is judged run out only if it is even at
    its youngest.
    """

    __slots__ = ("token_set", "version", "deadlines", "slack")  # noqa: RUF023  (shown in order)
    token_set: TokenSet
    version: int
    deadlines: Deadlines
    slack: float

    def __init__(
        self, token_set: TokenSet, version: int, deadlines: Deadlines, slack: float = 0.0
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "token_set", token_set)
        setattr_(self, "version", version)
        setattr_(self, "deadlines", deadlines)
        setattr_(self, "slack", slack)


class Situation(Record):
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

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "now",
        "stored",
        "known_version",
        "held",
        "rejected",
        "forced",
        "background",
        "is_client",
        "can_use_password",
        "refresh_failed",
        "dead_grant",
        "renew_not_before",
        "lease_left",
        "pending",
        "write_failed",
        "write_failures",
        "write_attempts",
        "callers_waiting",
        "pending_until",
        "written",
        "late_answers",
    )
    now: float
    stored: Stored | None
    known_version: int | None
    held: TokenSet | None
    rejected: str | None
    forced: bool
    background: bool
    is_client: bool
    can_use_password: bool
    refresh_failed: bool
    dead_grant: str | None
    renew_not_before: float
    lease_left: float | None
    pending: bool
    write_failed: bool
    write_failures: int
    write_attempts: int
    callers_waiting: bool
    pending_until: float
    written: bool
    late_answers: int

    # An input, built for each step and never compared: equal only to itself.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(
        self,
        now: float,
        stored: Stored | None,
        *,
        known_version: int | None = None,
        held: TokenSet | None = None,
        rejected: str | None = None,
        forced: bool = False,
        background: bool = False,
        is_client: bool = False,
        can_use_password: bool = False,
        refresh_failed: bool = False,
        dead_grant: str | None = None,
        renew_not_before: float = -math.inf,
        lease_left: float | None = None,
        pending: bool = False,
        write_failed: bool = False,
        write_failures: int = 0,
        write_attempts: int = 1,
        callers_waiting: bool = False,
        pending_until: float = math.inf,
        written: bool = False,
        late_answers: int = 0,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "now", now)
        setattr_(self, "stored", stored)
        setattr_(self, "known_version", known_version)
        setattr_(self, "held", held)
        setattr_(self, "rejected", rejected)
        setattr_(self, "forced", forced)
        setattr_(self, "background", background)
        setattr_(self, "is_client", is_client)
        setattr_(self, "can_use_password", can_use_password)
        setattr_(self, "refresh_failed", refresh_failed)
        setattr_(self, "dead_grant", dead_grant)
        setattr_(self, "renew_not_before", renew_not_before)
        setattr_(self, "lease_left", lease_left)
        setattr_(self, "pending", pending)
        setattr_(self, "write_failed", write_failed)
        setattr_(self, "write_failures", write_failures)
        setattr_(self, "write_attempts", write_attempts)
        setattr_(self, "callers_waiting", callers_waiting)
        setattr_(self, "pending_until", pending_until)
        setattr_(self, "written", written)
        setattr_(self, "late_answers", late_answers)


class Persist(Record):
    """Write the redeemed set (compare-and-swap on the version it was redeemed from)."""

    __slots__ = ()


class WriteFailed(Record):
    """Writing the redeemed set failed. ``fail_callers``: they have waited long enough (the job
    goes on trying; they never get a token the store has not accepted). ``give_up``: the set
    is no longer worth writing: abandon it and fail; else back off and write again."""

    __slots__ = ("fail_callers", "give_up")
    fail_callers: bool
    give_up: bool

    def __init__(self, fail_callers: bool, give_up: bool) -> None:
        object.__setattr__(self, "fail_callers", fail_callers)
        object.__setattr__(self, "give_up", give_up)


class Deliver(Record):
    """The redeemed set is stored and published: hand it to the callers."""

    __slots__ = ()


class Late(Record):
    """The answer came after the new token's own expiry: never hand it out. ``again``: one more
    round (the lease is still held); else the renewal fails."""

    __slots__ = ("again",)
    again: bool

    def __init__(self, again: bool) -> None:
        object.__setattr__(self, "again", again)


class Adopt(Record):
    """Take the stored set as this process's current set."""

    __slots__ = ()


class Reinstate(Record):
    """Write the held set over the older one the store holds (compare-and-swap on its
    version)."""

    __slots__ = ()


class Poison(Record):
    """No grant can renew the set: delete the dead one (at its version) and fail."""

    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)


class WaitUntil(Record):
    """Sleep until monotonic ``at``, then decide again."""

    __slots__ = ("at",)
    at: float

    def __init__(self, at: float) -> None:
        object.__setattr__(self, "at", at)


class TakeLease(Record):
    """Acquire the store's lease for the key, then read the store again."""

    __slots__ = ()


class ExtendLease(Record):
    """Ask the store to push out a lease that ran out or is known lost (by owner: the store
    refuses anyone else)."""

    __slots__ = ()


class Redeem(Record):
    """Send one token request with ``grant``, fenced once an endpoint slot is held."""

    __slots__ = ("grant",)
    grant: Renewal

    def __init__(self, grant: Renewal) -> None:
        object.__setattr__(self, "grant", grant)


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


def ended_by(stored: TokenSet, ended: TokenSet) -> bool:
    """Whether ending the session of ``ended`` (a logout, a revocation) ends ``stored``: its
    renewals do; a login since, stored by any process, is a session of its own."""
    return lineage(stored) == lineage(ended)


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


def spent(token_set: TokenSet, deadlines: Deadlines, now: float) -> bool:
    """Whether a renewed set is no longer to be handed out at ``now`` (a token *issued*
    expired, ``expires_in: 0`` from a server other than finAPI, is: nothing better is to be
    had)."""
    issued_expired = (token_set.lifetime or 0.0) <= 0
    return not issued_expired and decide(deadlines, now) is Action.REFRESH_THEN_USE


def _after_write(situation: Situation) -> Deliver | Late:
    """An answer so late that the new token is already spent is never handed out."""
    stored = situation.stored
    assert stored is not None  # noqa: S101  (written: the store holds the redeemed set)
    if spent(stored.token_set, stored.deadlines, situation.now):
        return Late(again=situation.late_answers == 0)
    return Deliver()
