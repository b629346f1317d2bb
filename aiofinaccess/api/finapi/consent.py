"""How a finAPI bank connection stands, derived from what finAPI reports; pure, clock injected.

:func:`connection_state` reads a :class:`~aiofinaccess.finapi.BankConnection`'s interfaces at a
given ``now`` (it never reads the clock) and returns its :class:`ConnectionState` and when that
next changes by time alone:

* ``EXPIRED``: an interface's consent has ended (``expires_at`` passed) or finAPI holds none
  (``NOT_PRESENT``): the user must give the bank a new one through a web form;
* ``ACTION_REQUIRED``: finAPI stopped automatic updates of an interface until the user updates
  it (``userActionRequired``);
* ``EXPIRING``: the earliest consent ends within the largest lead (14 days by default);
* ``ACTIVE``: none of these.

The worst interface decides, in that order: finAPI updates every interface of a connection, so
one dead interface makes an update need the user.
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
from .models import BankConnection

__all__ = ["ConnectionStatus", "connection_state"]


@attrs.frozen(slots=True)
class ConnectionStatus:
    """A connection's state at one moment.

    Attributes:
        state: How it stands.
        expires_at: When its earliest consent ends (UTC); ``None`` if no interface reports one.
        lead: For ``EXPIRING``: the smallest lead already reached (of 14, 7 and 1 days, 7 days
            once the end is 7 days away or less); ``None`` otherwise.
        next_deadline: The next moment time alone changes ``state`` or ``lead`` (the next lead
            reached, or the consent's end; UTC); ``None`` when only an update can change it.
        interface: The interface that decided (``XS2A``...); ``None`` for ``ACTIVE``.
    """

    state: ConnectionState
    expires_at: dt.datetime | None = None
    lead: dt.timedelta | None = None
    next_deadline: dt.datetime | None = None
    interface: str | None = None

    def observation(self) -> Observation:
        """This status as the connection registry takes it."""
        ends = None if self.expires_at is None else self.expires_at.timestamp()
        needs = self.state if self.state.needs_action else None
        return Observation(expires_at=ends, blocked=needs, detail=self.interface or "")


def connection_state(
    connection: BankConnection,
    now: dt.datetime,
    leads: Iterable[dt.timedelta] = DEFAULT_LEADS,
) -> ConnectionStatus:
    """The state of ``connection`` at ``now`` (aware) and its next deadline.

    Args:
        connection: As finAPI last reported it.
        now: The moment to judge at (the caller's clock).
        leads: How long before a consent's end it counts as ``EXPIRING``, each one a step.

    Raises:
        ValidationError: ``now`` is naive, or ``leads`` is empty or holds a duration <= 0.
    """
    if now.tzinfo is None:
        raise ValidationError("now must be an aware datetime")
    steps = ordered_leads(leads)
    consents = [(i.interface, i.ais_consent) for i in connection.interfaces if i.ais_consent]
    # In UTC: arithmetic on a zone's wall clock (v1's Europe/Berlin) is an hour off across DST.
    ends = [(c.expires_at.astimezone(dt.UTC), name) for name, c in consents if c.expires_at]
    expires_at, first = min(ends) if ends else (None, None)
    for name, consent in consents:
        if consent.status == "NOT_PRESENT":
            return ConnectionStatus(ConnectionState.EXPIRED, expires_at, interface=name)
    for interface in connection.interfaces:
        if interface.user_action_required and (expires_at is None or now < expires_at):
            return ConnectionStatus(
                ConnectionState.ACTION_REQUIRED,
                expires_at,
                next_deadline=expires_at,
                interface=interface.interface,
            )
    if expires_at is None:
        return ConnectionStatus(ConnectionState.ACTIVE)
    state, lead, deadline = expiry_step(expires_at.timestamp(), now.timestamp(), steps)
    return ConnectionStatus(
        state,
        expires_at,
        lead=None if lead is None else dt.timedelta(seconds=lead),
        next_deadline=None
        if state is ConnectionState.EXPIRED
        else dt.datetime.fromtimestamp(deadline, dt.UTC),
        interface=None if state is ConnectionState.ACTIVE else first,
    )
