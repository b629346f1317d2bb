"""A session manager's settings: value objects that check themselves on creation and compute
every derived timing once (in the style of httpx's ``Timeout`` and ``Limits``).

>>> SessionManager(timeouts=Timeouts(token=10.0), duty=Duty(enabled=False))  # doctest: +SKIP
"""

from __future__ import annotations

import math

import attrs

from ._repr import fields_repr
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


@attrs.frozen(kw_only=True)
class Timeouts:
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

    __repr__ = fields_repr

    token: float = 30.0
    lease: float = 10.0
    store: float = 15.0
    close: float = 10.0
    pending_write: float = 60.0
    #: The lease left below which a job extends it before a send.
    lease_needed: float = attrs.field(init=False, repr=False)
    #: The lease the last check before a send asks for: the exchange and half the margin,
    #: so that the write after it stays covered.
    send_needed: float = attrs.field(init=False, repr=False)
    #: What taking or extending a lease for a send asks for: the exchange and the write after.
    send_lease: float = attrs.field(init=False, repr=False)
    #: How long a job waits for a lease another process holds before it gives up.
    patience: float = attrs.field(init=False, repr=False)
    #: A duty claim's default length: one lease wait and one exchange, with margin.
    claim_deadline: float = attrs.field(init=False, repr=False)
    #: The heartbeat's period (and the longest wait between two tries of a pending write).
    heartbeat: float = attrs.field(init=False, repr=False)
    #: The pause before a failed heartbeat tries again.
    heartbeat_retry: float = attrs.field(init=False, repr=False)
    #: ``aclose()``'s whole bound (``None``: no limit).
    close_budget: float | None = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _seconds("Timeouts.token", self.token)
        _seconds("Timeouts.lease", self.lease)
        _seconds("Timeouts.store", self.store)
        if not self.close >= 0 or not self.pending_write >= 0:
            raise ConfigurationError("Timeouts.close and Timeouts.pending_write must be >= 0")
        derived = {
            "lease_needed": self.token + self.lease / 4,
            "send_needed": self.token + self.lease / 8,
            "send_lease": self.token + self.lease,
            "patience": self.token + 2 * self.lease,
            "claim_deadline": self.token + 2 * self.lease,
            "heartbeat": self.lease / 3,
            "heartbeat_retry": self.lease / 10,
            "close_budget": (
                self.close + self.pending_write
                if self.close > 0 and self.pending_write > 0
                else None
            ),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


@attrs.frozen(kw_only=True)
class Schedule:
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

    __repr__ = fields_repr

    enabled: bool = True
    keep_alive: bool = False
    idle_after: float | None = 3600.0
    jitter: float = 0.2

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ConfigurationError("Schedule.jitter must be in [0, 1)")
        if self.idle_after is not None and not self.idle_after > 0:
            raise ConfigurationError("Schedule.idle_after must be positive or None")


@attrs.frozen(kw_only=True)
class Duty:
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

    __repr__ = fields_repr

    enabled: bool | None = None
    batch: int = 100
    claim_ttl: float | None = None
    poll: float = 1.0
    gather: float = 0.1

    def __attrs_post_init__(self) -> None:
        if self.enabled not in (None, True, False):
            raise ConfigurationError("Duty.enabled must be True, False or None (the store decides)")
        _count("Duty.batch", self.batch)
        _seconds("Duty.poll", self.poll)
        _seconds("Duty.gather", self.gather)
        if self.claim_ttl is not None:
            _seconds("Duty.claim_ttl", self.claim_ttl)

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


@attrs.frozen(kw_only=True)
class Limits:
    """How much the manager does and holds at once.

    Args:
        concurrent_refreshes: Token requests in flight per token endpoint, and renewals the
            scheduler or the duty runs at once.
        working_set: At most this many token sets in memory (least recently used go first; a
            dropped one loads again on demand), or ``None`` for no bound.
    """

    __repr__ = fields_repr

    concurrent_refreshes: int = 16
    working_set: int | None = None

    def __attrs_post_init__(self) -> None:
        _count("Limits.concurrent_refreshes", self.concurrent_refreshes)
        if self.working_set is not None:
            _count("Limits.working_set", self.working_set)


@attrs.frozen(kw_only=True)
class UpdateBudget:
    """How many updates of a bank connection may run without its user (PSD2, Commission
    Delegated Regulation (EU) 2018/389, Art. 36(5)(b): four per 24 hours), counted for the
    whole fleet in the store. An update made with the user present does not count.

    Args:
        limit: Unattended updates per connection within ``window``.
        window: The rolling window, in seconds.
    """

    __repr__ = fields_repr

    limit: int = 4
    window: float = 86_400.0

    def __attrs_post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigurationError("UpdateBudget.limit must be a positive number of updates")
        _seconds("UpdateBudget.window", self.window)
