"""An entry: this process's view of one token set.

It holds the set it serves, the store version that set came from, the manager's status for
it, and the renewal in flight; its deadlines are computed when asked (it keeps the two the
fresh path reads). Every way an entry is emptied (forgotten, revoked, deleted elsewhere, grant
dead) goes through :meth:`Entry.clear`.

This module does no I/O.
"""

from __future__ import annotations

import asyncio

from ..core._record import slots_repr
from ..core.errors import ReauthorizationRequired
from ..core.lifecycle import Deadlines, RefreshPolicy, Status, plan
from ..core.tokens import TokenKey, TokenSet

__all__ = ["Entry"]

_NEG_INF = float("-inf")
_INF = float("inf")


class Entry:
    """One token set as this process knows it."""

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "key",
        "policy",
        "status",
        "token_set",
        "version",
        "reissued",
        "token",
        "stale_at",
        "usable_until",
        "last_used",
        "stamped",
        "renewed_at",
        "generation",
        "failures",
        "job",
        "outcome",
        "in_window",
        "rearm",
        "reauth",
        "dead_version",
        "ran_out_version",
        "reauth_repeated",
        "vanished",
        "retry_at",
    )

    key: TokenKey
    #: The manager's, shared: what :attr:`deadlines` are planned by.
    policy: RefreshPolicy
    status: Status
    token_set: TokenSet | None
    version: int | None
    #: The provider handed back the token already held (see :func:`plan`).
    reissued: bool
    # The revealed access token and its stale deadline, copied out for the fast path.
    token: str | None
    stale_at: float
    #: Until then the token may still be handed out (``must_refresh_at``).
    usable_until: float
    last_used: float
    #: The last use written to the store's stamp (``inf``: an entry the duty made, whose
    #: renewal is no use).
    stamped: float
    #: When this process last published a set it redeemed itself (not restored or adopted).
    renewed_at: float
    generation: int
    failures: int
    #: The renewal job (single flight), and what its callers await.
    job: asyncio.Task[None] | None
    outcome: asyncio.Future[TokenSet] | None
    #: A job has sent a token request whose result is not stored yet.
    in_window: bool
    #: The scheduler asked for a renewal while a job was finishing: schedule once it ends.
    rearm: bool
    reauth: ReauthorizationRequired | None
    #: The store version whose grant proved dead (never adopted again).
    dead_version: int | None
    #: The store version last reported as needing re-authorization because its refresh token
    #: ran out (its access token may still serve): reported once, not at every renewal.
    ran_out_version: int | None
    #: The failure being handed to callers repeats that report (no second event).
    reauth_repeated: bool
    #: The set this entry held was gone from the store at its renewal (deleted elsewhere): the
    #: entry stays, refused, so the loss is reported once here, not at every later call.
    vanished: bool
    # After a failed renewal, background renewals wait until then (blocking ones do not).
    retry_at: float

    def __init__(self, key: TokenKey, policy: RefreshPolicy) -> None:
        self.key = key
        self.policy = policy
        self.status = Status.ACTIVE
        self._empty()
        self.last_used = _NEG_INF
        self.stamped = _NEG_INF
        self.renewed_at = _NEG_INF
        self.generation = 0
        self.failures = 0
        self.job = None
        self.outcome = None
        self.in_window = False
        self.rearm = False
        self.reauth = None
        self.dead_version = None
        self.ran_out_version = None
        self.reauth_repeated = False
        self.vanished = False
        self.retry_at = _NEG_INF

    def __repr__(self) -> str:
        return slots_repr(self, ("policy", "token", "job", "outcome"))

    def clear(self) -> None:
        """Forget the token set (not the status): the one place an entry is emptied."""
        self._empty()
        self.generation += 1

    def _empty(self) -> None:
        self.token_set = None
        self.version = None
        self.reissued = False
        self.token = None
        self.stale_at = _NEG_INF
        self.usable_until = _NEG_INF

    @property
    def deadlines(self) -> Deadlines | None:
        """The held set's deadlines, or ``None`` when it holds none (computed: a held set keeps
        no deadlines object)."""
        token_set = self.token_set
        return None if token_set is None else plan(token_set, self.policy, reissued=self.reissued)

    @property
    def duty_made(self) -> bool:
        """Made by the refresh duty for one renewal (``stamped`` is ``inf``), not the app's."""
        return self.stamped == _INF

    @property
    def idle(self) -> bool:
        """Holds no token set and runs nothing: safe to drop."""
        return self.token_set is None and self.job is None
