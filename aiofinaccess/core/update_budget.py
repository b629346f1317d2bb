"""PSD2's unattended-update budget as data: may a connection be updated without its user; pure.

Without the user present, an account-information service may access an account at most four
times in 24 hours (Commission Delegated Regulation (EU) 2018/389, Art. 36(5)(b)). A store keeps,
per connection, when each unattended update took its slot; :func:`next_slot` reads those times
against ``now`` and answers whether one more may go now, or when. Nothing here reads a clock:
the store calls it with its own clock's ``now`` inside the atomic step that takes the slot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .errors import UsageError

__all__ = ["check_budget", "counted", "next_slot"]


def check_budget(limit: int, window: float) -> None:
    """Validate a budget's ``limit`` (a positive integer) and ``window`` (positive seconds).

    Raises:
        UsageError: Either is not.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError("an update budget's limit must be a positive integer")
    if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
        raise UsageError("an update budget's window must be a positive number of seconds")


def counted(taken: Iterable[float], now: float, window: float) -> list[float]:
    """The slots that still count at ``now``, oldest first: those taken less than ``window``
    seconds ago. A slot stamped later than ``now`` (a clock that stepped back) counts too:
    never fewer updates than were sent."""
    start = now - window
    return sorted(at for at in taken if at > start)


def next_slot(taken: Iterable[float], now: float, *, limit: int, window: float) -> float | None:
    """When the next unattended update may go: ``None`` if a slot is free at ``now``, else the
    moment (same clock as ``taken`` and ``now``) enough slots leave the window to free one.

    ``taken`` are the times slots were taken (any order; old ones are ignored). A slot taken
    at ``t`` counts while ``now < t + window``.
    """
    recent = counted(taken, now, window)
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + window
