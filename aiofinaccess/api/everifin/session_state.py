"""How an Everifin connection stands: its login's end, from the token set; pure, clock injected.

Everifin's connection is the Keycloak login itself: it ends when the refresh token does
(``refresh_expires_in``; each refresh moves it while the login is used) and at the latest at
the login's start plus the realm's SSO Session Max (:attr:`Provider.session_max
<aiofinaccess.oauth.providers.Provider.session_max>`, when known), after which the user logs in
again (Everifin's guide: "in case the connection ... only needs to be renewed after the token
has expired"). :func:`session_state` reads both at a given ``now`` and never reads the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import attrs

from ...core.connections import (
    DEFAULT_LEADS,
    ConnectionState,
    Observation,
    expiry_step,
    ordered_leads,
)
from ...core.errors import ValidationError
from ...core.tokens import TokenSet

__all__ = ["SessionStatus", "session_state"]


@attrs.frozen(slots=True)
class SessionStatus:
    """An Everifin login's state at one moment.

    Attributes:
        state: ``ACTIVE``, ``EXPIRING`` or ``EXPIRED``.
        ends_at: When the login ends (UTC); ``None`` when neither end is known.
        lead: For ``EXPIRING``: the smallest lead reached; ``None`` otherwise.
        next_deadline: The next moment time alone changes ``state`` or ``lead`` (UTC).
        ended_by: ``"refresh_token"`` or ``"session_max"``: which end comes first.
    """

    state: ConnectionState
    ends_at: dt.datetime | None = None
    lead: dt.timedelta | None = None
    next_deadline: dt.datetime | None = None
    ended_by: str | None = None

    def observation(self) -> Observation:
        """This status as the connection registry takes it."""
        ends = None if self.ends_at is None else self.ends_at.timestamp()
        blocked = ConnectionState.EXPIRED if self.state is ConnectionState.EXPIRED else None
        return Observation(expires_at=ends, blocked=blocked, detail=self.ended_by or "")


def session_state(
    token_set: TokenSet,
    now: dt.datetime,
    *,
    session_max: float | None = None,
    started_at: float | None = None,
    leads: Iterable[dt.timedelta] = DEFAULT_LEADS,
) -> SessionStatus:
    """The state of the login holding ``token_set`` at ``now`` (aware), and its next deadline.

    Args:
        token_set: The login's current set (its ``refresh_expires_at`` is one end).
        now: The moment to judge at (the caller's clock).
        session_max: The provider's :attr:`~aiofinaccess.oauth.providers.Provider.session_max`.
        started_at: When the user logged in (epoch seconds); with ``session_max``, the other end.
        leads: How long before the end it counts as ``EXPIRING``, each one a step.

    Raises:
        ValidationError: ``now`` is naive, or ``leads`` is empty or holds a duration <= 0.
    """
    if now.tzinfo is None:
        raise ValidationError("now must be an aware datetime")
    steps = ordered_leads(leads)
    ends: list[tuple[float, int, str]] = []
    # On a tie the session maximum is the cause: Keycloak caps the refresh token's end at it,
    # and a refresh cannot move it (the second field orders the tie).
    if session_max is not None and started_at is not None:
        ends.append((started_at + session_max, 0, "session_max"))
    if token_set.refresh_expires_at is not None:
        ends.append((token_set.refresh_expires_at, 1, "refresh_token"))
    if not ends:
        return SessionStatus(ConnectionState.ACTIVE)
    end, _, ended_by = min(ends)
    state, lead, deadline = expiry_step(end, now.timestamp(), steps)
    return SessionStatus(
        state,
        dt.datetime.fromtimestamp(end, dt.UTC),
        lead=None if lead is None else dt.timedelta(seconds=lead),
        next_deadline=None
        if state is ConnectionState.EXPIRED
        else dt.datetime.fromtimestamp(deadline, dt.UTC),
        ended_by=ended_by,
    )
