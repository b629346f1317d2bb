"""The fence's last check, where a token request leaves the process.

A renewal sends a refresh only while it holds the store's lease with the whole exchange plus a
margin left. Between that check and the moment the request leaves, the process can stop (a GC
pause, SIGSTOP, a blocked event loop, an await inside the token client) for longer than the
lease left; another process can then take the lease and redeem the same refresh token. OAuth
has no fencing token, so the server cannot refuse the late request: the client must not send
it. The renewal driver sets the check for its token request (:func:`fenced`, a context
variable: only its own task sees it); a token client calls :func:`check_before_send` as its
last act before handing the request to the network. A check that finds the lease no longer
covering the exchange raises :class:`LeaseLapsed`: nothing was sent, and the driver takes the
lease again and reads the store again.

What no client can close: a pause after that call (connection setup inside aiohttp, the wire)
or one between the answer and its write, longer than the lease left.

This module does no I/O.
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
