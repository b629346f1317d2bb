"""The connection registry's events and listing rows: what an app receives and reads.

Each event carries ``event_id``: the same for every delivery of one notice (a notice is
claimed once per fleet, delivered at least once), so an app that acts on each event once keeps
the ids it has seen. ``subject`` is the app's user id: left out of the ``repr``.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeAlias

import attrs

from ..core._repr import fields_repr
from ..core.connections import ConnectionRecord, ConnectionState, Notice, NoticeKind

__all__ = [
    "ConnectionEvent",
    "ConnectionExpiring",
    "ConnectionInfo",
    "ConnectionRepaired",
    "ReconnectRequired",
    "event_of",
]


def _instant(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


@attrs.frozen(slots=True)
class ConnectionExpiring:
    """A connection's consent or login ends within ``lead``: ask the user to renew it.

    Attributes:
        event_id: Deduplicate deliveries by it.
        provider, subject, connection: The connection (``connection`` is ``""`` for Everifin,
            whose login is the connection).
        expires_at: When it ends (UTC).
        lead: The lead reached (14, 7 or 1 days by default).
    """

    __repr__ = fields_repr

    event_id: str = attrs.field(repr=False)
    provider: str
    subject: str = attrs.field(repr=False)
    connection: str
    expires_at: dt.datetime | None
    lead: dt.timedelta


@attrs.frozen(slots=True)
class ReconnectRequired:
    """Only the user can bring the connection back (consent ended or revoked, the provider
    wants the user, the grant died): send them through the connect flow again.

    Attributes:
        event_id: Deduplicate deliveries by it.
        provider, subject, connection: The connection.
        state: ``ACTION_REQUIRED``, ``EXPIRED`` or ``REVOKED``.
        episode: How many times this connection has broken, this time included.
        detail: What the observer said (a reason, an interface, a web form's link).
    """

    __repr__ = fields_repr

    event_id: str = attrs.field(repr=False)
    provider: str
    subject: str = attrs.field(repr=False)
    connection: str
    state: ConnectionState
    episode: int
    detail: str = attrs.field(default="", repr=False)


@attrs.frozen(slots=True)
class ConnectionRepaired:
    """A connection that needed the user works again (closes ``episode``)."""

    __repr__ = fields_repr

    event_id: str = attrs.field(repr=False)
    provider: str
    subject: str = attrs.field(repr=False)
    connection: str
    episode: int


ConnectionEvent: TypeAlias = ConnectionExpiring | ReconnectRequired | ConnectionRepaired


def event_of(notice: Notice) -> ConnectionEvent:
    """The app's event for a notice."""
    where = (notice.id, notice.provider, notice.subject, notice.connection)
    if notice.kind is NoticeKind.EXPIRING:
        return ConnectionExpiring(
            *where, _instant(notice.expires_at), dt.timedelta(seconds=notice.lead or 0)
        )
    if notice.kind is NoticeKind.RECONNECT:
        return ReconnectRequired(*where, notice.state, notice.episode, notice.detail)
    return ConnectionRepaired(*where, notice.episode)


@attrs.frozen(slots=True)
class ConnectionInfo:
    """A connection as any process of the fleet lists it.

    Attributes:
        provider, subject, connection: The connection.
        state: How it stands now.
        next_deadline: When time alone next changes that (UTC); ``None``: only news can.
        expires_at: When its consent or login ends (UTC), if known.
        detail: What the last observer said.
        episode: How many times it broke.
    """

    __repr__ = fields_repr

    provider: str
    subject: str = attrs.field(repr=False)
    connection: str
    state: ConnectionState
    next_deadline: dt.datetime | None
    expires_at: dt.datetime | None
    detail: str = attrs.field(default="", repr=False)
    episode: int = 0

    @property
    def needs_action(self) -> bool:
        """Whether only the user can bring it back."""
        return self.state.needs_action

    @classmethod
    def of(
        cls, record: ConnectionRecord, state: ConnectionState, deadline: float | None
    ) -> ConnectionInfo:
        """A listing row for ``record`` in ``state``."""
        return cls(
            record.provider,
            record.subject,
            record.connection,
            state,
            _instant(deadline),
            _instant(record.expires_at),
            record.detail,
            record.episode,
        )
