"""A session manager's settings: value objects that check themselves on creation and compute
every derived timing once (in the style of httpx's ``Timeout`` and ``Limits``).

>>> SessionManager(timeouts=Timeouts(token=10.0), duty=Duty(enabled=False))  # doctest: +SKIP
"""

from __future__ import annotations

import math

from ._record import Record
from .errors import ConfigurationError

__all__ = ["Duty", "Limits", "Schedule", "Timeouts", "UpdateBudget"]


def _seconds(name: str, value: float) -> None:
    # A bool is an int, a timedelta or a string from the environment compares with nothing.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a positive number of seconds")
    if not value > 0 or value == math.inf:
        raise ConfigurationError(f"{name} must be a positive number of seconds")


def _count(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{name} must be a positive number of token sets")


class Timeouts(Record):
    """How long the manager's calls and leases last, in seconds.

    Args:
        token: One token-endpoint exchange, in total.
        lease: A store lease unless its holder extends it. A holder that crashes before
            sending blocks other processes for at most this long; one that crashes after
            sending, for at most ``token + lease``.
        store: One store call, before it counts as failed.
        close: How long ``aclose()`` waits for renewals in flight (``0``: no limit).
        pending_write: How much longer ``aclose()`` waits for renewals whose token request
            was sent, so their result is stored (``0``: no limit).
    """

    _fields = ("token", "lease", "store", "close", "pending_write")
    __slots__ = (
        *_fields,
        "lease_needed",
        "send_needed",
        "send_lease",
        "patience",
        "claim_deadline",
        "heartbeat",
        "heartbeat_retry",
        "close_budget",
    )
    token: float
    lease: float
    store: float
    close: float
    pending_write: float
    #: The lease left below which a job extends it before a send.
    lease_needed: float
    #: The lease the last check before a send asks for: the exchange and half the margin,
    #: so that the write after it stays covered.
    send_needed: float
    #: What taking or extending a lease for a send asks for: the exchange and the write after.
    send_lease: float
    #: How long a job waits for a lease another process holds before it gives up.
    patience: float
    #: A duty claim's default length: one lease wait and one exchange, with margin.
    claim_deadline: float
    #: The heartbeat's period (and the longest wait between two tries of a pending write).
    heartbeat: float
    #: The pause before a failed heartbeat tries again.
    heartbeat_retry: float
    #: ``aclose()``'s whole bound (``None``: no limit).
    close_budget: float | None

    def __init__(
        self,
        *,
        token: float = 30.0,
        lease: float = 10.0,
        store: float = 15.0,
        close: float = 10.0,
        pending_write: float = 60.0,
    ) -> None:
        _seconds("Timeouts.token", token)
        _seconds("Timeouts.lease", lease)
        _seconds("Timeouts.store", store)
        if not close >= 0 or not pending_write >= 0:
            raise ConfigurationError("Timeouts.close and Timeouts.pending_write must be >= 0")
        fields = {
            "token": token,
            "lease": lease,
            "store": store,
            "close": close,
            "pending_write": pending_write,
            "lease_needed": token + lease / 4,
            "send_needed": token + lease / 8,
            "send_lease": token + lease,
            "patience": token + 2 * lease,
            "claim_deadline": token + 2 * lease,
            "heartbeat": lease / 3,
            "heartbeat_retry": lease / 10,
            "close_budget": close + pending_write if close > 0 and pending_write > 0 else None,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)


class Schedule(Record):
    """When the manager renews token sets in the background.

    Args:
        enabled: Renew in the background before sets go stale (``False``: only on demand,
            and no refresh duty either).
        keep_alive: Also renew before the *refresh* token runs out, even for idle sets (keeps
            Keycloak sessions alive past their SSO-idle timeout).
        idle_after: Seconds without use after which a set is left to on-demand renewal
            (``None``: never idle). In a fleet, serving processes stamp their uses in the
            store every eighth of this and the duty stops renewing sets idle longer; an idle
            user's next request then costs one token request and one store write.
        jitter: Share of the lead by which a scheduled renewal may move earlier at random.
    """

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "enabled",
        "keep_alive",
        "idle_after",
        "jitter",
    )
    enabled: bool
    keep_alive: bool
    idle_after: float | None
    jitter: float

    def __init__(
        self,
        *,
        enabled: bool = True,
        keep_alive: bool = False,
        idle_after: float | None = 3600.0,
        jitter: float = 0.2,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ConfigurationError("Schedule.jitter must be in [0, 1)")
        if idle_after is not None and not idle_after > 0:
            raise ConfigurationError("Schedule.idle_after must be positive or None")
        object.__setattr__(self, "enabled", enabled)
        object.__setattr__(self, "keep_alive", keep_alive)
        object.__setattr__(self, "idle_after", idle_after)
        object.__setattr__(self, "jitter", jitter)


class Duty(Record):
    """This process's share of the refresh duty, on a store that keeps it (SQLite, Redis).

    Args:
        enabled: ``None``: serve requests *and* take a share of the duty (claim due sets from
            the store and renew them), except on a ``MemoryStore``, which keeps the
            per-process scheduler; ``True``: the same on any store that keeps the duty (a
            ``MemoryStore`` too); ``False``: serve only (sets renew on demand, or by workers
            with the duty). With the due times in the store, ``start()`` reads no sets.
        batch: Sets claimed per store call.
        claim_ttl: Seconds a claim lasts before the set falls due again for any worker
            (``None``: :attr:`Timeouts.claim_deadline`; at least ``token + lease``, how long a
            renewal that died after sending fences its set).
        poll: The longest sleep between claims (how soon a set another process made due is
            seen).
        gather: Seconds due sets gather between claims (half to one and a half times this,
            at random): a fleet claims about ``workers / gather`` times a second however many
            sets fall due, and renews each at most about ``1.5 * gather`` late.
    """

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "enabled",
        "batch",
        "claim_ttl",
        "poll",
        "gather",
    )
    enabled: bool | None
    batch: int
    claim_ttl: float | None
    poll: float
    gather: float

    def __init__(
        self,
        *,
        enabled: bool | None = None,
        batch: int = 100,
        claim_ttl: float | None = None,
        poll: float = 1.0,
        gather: float = 0.1,
    ) -> None:
        if enabled not in (None, True, False):
            raise ConfigurationError("Duty.enabled must be True, False or None (the store decides)")
        _count("Duty.batch", batch)
        _seconds("Duty.poll", poll)
        _seconds("Duty.gather", gather)
        if claim_ttl is not None:
            _seconds("Duty.claim_ttl", claim_ttl)
        object.__setattr__(self, "enabled", enabled)
        object.__setattr__(self, "batch", batch)
        object.__setattr__(self, "claim_ttl", claim_ttl)
        object.__setattr__(self, "poll", poll)
        object.__setattr__(self, "gather", gather)

    def claim_for(self, timeouts: Timeouts) -> float:
        """Seconds a claim lasts with these timeouts.

        Raises:
            ConfigurationError: ``claim_ttl`` is shorter than ``token + lease``.
        """
        if self.claim_ttl is None:
            return timeouts.claim_deadline
        if self.claim_ttl < timeouts.send_lease:
            # A renewal that died after sending fences its set that long: a shorter claim
            # would hand the set to a worker that can only wait for the lease.
            raise ConfigurationError("Duty.claim_ttl must be at least Timeouts.token + lease")
        return self.claim_ttl


class Limits(Record):
    """How much the manager does and holds at once.

    Args:
        concurrent_refreshes: Token requests in flight per token endpoint, and renewals the
            scheduler or the duty runs at once.
        working_set: At most this many token sets in memory (least recently used go first; a
            dropped one loads again on demand), or ``None`` for no bound.
    """

    __slots__ = (
        "concurrent_refreshes",
        "working_set",
    )
    concurrent_refreshes: int
    working_set: int | None

    def __init__(
        self,
        *,
        concurrent_refreshes: int = 16,
        working_set: int | None = None,
    ) -> None:
        _count("Limits.concurrent_refreshes", concurrent_refreshes)
        if working_set is not None:
            _count("Limits.working_set", working_set)
        object.__setattr__(self, "concurrent_refreshes", concurrent_refreshes)
        object.__setattr__(self, "working_set", working_set)


class UpdateBudget(Record):
    """How many updates of a bank connection may run without its user (PSD2, Commission
    Delegated Regulation (EU) 2018/389, Art. 36(5)(b): four per 24 hours), counted for the
    whole fleet in the store. An update made with the user present does not count.

    Args:
        limit: Unattended updates per connection within ``window``.
        window: The rolling window, in seconds.
    """

    __slots__ = ("limit", "window")
    limit: int
    window: float

    def __init__(self, *, limit: int = 4, window: float = 86_400.0) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError("UpdateBudget.limit must be a positive number of updates")
        _seconds("UpdateBudget.window", window)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "window", window)
