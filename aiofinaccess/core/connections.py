"""A bank connection's life as data: its states, its leads, and which notices are due; pure.

Theory of operation. A connection (per provider, subject and connection id) is kept in the
store as a :class:`ConnectionRecord`: when its consent or session ends (``expires_at``), why
it needs the user regardless of time (``blocked``), and what the fleet has announced of it
(``episode``, ``broken``, ``announced``). :func:`record_state` reads its state at any ``now``;
:func:`decide` takes the stored record and what a process just learnt (an
:class:`Observation`) and returns the next record and the :class:`Notice` records now due.
Nothing here reads a clock, awaits or touches a store: the session's registry carries the
decision out (claim each notice in the store, compare-and-set the record, deliver).

Rules of the notices, all read off the records alone so any process reaches the same answer:

* ``ConnectionExpiring``: the end is within a lead (14, 7 and 1 days by default); announced
  once per (end, lead), and only the smallest lead reached (a connection first seen 3 days
  before its end gets the 7-day notice, not the 14-day one as well).
* ``ReconnectRequired``: the state turns ``ACTION_REQUIRED``, ``EXPIRED`` or ``REVOKED`` from
  one that needed nothing; it opens episode ``n + 1``.
* ``ConnectionRepaired``: a connection of a broken episode needs nothing again; closes it.

A notice's id is built from the record it was decided on (key, kind, episode or end and lead),
so two processes deciding the same transition name the same notice, and the store's claim of
that id is what makes it once per fleet.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable
from typing import Final

import attrs

from ._repr import fields_repr
from .errors import ValidationError

__all__ = [
    "DEFAULT_LEADS",
    "ConnectionRecord",
    "ConnectionState",
    "Notice",
    "NoticeKind",
    "Observation",
    "absorb",
    "decide",
    "expiry_step",
    "ordered_leads",
    "record_now",
    "record_state",
]

#: When to announce a consent's or session's end: 14, 7 and 1 days before it.
DEFAULT_LEADS: Final = (dt.timedelta(days=14), dt.timedelta(days=7), dt.timedelta(days=1))


class ConnectionState(enum.StrEnum):
    """How a bank connection stands.

    ``ACTIVE``: nothing to do. ``EXPIRING``: its end is within the largest lead.
    ``ACTION_REQUIRED``: the provider stopped updating it until the user acts. ``EXPIRED``: its
    consent or session ended (or the grant died). ``REVOKED``: the user or the app withdrew it.
    """

    ACTIVE = "ACTIVE"
    EXPIRING = "EXPIRING"
    ACTION_REQUIRED = "ACTION_REQUIRED"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"

    @property
    def needs_action(self) -> bool:
        """Whether only the user can bring it back."""
        return self in _NEEDS_ACTION


_NEEDS_ACTION: Final = frozenset(
    {ConnectionState.ACTION_REQUIRED, ConnectionState.EXPIRED, ConnectionState.REVOKED}
)


class NoticeKind(enum.StrEnum):
    """What a notice announces."""

    EXPIRING = "ConnectionExpiring"
    RECONNECT = "ReconnectRequired"
    REPAIRED = "ConnectionRepaired"


def ordered_leads(leads: Iterable[dt.timedelta | float]) -> tuple[float, ...]:
    """Leads in seconds, largest first, without repeats.

    Raises:
        ValidationError: ``leads`` is empty or holds a duration <= 0.
    """
    seconds = {lead.total_seconds() if isinstance(lead, dt.timedelta) else lead for lead in leads}
    ordered = tuple(sorted(seconds, reverse=True))
    if not ordered or not ordered[-1] > 0:
        raise ValidationError("leads must be one or more positive durations")
    return ordered


def expiry_step(
    end: float, now: float, leads: tuple[float, ...]
) -> tuple[ConnectionState, float | None, float]:
    """Where ``now`` stands against ``end`` (epoch seconds) and ``leads`` (largest first):
    ``(state, lead reached or None, next deadline)``. ``EXPIRED`` once ``end <= now`` (its
    deadline is ``end``); ``EXPIRING`` within a lead, with the smallest lead reached."""
    left = end - now
    if left <= 0:
        return ConnectionState.EXPIRED, None, end
    reached = [lead for lead in leads if left <= lead]
    if not reached:
        return ConnectionState.ACTIVE, None, end - leads[0]
    later = [lead for lead in leads if lead < reached[-1]]
    return ConnectionState.EXPIRING, reached[-1], end - later[0] if later else end


@attrs.frozen(slots=True)
class Observation:
    """What a process learnt of a connection (from the provider's API or the token path).

    Attributes:
        expires_at: When its consent or session ends (epoch seconds); ``None``: no end known.
        blocked: Why it needs the user whatever the time: ``ACTION_REQUIRED``, ``EXPIRED`` or
            ``REVOKED``; ``None`` when nothing blocks it.
        detail: Short text for the app (a reason, a web form's link); never a token.
    """

    expires_at: float | None = None
    blocked: ConnectionState | None = None
    detail: str = ""

    def __attrs_post_init__(self) -> None:
        if self.blocked is not None and not ConnectionState(self.blocked).needs_action:
            raise ValidationError(f"blocked must be a state that needs action, not {self.blocked}")


@attrs.frozen(slots=True)
class ConnectionRecord:
    """A connection as the fleet knows it (what the store keeps, as JSON).

    Attributes:
        provider, subject, connection: Its key (``connection`` is ``""`` for a provider whose
            session is the connection: Everifin).
        expires_at, blocked, detail: The last :class:`Observation`.
        episode: How many times it broke (a ``ReconnectRequired`` opens the next episode).
        broken: Whether the current episode is open (announced, not yet repaired).
        announced: The smallest lead announced for ``announced_end`` (seconds).
        announced_end: The end the announced lead belongs to.
        updated_at: When it was last written (epoch seconds, the writer's clock, never earlier
            than the previous writer's: see :func:`record_now`).
    """

    __repr__ = fields_repr

    provider: str
    subject: str = attrs.field(repr=False)
    connection: str
    expires_at: float | None = None
    blocked: ConnectionState | None = None
    detail: str = attrs.field(default="", repr=False)
    episode: int = 0
    broken: bool = False
    announced: float | None = None
    announced_end: float | None = None
    updated_at: float = 0.0

    @property
    def name(self) -> str:
        """The key the store keeps it under."""
        return record_name(self.provider, self.subject, self.connection)

    def encode(self) -> bytes:
        """As the store keeps it."""
        fields = attrs.asdict(self, recurse=False)
        fields["blocked"] = None if self.blocked is None else str(self.blocked)
        return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> ConnectionRecord:
        """Inverse of :meth:`encode`.

        Raises:
            ValidationError: ``data`` is not a record.
        """
        try:
            fields = json.loads(data)
            blocked = fields.pop("blocked")
            return cls(**fields, blocked=None if blocked is None else ConnectionState(blocked))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValidationError(f"unreadable connection record: {type(exc).__name__}") from None


def record_name(provider: str, subject: str, connection: str) -> str:
    """A connection's key in the store: its three parts joined by ``/``, each escaped."""
    return "/".join(
        part.replace("%", "%25").replace("/", "%2F") for part in (provider, subject, connection)
    )


@attrs.frozen(slots=True)
class Notice:
    """A notice due to the app (what the store's outbox keeps until it is delivered).

    Attributes:
        id: The same for every process that decides it: ``key|kind|episode`` or
            ``key|kind|end|lead``; the app deduplicates deliveries by it.
        kind: What it announces.
        provider, subject, connection: The connection.
        state: Its state when decided.
        expires_at: Its end (epoch seconds), if known.
        lead: For ``ConnectionExpiring``: the lead reached (seconds).
        episode: The episode a reconnect opens or a repair closes.
        detail: The observation's text (a reason, a web form's link).
        decided_at: When it was decided (epoch seconds, the decider's clock).
    """

    __repr__ = fields_repr

    id: str = attrs.field(repr=False)
    kind: NoticeKind
    provider: str
    subject: str = attrs.field(repr=False)
    connection: str
    state: ConnectionState
    expires_at: float | None = None
    lead: float | None = None
    episode: int = 0
    detail: str = attrs.field(default="", repr=False)
    decided_at: float = 0.0

    def encode(self) -> bytes:
        """As the outbox keeps it (and the webhook sends it)."""
        fields = attrs.asdict(self, recurse=False)
        fields["kind"], fields["state"] = str(self.kind), str(self.state)
        return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Notice:
        """Inverse of :meth:`encode`.

        Raises:
            ValidationError: ``data`` is not a notice.
        """
        try:
            fields = json.loads(data)
            fields["kind"] = NoticeKind(fields["kind"])
            fields["state"] = ConnectionState(fields["state"])
            return cls(**fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationError(f"unreadable notice: {type(exc).__name__}") from None


def record_now(record: ConnectionRecord, now: float) -> float:
    """``now`` for ``record``: never earlier than its last write. Time does not run backwards
    for a record, so a process whose clock is behind cannot undo what one ahead decided from
    time alone (an end passed, a lead reached): that would repair a connection nobody repaired
    and open its episode again."""
    return max(now, record.updated_at)


def record_state(
    record: ConnectionRecord, now: float, leads: tuple[float, ...]
) -> tuple[ConnectionState, float | None, float | None]:
    """``record``'s ``(state, lead reached, next deadline)`` at ``now`` (epoch seconds);
    ``leads`` in seconds, largest first (:func:`ordered_leads`). The deadline is the next
    moment time alone changes the state or lead; ``None`` when only an observation can."""
    if record.blocked is not None:
        return record.blocked, None, None
    if record.expires_at is None:
        return ConnectionState.ACTIVE, None, None
    state, lead, deadline = expiry_step(record.expires_at, now, leads)
    return state, lead, None if state is ConnectionState.EXPIRED else deadline


def decide(
    record: ConnectionRecord,
    observation: Observation | None,
    now: float,
    leads: tuple[float, ...],
) -> tuple[ConnectionRecord, list[Notice]]:
    """The record after ``observation`` (``None``: time passed, nothing new learnt) at ``now``,
    and the notices that are due by the rules of the module docstring.

    ``record`` is what the store holds (a fresh one for an unknown connection); the caller
    writes the result back only if it differs, with ``updated_at`` at :func:`record_now`."""
    now = record_now(record, now)
    if observation is not None:
        record = attrs.evolve(
            record,
            expires_at=observation.expires_at,
            blocked=observation.blocked,
            detail=observation.detail,
        )
    state, lead, _ = record_state(record, now, leads)
    key = record.name
    notices: list[Notice] = []

    def notice(kind: NoticeKind, suffix: str, **fields: object) -> Notice:
        return Notice(
            id=f"{key}|{kind}|{suffix}",
            kind=kind,
            provider=record.provider,
            subject=record.subject,
            connection=record.connection,
            state=state,
            expires_at=record.expires_at,
            detail=record.detail,
            decided_at=now,
            **fields,  # type: ignore[arg-type]
        )

    if state.needs_action and not record.broken:
        episode = record.episode + 1
        notices.append(notice(NoticeKind.RECONNECT, str(episode), episode=episode))
        record = attrs.evolve(record, episode=episode, broken=True)
    elif not state.needs_action and record.broken:
        notices.append(notice(NoticeKind.REPAIRED, str(record.episode), episode=record.episode))
        record = attrs.evolve(record, broken=False)
    if state is ConnectionState.EXPIRING and lead is not None:
        end = record.expires_at
        assert end is not None  # EXPIRING has an end  # noqa: S101
        if record.announced_end != end or record.announced is None or record.announced > lead:
            notices.append(notice(NoticeKind.EXPIRING, f"{end!r}|{lead!r}", lead=lead))
            record = attrs.evolve(record, announced=lead, announced_end=end)
    return record, notices


def absorb(record: ConnectionRecord, notice: Notice) -> ConnectionRecord:
    """``record`` once it knows of ``notice``, claimed for it (pure).

    A claimed notice is delivered whatever became of the write meant to follow it (its
    claimant died, or lost the compare-and-set and then read the connection otherwise), so a
    record that missed it takes it in: the next decision then starts from what the app was
    told (a reconnect it got is closed by a repair, the next break is a new episode). When
    nothing was written since the notice was decided, its view of the connection is the newest
    and is taken too."""
    if notice.kind is NoticeKind.RECONNECT and record.episode < notice.episode:
        record = attrs.evolve(record, episode=notice.episode, broken=True)
    elif notice.kind is NoticeKind.REPAIRED and record.broken and record.episode == notice.episode:
        record = attrs.evolve(record, broken=False)
    elif (
        notice.kind is NoticeKind.EXPIRING
        and notice.lead is not None
        and record.expires_at == notice.expires_at
        and (
            record.announced_end != notice.expires_at
            or record.announced is None
            or record.announced > notice.lead
        )
    ):
        record = attrs.evolve(record, announced=notice.lead, announced_end=notice.expires_at)
    else:
        return record
    if record.updated_at > notice.decided_at:
        return record
    ended = notice.expires_at is not None and notice.expires_at <= notice.decided_at
    timed = ended and notice.state is ConnectionState.EXPIRED  # time says it, not a block
    blocked = notice.state if notice.state.needs_action and not timed else None
    return attrs.evolve(record, blocked=blocked, expires_at=notice.expires_at, detail=notice.detail)
