"""Pure decisions about a token set's life: when it is stale, when it must be renewed, how.

Callers pass ``now`` (monotonic seconds) in. Freshness comes from :class:`Deadlines`
(:func:`plan`); what the manager is doing with the set is :class:`Status`, whose transitions
are the table :data:`TRANSITIONS`. See docs/architecture.md.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Final

from ._record import Record
from .errors import ConfigurationError, UsageError
from .tokens import TokenSet

if TYPE_CHECKING:
    from .retry import Backoff

__all__ = [
    "TRANSITIONS",
    "Action",
    "Deadlines",
    "Event",
    "InvalidTransition",
    "RefreshPolicy",
    "Renewal",
    "RetryPolicy",
    "Status",
    "TokenState",
    "choose_renewal",
    "decide",
    "plan",
    "retry_due",
    "scheduled_at",
    "token_state",
    "transition",
]

_INF: Final = math.inf


class RefreshPolicy(Record):
    """When to renew. All values are seconds.

    The lead before expiry is ``clamp(lifetime * lead_fraction, min_lead, max_lead)`` but never
    more than half the lifetime. Inside ``expiry_margin`` of expiry (capped at 10 % of the
    lifetime) a token counts as expired: by the time a request carrying it reaches the
    server, it may be.

    Args:
        lead_fraction: Share of the lifetime to renew ahead of expiry.
        min_lead: Floor of the lead.
        max_lead: Cap of the lead.
        expiry_margin: Safety margin for transit time and server clock skew.
        refresh_token_lead: How long before the refresh token dies a renewal is due even if
            the access token is fresh (keeps an idle Keycloak session alive; the scheduler
            uses it).
        min_interval: The shortest time between two background renewals of one token set. A
            set that is stale the moment it arrives (``expires_in: 0`` from a server other
            than finAPI, or a lifetime shorter than the lead) is renewed in the background at
            most once per ``min_interval``; callers who need a token meanwhile renew on
            demand.
    """

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "lead_fraction",
        "min_lead",
        "max_lead",
        "expiry_margin",
        "refresh_token_lead",
        "min_interval",
    )
    lead_fraction: float
    min_lead: float
    max_lead: float
    expiry_margin: float
    refresh_token_lead: float
    min_interval: float

    def __init__(  # noqa: PLR0917  (positional, as the fields' order)
        self,
        lead_fraction: float = 0.2,
        min_lead: float = 2.0,
        max_lead: float = 300.0,
        expiry_margin: float = 1.0,
        refresh_token_lead: float = 60.0,
        min_interval: float = 1.0,
    ) -> None:
        values = (lead_fraction, min_lead, max_lead, expiry_margin)
        if not all(math.isfinite(value) for value in (*values, refresh_token_lead, min_interval)):
            raise ConfigurationError("refresh policy values (min_lead, max_lead...) must be finite")
        if not 0 <= lead_fraction < 1:
            raise ConfigurationError("lead_fraction must be in [0, 1)")
        if min_lead < 0 or max_lead < min_lead:
            raise ConfigurationError("min_lead must be >= 0 and max_lead >= min_lead")
        if expiry_margin < 0 or refresh_token_lead < 0:
            raise ConfigurationError("expiry_margin and refresh_token_lead must be >= 0")
        if min_interval <= 0:
            raise ConfigurationError("min_interval must be > 0")
        object.__setattr__(self, "lead_fraction", lead_fraction)
        object.__setattr__(self, "min_lead", min_lead)
        object.__setattr__(self, "max_lead", max_lead)
        object.__setattr__(self, "expiry_margin", expiry_margin)
        object.__setattr__(self, "refresh_token_lead", refresh_token_lead)
        object.__setattr__(self, "min_interval", min_interval)

    def lead(self, lifetime: float) -> float:
        """Seconds before expiry at which a token of ``lifetime`` seconds turns stale."""
        lead = min(max(lifetime * self.lead_fraction, self.min_lead), self.max_lead)
        return min(lead, lifetime / 2)

    def margin(self, lifetime: float) -> float:
        """Seconds before expiry at which a token of ``lifetime`` seconds counts as expired."""
        return min(self.expiry_margin, lifetime * 0.1)


class Deadlines(Record):
    """A token set's deadlines on the monotonic clock (``inf`` = never)."""

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "stale_at",
        "must_refresh_at",
        "expires_at",
        "refresh_token_due_at",
        "refresh_token_dead_at",
        "renew_not_before",
    )
    stale_at: float
    must_refresh_at: float
    expires_at: float
    refresh_token_due_at: float
    refresh_token_dead_at: float
    renew_not_before: float

    def __init__(
        self,
        stale_at: float,
        must_refresh_at: float,
        *,
        expires_at: float = _INF,
        refresh_token_due_at: float = _INF,
        refresh_token_dead_at: float = _INF,
        renew_not_before: float = -_INF,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "stale_at", stale_at)
        setattr_(self, "must_refresh_at", must_refresh_at)
        setattr_(self, "expires_at", expires_at)
        setattr_(self, "refresh_token_due_at", refresh_token_due_at)
        setattr_(self, "refresh_token_dead_at", refresh_token_dead_at)
        setattr_(self, "renew_not_before", renew_not_before)


def plan(token_set: TokenSet, policy: RefreshPolicy, *, reissued: bool = False) -> Deadlines:
    """Compute the deadlines of ``token_set``.

    Args:
        token_set: The token set; its :class:`~aiofinaccess.core.tokens.Anchor` places it on the
            monotonic clock. Sets are anchored where they enter the process (the token
            response at its send time, a stored set at the moment it is read), so the age of a
            set another process stored long ago is never mistaken for "issued now".
        policy: The refresh policy.
        reissued: The provider returned the token we already held (finAPI client tokens).

    Raises:
        UsageError: ``token_set`` carries no anchor.
    """
    if token_set.anchor is None:
        raise UsageError("an unanchored token set cannot be planned: anchor it where it is loaded")
    expires = token_set.expires_at_monotonic()
    refresh_dead = token_set.refresh_expires_at_monotonic()
    refresh_dead = _INF if refresh_dead is None else refresh_dead
    refresh_due = _INF
    if refresh_dead != _INF:
        # Like the access token's lead: never more than a quarter of the refresh lifetime.
        refresh_lifetime = max(0.0, (token_set.refresh_expires_at or 0.0) - token_set.issued_at)
        refresh_due = refresh_dead - min(policy.refresh_token_lead, refresh_lifetime / 4)
    if expires is None:
        return Deadlines(
            stale_at=_INF,
            must_refresh_at=_INF,
            refresh_token_due_at=refresh_due,
            refresh_token_dead_at=refresh_dead,
        )
    lifetime = token_set.lifetime or 0.0
    must = expires - policy.margin(lifetime)
    if reissued:
        return Deadlines(
            stale_at=must,
            must_refresh_at=must,
            expires_at=expires,
            refresh_token_due_at=refresh_due,
            refresh_token_dead_at=refresh_dead,
            renew_not_before=expires,
        )
    return Deadlines(
        stale_at=min(expires - policy.lead(lifetime), must),
        must_refresh_at=must,
        expires_at=expires,
        refresh_token_due_at=refresh_due,
        refresh_token_dead_at=refresh_dead,
    )


def scheduled_at(
    deadlines: Deadlines,
    *,
    now: float,
    jitter: float,
    keep_alive: bool,
    idle: bool,
) -> float | None:
    """When the scheduler should renew a token set, or ``None`` for "not at all".

    Args:
        deadlines: The set's deadlines.
        now: Current monotonic time.
        jitter: A draw from ``[0, 1)``: the renewal moves that share of the lead earlier, so a
            cohort issued together does not renew in lock-step.
        keep_alive: Renew before the refresh token dies even when the access token is fresh
            (keeps an idle Keycloak session alive).
        idle: The set has not been used for a while: leave the access token to on-demand
            renewal (only ``keep_alive`` still schedules it).
    """
    due = _INF
    if not idle and deadlines.stale_at != _INF:
        lead = max(0.0, deadlines.expires_at - deadlines.stale_at)
        due = max(deadlines.renew_not_before, deadlines.stale_at - jitter * lead)
    if keep_alive:
        due = min(due, deadlines.refresh_token_due_at)
    if due == _INF:
        return None
    return max(due, now)


def retry_due(now: float, claim_ends: float, refresh_dead_at: float | None) -> float:
    """When the refresh duty tries a set again after a renewal that failed for a passing
    reason (a store or network error): when its claim runs out, or sooner if its refresh
    token dies first, halfway there (a few more attempts fit; a claim must not outlive the
    grant). All instants on one wall clock."""
    if refresh_dead_at is None or refresh_dead_at >= claim_ends:
        return claim_ends
    return now + max(0.0, refresh_dead_at - now) / 2


class RetryPolicy(Record):
    """Retries inside one renewal, and backoff between failed renewals. Seconds throughout.

    Inside a renewal, a request that surely never reached the server (connect error) and a
    429/503 are retried up to ``attempts`` times, waiting a full-jitter exponential backoff
    (``uniform(0, min(max_wait, initial * 2**n))``) or the server's ``Retry-After`` when it is
    at most ``max_retry_after``. An ambiguous failure of a rotating refresh (sent, no answer)
    is retried at most once, and only after the store was re-read.

    Between failed renewals of one token set the scheduler waits
    ``uniform(0, min(backoff_max, backoff_initial * 2**failures))``, or ``Retry-After``.
    """

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "attempts",
        "initial",
        "max_wait",
        "max_retry_after",
        "backoff_initial",
        "backoff_max",
    )
    attempts: int
    initial: float
    max_wait: float
    max_retry_after: float
    backoff_initial: float
    backoff_max: float

    def __init__(  # noqa: PLR0917  (positional, as the fields' order)
        self,
        attempts: int = 3,
        initial: float = 0.1,
        max_wait: float = 2.0,
        max_retry_after: float = 5.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        if attempts < 1:
            raise ConfigurationError("attempts must be >= 1")
        waits = (initial, max_wait, max_retry_after, backoff_initial)
        if not all(math.isfinite(value) for value in (*waits, backoff_max)):
            raise ConfigurationError("retry waits (initial, max_wait...) must be finite")
        if min(initial, max_wait, max_retry_after, backoff_initial) < 0:
            raise ConfigurationError("retry waits must be >= 0")
        if backoff_max < backoff_initial:
            raise ConfigurationError("backoff_max must be >= backoff_initial")
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "max_wait", max_wait)
        object.__setattr__(self, "max_retry_after", max_retry_after)
        object.__setattr__(self, "backoff_initial", backoff_initial)
        object.__setattr__(self, "backoff_max", backoff_max)

    @property
    def request_backoff(self) -> Backoff:
        """The backoff between tries of one request (inside a renewal, in the API pipeline)."""
        from .retry import Backoff  # noqa: PLC0415  (not on a first token's path)

        return Backoff(self.initial, self.max_wait, self.max_retry_after)

    def backoff(self, failures: int, draw: float, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failed renewals (``draw`` in [0, 1)).

        ``Retry-After`` is a floor here, not a replacement: a renewal rescheduled after the
        server's wait still spreads over the jitter window."""
        from .retry import Backoff  # noqa: PLC0415  (not on a first token's path)

        wait = draw * Backoff(self.backoff_initial, self.backoff_max).window(failures)
        return max(wait, retry_after) if retry_after is not None else wait


class TokenState(enum.Enum):
    """What a token set looks like from outside: freshness merged with the manager's status."""

    FRESH = "fresh"
    STALE = "stale"
    EXPIRED = "expired"
    REFRESHING = "refreshing"
    BACKOFF = "backoff"
    REAUTH_REQUIRED = "reauth_required"
    REVOKED = "revoked"


class Action(enum.Enum):
    """What the manager should do for a caller who wants a bearer token."""

    USE = "use"
    USE_AND_REFRESH = "use_and_refresh"
    REFRESH_THEN_USE = "refresh_then_use"


def decide(deadlines: Deadlines, now: float) -> Action:
    """Decide how to serve a caller at monotonic time ``now``."""
    if now < deadlines.stale_at:
        return Action.USE
    if now < deadlines.must_refresh_at:
        return Action.USE_AND_REFRESH
    return Action.REFRESH_THEN_USE


class Renewal(enum.Enum):
    """Which grant renews a token set."""

    REFRESH_TOKEN = "refresh_token"
    CLIENT_CREDENTIALS = "client_credentials"
    PASSWORD = "password"
    REAUTHORIZE = "reauthorize"


def choose_renewal(
    token_set: TokenSet | None,
    deadlines: Deadlines | None,
    *,
    now: float,
    is_client: bool,
    can_use_password: bool,
    refresh_failed: bool = False,
) -> Renewal:
    """Pick the grant that renews a token set (the same path as first acquisition).

    Client tokens renew with ``client_credentials``. A user token renews with its refresh
    token while that is alive; otherwise (or after ``refresh_failed``) with the password
    grant if the app supplied a credentials callback; otherwise the user must re-authorize.
    """
    if is_client:
        return Renewal.CLIENT_CREDENTIALS
    refresh_alive = (
        token_set is not None
        and token_set.refresh_token is not None
        and (deadlines is None or now < deadlines.refresh_token_dead_at)
    )
    if refresh_alive and not refresh_failed:
        return Renewal.REFRESH_TOKEN
    if can_use_password:
        return Renewal.PASSWORD
    return Renewal.REAUTHORIZE


class Status(enum.Enum):
    """The manager's bookkeeping for one token set."""

    ACTIVE = "active"
    REFRESHING = "refreshing"
    BACKOFF = "backoff"
    REAUTH_REQUIRED = "reauth_required"
    REVOKED = "revoked"


class Event(enum.Enum):
    """Things that happen to a token set."""

    REFRESH_STARTED = "refresh_started"
    REFRESH_SUCCEEDED = "refresh_succeeded"
    REFRESH_FAILED = "refresh_failed"
    GRANT_DEAD = "grant_dead"
    REVOKED = "revoked"
    TOKENS_STORED = "tokens_stored"


class InvalidTransition(UsageError):
    """An event arrived that the current status does not allow."""


TRANSITIONS: Final[dict[tuple[Status, Event], Status]] = {
    (Status.ACTIVE, Event.REFRESH_STARTED): Status.REFRESHING,
    (Status.ACTIVE, Event.GRANT_DEAD): Status.REAUTH_REQUIRED,
    (Status.ACTIVE, Event.REVOKED): Status.REVOKED,
    (Status.ACTIVE, Event.TOKENS_STORED): Status.ACTIVE,
    (Status.REFRESHING, Event.REFRESH_SUCCEEDED): Status.ACTIVE,
    (Status.REFRESHING, Event.REFRESH_FAILED): Status.BACKOFF,
    (Status.REFRESHING, Event.GRANT_DEAD): Status.REAUTH_REQUIRED,
    (Status.REFRESHING, Event.REVOKED): Status.REVOKED,
    (Status.REFRESHING, Event.TOKENS_STORED): Status.ACTIVE,
    (Status.BACKOFF, Event.REFRESH_STARTED): Status.REFRESHING,
    (Status.BACKOFF, Event.GRANT_DEAD): Status.REAUTH_REQUIRED,
    (Status.BACKOFF, Event.REVOKED): Status.REVOKED,
    (Status.BACKOFF, Event.TOKENS_STORED): Status.ACTIVE,
    (Status.REAUTH_REQUIRED, Event.REVOKED): Status.REVOKED,
    (Status.REAUTH_REQUIRED, Event.TOKENS_STORED): Status.ACTIVE,
    (Status.REVOKED, Event.TOKENS_STORED): Status.ACTIVE,
}


def transition(status: Status, event: Event) -> Status:
    """Apply ``event`` to ``status`` using :data:`TRANSITIONS`.

    Raises:
        InvalidTransition: The table has no entry for the pair.
    """
    try:
        return TRANSITIONS[status, event]
    except KeyError:
        raise InvalidTransition(f"{event.value} is not allowed while {status.value}") from None


def token_state(status: Status, deadlines: Deadlines | None, now: float) -> TokenState:
    """Merge the manager's status with freshness at ``now`` into one observable state."""
    if status is not Status.ACTIVE:
        return TokenState(status.value)
    if deadlines is None or now >= deadlines.must_refresh_at:
        return TokenState.EXPIRED
    if now >= deadlines.stale_at:
        return TokenState.STALE
    return TokenState.FRESH
