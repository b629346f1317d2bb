"""The backoff decision: how long to wait before the next try, as a pure function.

After the n-th failed try (n = 1, 2, ...) every retry in aiofinaccess waits a uniform draw from
``[0, min(cap, initial * 2**(n-1)))`` (full jitter, which spreads a herd of clients that failed
together over the whole window), or the server's ``Retry-After`` cut to what the caller is
willing to wait. The draw comes from an injected source; the awaiting side is
:class:`~aiofinaccess.session.retrying.Retrier`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from ._repr import fields_repr

__all__ = ["Backoff"]


@attrs.frozen(slots=True)
class Backoff:
    """Full-jitter exponential backoff, or the server's ``Retry-After``. Seconds throughout.

    Args:
        initial: The first window (after the first failed try).
        cap: The largest window; the window doubles until it reaches it.
        max_retry_after: The longest ``Retry-After`` waited; a longer one is cut to it (whether
            a retry is worth it at all is the caller's decision).
    """

    __repr__ = fields_repr

    initial: float
    cap: float
    max_retry_after: float = math.inf

    def window(self, attempt: int) -> float:
        """The jitter window after failed try ``attempt`` (1-based): ``initial * 2**(attempt-1)``,
        at most ``cap``. Any ``attempt`` is fine: a long outage counts its failures unbounded."""
        try:
            grown = math.ldexp(self.initial, max(0, attempt - 1))
        except OverflowError:  # past 2**1023 times initial: far beyond any cap
            return self.cap
        return min(self.cap, grown)

    def wait(
        self, attempt: int, random: Callable[[], float], retry_after: float | None = None
    ) -> float:
        """Seconds to wait after failed try ``attempt``.

        Args:
            attempt: How many tries failed so far (1 after the first).
            random: A uniform draw from ``[0, 1)``; drawn only when the wait is jittered, so a
                seeded source is not consumed by a ``Retry-After``.
            retry_after: The server's ``Retry-After`` in seconds, if it sent one.
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after)
        return random() * self.window(attempt)
