"""The fence's last check, where a token request leaves the process.

The renewal driver sets the check for its token request (:func:`fenced`, a context variable:
only its own task sees it); a token client calls :func:`check_before_send` as its last act
before handing the request to the network. If a pause (GC, SIGSTOP, a blocked event loop) left
the lease too short for the exchange, it raises :class:`LeaseLapsed` and nothing is sent:
OAuth has no fencing token, so the server could not refuse the late request. A pause after
this call, or between the answer and its write, no client can close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["LeaseLapsed", "check_before_send", "fenced"]

_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("aiofinaccess_send_check", default=None)


class LeaseLapsed(Exception):
    """The lease no longer covers the exchange: the request was not sent."""


def check_before_send() -> None:
    """Raise :class:`LeaseLapsed` if the renewal's lease lapsed since its fence (no-op
    outside a renewal)."""
    check = _CHECK.get()
    if check is not None:
        check()


@contextlib.contextmanager
def fenced(check: Callable[[], None]) -> Iterator[None]:
    """Make ``check`` the last check of the token requests sent inside the block."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)
