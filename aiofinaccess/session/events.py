"""Typed lifecycle events.

Events observe; they do not steer. Each is a frozen, slotted record that names the token set
by its hashed key and never carries a token. Each also carries the app's ``subject`` (the user
id the set is stored under; ``None`` for a client token), so a handler can tell that user to
connect again; it is left out of the record's ``repr`` (user ids are personal data, and logs
keep the hash only). The manager hands
them to callbacks (:meth:`~aiofinaccess.session.manager.SessionManager.subscribe`) and to async
iterators (:meth:`~aiofinaccess.session.manager.SessionManager.events`) through
:class:`~aiofinaccess.session.hub.EventHub`. A token served from the store needs none (an
adoption builds its event only for a listener): this module loads with the first event built.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ..core._repr import fields_repr

__all__ = [
    "GrantLost",
    "ManagerEvent",
    "RefreshFailed",
    "Refreshed",
    "Rotated",
    "WriteAbandoned",
]


@attrs.frozen(slots=True)
class Refreshed:
    """A token set was renewed and stored.

    Attributes:
        key: Hashed token key.
        provider: Provider name.
        grant: ``refresh_token``, ``client_credentials``, ``password`` or ``adopted`` (another
            process renewed it and this one took it from the store).
        reason: ``scheduled``, ``on_demand`` or ``forced``.
        version: The store version now holding it.
        subject: The app's user id (``None`` for a client token); not in the ``repr``.
        late_by: Seconds from the moment the previous set turned stale to this one being
            stored (negative: renewed ahead of time; ``None``: nothing was held before).
    """

    __repr__ = fields_repr

    key: str
    provider: str
    grant: str
    reason: str
    version: int
    subject: str | None = attrs.field(default=None, kw_only=True, repr=False)
    late_by: float | None = attrs.field(default=None, kw_only=True)


@attrs.frozen(slots=True)
class Rotated:
    """A renewal brought a new refresh token (the old one is now spent)."""

    __repr__ = fields_repr

    key: str
    provider: str
    version: int
    subject: str | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class RefreshFailed:
    """A renewal failed; the token set keeps its last tokens while they last.

    Attributes:
        error: The exception's type name (never its full text: it may quote a body).
        retryable: Whether a later attempt may succeed.
        failures: Consecutive failures of this token set.
        retry_in: Seconds until the scheduler tries again, if it will.
    """

    __repr__ = fields_repr

    key: str
    provider: str
    error: str
    retryable: bool
    failures: int
    retry_in: float | None
    subject: str | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class GrantLost:
    """The grant is dead: the end user must authorize again.

    ``subject`` is the app's user id to ask (``None`` for the client's own token). The manager
    records a user's dead grant in :attr:`~aiofinaccess.session.manager.SessionManager.connections`,
    which tells the app once per fleet (``ReconnectRequired``).
    """

    __repr__ = fields_repr

    key: str
    provider: str
    reason: str
    subject: str | None = attrs.field(default=None, kw_only=True, repr=False)


@attrs.frozen(slots=True)
class WriteAbandoned:
    """A renewed token set could not be stored before its refresh token died or the manager
    closed: its session is likely lost (the refresh token that was spent is all the store
    holds). Logged at ERROR as well."""

    __repr__ = fields_repr

    key: str
    provider: str
    subject: str | None = attrs.field(default=None, kw_only=True, repr=False)


ManagerEvent: TypeAlias = Refreshed | Rotated | RefreshFailed | GrantLost | WriteAbandoned
