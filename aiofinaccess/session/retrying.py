"""Waiting between tries: the one retry primitive of the renewal driver and the API pipeline.

A :class:`Retrier` holds what every retry of one kind of call shares: the backoff decision
(:class:`~aiofinaccess.core.retry.Backoff`, pure), how many tries, the clock's sleep, the
random source for jitter, and the hooks that observe retries. :meth:`Retrier.pause` decides,
announces and waits one retry; :meth:`Retrier.call` is the plain loop around it. (Not tenacity:
a renewal's retries are steps of its state machine, and the simulation needs a seeded random
source and a virtual clock.)

Must never import: ``stores``, ``api``, ``integrations``, ``cli`` or ``sandbox``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import attrs

from ..core.errors import ApiError
from ..core.retry import Backoff

__all__ = ["Retrier", "RetryDetails", "RetryHook"]

logger = logging.getLogger("aiofinaccess")

_T = TypeVar("_T")


@attrs.frozen(slots=True)
class RetryDetails:
    """One scheduled retry, as hooks see it.

    Attributes:
        name: What is retried (``"token request"``, ``"GET /users"``).
        retry_num: 1 for the first retry.
        wait_for: Seconds about to be waited.
        caused_by: The failure that made the retry necessary.
    """

    name: str
    retry_num: int
    wait_for: float
    caused_by: BaseException


#: Observes a retry; it must not raise, and it cannot change the wait.
RetryHook: TypeAlias = Callable[[RetryDetails], None]


@attrs.frozen(slots=True)
class Retrier:
    """Decides, announces and sleeps the waits between tries of one kind of call.

    Args:
        backoff: The wait decision.
        attempts: Tries in all, the first included.
        sleep: The clock's sleep (virtual in tests and simulations).
        random: A uniform draw from ``[0, 1)`` for jitter.
        on_retry: Hooks called once per retry, before its wait.
    """

    backoff: Backoff
    attempts: int
    sleep: Callable[[float], Awaitable[None]]
    random: Callable[[], float]
    on_retry: tuple[RetryHook, ...] = ()

    async def pause(
        self, name: str, retry_num: int, cause: BaseException, *, at_least: float = 0.0
    ) -> float:
        """Wait before retry ``retry_num`` of ``name`` after ``cause``; the seconds waited.

        The wait is the server's ``Retry-After`` when ``cause`` carries one (cut to the
        backoff's ``max_retry_after``), else a full-jitter draw; never less than ``at_least``.
        """
        retry_after = cause.retry_after if isinstance(cause, ApiError) else None
        wait = max(self.backoff.wait(retry_num, self.random, retry_after), at_least)
        details = RetryDetails(name, retry_num, wait, cause)
        logger.debug(
            "retrying %s (retry %d) in %.3f s after %s",
            name,
            retry_num,
            wait,
            type(cause).__name__,
        )
        for hook in self.on_retry:
            hook(details)
        await self.sleep(wait)
        return wait

    async def call(
        self,
        name: str,
        attempt: Callable[[], Awaitable[_T]],
        *,
        retry_on: Callable[[Exception], bool],
    ) -> _T:
        """Await ``attempt()`` until it succeeds, ``retry_on`` refuses its error, or
        ``attempts`` tries have failed; then the last error is raised as it was."""
        failures = 0
        while True:
            try:
                return await attempt()
            except Exception as exc:
                failures += 1
                if failures >= self.attempts or not retry_on(exc):
                    raise
                await self.pause(name, failures, exc)
