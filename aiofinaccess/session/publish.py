"""Publishing: making a token set an entry's current one, and planning its next renewal.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

from ..core.clock import Clock
from ..core.lifecycle import Event, RefreshPolicy, Status, plan, transition
from ..core.renewal_step import Stored
from ..core.tokens import Anchor, TokenSet
from .hub import EventHub, ManagerStats
from .planning import Planner
from .registry import Entry

__all__ = ["Publisher"]

_NEG_INF = float("-inf")


class Publisher:
    """Publishes sets into entries.

    Args:
        clock: Anchors a set the app stored itself.
        policy: Plans each published set.
        planner: Plans the published set's next background renewal.
        stats, hub: Counters and events (of adoptions).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        policy: RefreshPolicy,
        planner: Planner,
        stats: ManagerStats,
        hub: EventHub,
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._planner = planner
        self._stats = stats
        self._hub = hub

    def publish(
        self,
        entry: Entry,
        token_set: TokenSet,
        version: int,
        *,
        reissued: bool = False,
        slack: float = 0.0,
    ) -> None:
        """Make ``token_set`` the entry's current set and schedule its renewal; ``slack``:
        seconds the set may be younger than anchored (a stored set's, see
        :class:`~aiofinaccess.core.renewal_step.Stored`), to plan its renewal by."""
        if token_set.anchor is None:  # set by the app itself: it was issued as stated
            token_set = token_set.with_anchor(Anchor(self._clock.wall(), self._clock.monotonic()))
        now = self._clock.monotonic()
        deadlines = plan(token_set, self._policy, reissued=reissued)
        entry.token_set = token_set
        entry.version = version
        entry.reissued = reissued
        entry.token = token_set.access_token.reveal()
        # Handing the token out is judged at the set's oldest: never an expired token. The
        # slack only moves when this process renews it (a safe choice either way), never
        # what it hands out.
        entry.usable_until = deadlines.must_refresh_at
        if slack > 0 and token_set.anchor is not None:
            youngest = token_set.with_anchor(
                Anchor(token_set.anchor.wall, token_set.anchor.monotonic + slack)
            )
            deadlines = plan(youngest, self._policy, reissued=reissued)
        entry.stale_at = deadlines.stale_at
        entry.failures = 0
        entry.retry_at = _NEG_INF
        entry.reauth = None
        entry.generation += 1
        if entry.last_used == _NEG_INF:
            entry.last_used = now
        event = (
            Event.REFRESH_SUCCEEDED if entry.status is Status.REFRESHING else Event.TOKENS_STORED
        )
        entry.status = transition(entry.status, event)
        self._planner.schedule(entry, None, deadlines)

    def adopt(self, entry: Entry, stored: Stored) -> None:
        """Publish a set another process stored, with its event and counter."""
        self._stats.adopted_from_store += 1
        self.publish(entry, stored.token_set, stored.version)
        if self._hub.listening:
            from .events import Refreshed  # noqa: PLC0415  (loads with the first listener)

            key = entry.key
            self._hub.emit(
                Refreshed(
                    key.hashed,
                    key.provider,
                    "adopted",
                    "store",
                    stored.version,
                    subject=key.subject,
                )
            )
