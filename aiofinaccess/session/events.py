"""Typed lifecycle events and the counters an app can export.

Events observe; they do not steer. Each is a frozen, slotted record that names the token set
by its hashed key and never carries a token. Each also carries the app's ``subject`` (the user
id the set is stored under; ``None`` for a client token), so a handler can tell that user to
connect again; it is left out of the record's ``repr`` (user ids are personal data, and logs
keep the hash only). The manager hands
them to callbacks (:meth:`~aiofinaccess.session.manager.SessionManager.subscribe`) and to async
iterators (:meth:`~aiofinaccess.session.manager.SessionManager.events`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeAlias

import attrs

from ..core._repr import fields_repr

__all__ = [
    "EventHub",
    "GrantLost",
    "ManagerEvent",
    "ManagerStats",
    "RefreshFailed",
    "Refreshed",
    "Rotated",
    "WriteAbandoned",
]

logger = logging.getLogger("aiofinaccess")


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

    ``subject`` is the app's user id to ask (``None`` for the client's own token);
    :meth:`~aiofinaccess.session.manager.SessionManager.on_reauth_required` is the hook for that.
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


@attrs.define(slots=True)
class ManagerStats:
    """Counters an app can export (they only grow). :meth:`as_dict` suits a metrics exporter."""

    __repr__ = fields_repr

    token_requests: int = 0
    renewals: int = 0
    scheduled_renewals: int = 0
    rotations: int = 0
    adopted_from_store: int = 0
    #: Newer sets written back over an older one of their session (a store rolled back).
    reinstated: int = 0
    refresh_failures: int = 0
    retries: int = 0
    reauth_required: int = 0
    store_failures: int = 0
    events_dropped: int = 0
    #: The refresh duty: sets claimed from the store, and those found renewed elsewhere.
    duty_claimed: int = 0
    duty_renewed_elsewhere: int = 0
    #: Due entries a claim took off the duty because nothing can renew them (a malformed key,
    #: or a due time whose set is gone).
    duty_dropped: int = 0
    #: Claimed user sets issued to another client (another app sharing the store under the same
    #: provider name): given back unrenewed, for that client's worker.
    duty_other_client: int = 0
    #: Claimed sets left alone because nobody used them for ``Schedule.idle_after`` (each
    #: once per idle spell; with keep-alive, once per refresh token).
    duty_idle: int = 0
    #: Last uses written to the store for the refresh duty to read.
    use_stamps: int = 0
    #: Entries dropped to keep the bounded working set.
    working_set_evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return attrs.asdict(self)


class EventHub:
    """Fans events out to callbacks and bounded async iterators; never raises into the manager."""

    def __init__(self, stats: ManagerStats) -> None:
        self._stats = stats
        self._callbacks: list[Callable[[ManagerEvent], object]] = []
        self._queues: set[asyncio.Queue[ManagerEvent | None]] = set()

    def subscribe(self, callback: Callable[[ManagerEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def iterate(self, maxsize: int) -> AsyncIterator[ManagerEvent]:
        """Yield events until :meth:`close`; when ``maxsize`` are waiting, the oldest is dropped."""
        queue: asyncio.Queue[ManagerEvent | None] = asyncio.Queue(maxsize)
        self._queues.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._queues.discard(queue)

    def emit(self, event: ManagerEvent) -> None:
        """Deliver ``event`` to every subscriber."""
        if not self._callbacks and not self._queues:
            return
        for callback in list(self._callbacks):
            try:
                result = callback(event)
            except Exception:
                logger.warning("event callback %r failed", callback, exc_info=True)
                continue
            if inspect.isawaitable(result):
                # subscribe() refuses coroutine functions; this one hid behind a plain call.
                getattr(result, "close", lambda: None)()
                logger.error(
                    "event callback %r returned an awaitable, which never runs: subscribe a "
                    "plain function, or iterate manager.events()",
                    callback,
                )
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self._stats.events_dropped += 1
            queue.put_nowait(event)

    def close(self) -> None:
        """End every iterator."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
