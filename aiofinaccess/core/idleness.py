"""Pure decisions about idle token sets on a store shared by a fleet (``Schedule.idle_after``).

Serving processes stamp a set's last use in the store (:class:`~aiofinaccess.stores.UseStamps`),
at most once per :func:`stamp_every` per set, from what they noted in memory; the refresh duty
reads the stamp before it renews a set (:func:`use_of`) and leaves an idle one alone
(:func:`idle_due`) until it is used again. Callers pass clocks' readings in.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable
from typing import TypeVar

__all__ = ["Use", "idle_due", "stamp_every", "unstamped_uses", "use_of"]

_K = TypeVar("_K", bound=Hashable)


class Use(enum.Enum):
    """What the duty knows of a claimed set's use."""

    #: Used within ``idle_after`` (or possibly so): renewed as due.
    USED = "used"
    #: Never stamped (written before stamps, or its first stamp lost in a crash): renewed,
    #: and counted as used now, so it turns idle ``idle_after`` later unless used.
    UNSTAMPED = "unstamped"
    #: Not used for longer than ``idle_after``: left to on-demand renewal.
    IDLE = "idle"


def stamp_every(idle_after: float) -> float:
    """How often a serving process writes the stamps of the sets it used: an eighth of
    ``idle_after``, so a stamp is at most that late and a crash loses at most that much."""
    return idle_after / 8


def use_of(idle_for: float | None, idle_after: float) -> Use:
    """Judge a set by its stamp: ``idle_for`` seconds since its last stamped use on the
    store's clock (``None``: never stamped).

    A use reaches the store up to :func:`stamp_every` after it happened (and one in a process
    that crashed never does): a set is idle only past ``idle_after`` plus that lag, so a set
    used within ``idle_after`` is never left alone for a stamp not yet written.
    """
    if idle_for is None:
        return Use.UNSTAMPED
    if idle_for > idle_after + stamp_every(idle_after):
        return Use.IDLE
    return Use.USED


def idle_due(keep_due: float | None, *, keep_alive: bool, now: float) -> float | None:
    """When the duty next renews an idle set (wall clock), or ``None``: not until it is used.

    Args:
        keep_due: When its refresh token must be renewed to stay alive (``None``: never dies).
        keep_alive: The app asked to keep idle sessions alive (``Schedule.keep_alive``).
        now: The wall clock now.

    Returns:
        With ``keep_alive``, the keep-alive deadline (``now`` when it has passed: renew);
        otherwise ``None``: the set leaves the duty, its next use renews it on demand (and its
        stamp brings it back to the duty).
    """
    if not keep_alive or keep_due is None:
        return None
    return max(keep_due, now)


def unstamped_uses(uses: Iterable[tuple[_K, float, float]], now: float) -> dict[_K, float]:
    """The stamps to write: for each ``(key, last used, last stamped use)`` on one monotonic
    clock, the use's age at ``now`` if it is newer than the one stamped."""
    return {key: max(0.0, now - used) for key, used, stamped in uses if used > stamped}
