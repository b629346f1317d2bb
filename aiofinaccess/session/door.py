"""A session manager's door: it belongs to the event loop it is first used on, and stays shut
after ``aclose()``; every public call passes :meth:`Door.enter`.

The fresh path checks ``door.open._thread_id != threading.get_ident()`` inline: asyncio's
loops keep the id of the thread that runs them in ``_thread_id``, so the manager's loop is the
running one exactly when they match. (On Python 3.11 ``get_running_loop()`` makes a ``getpid``
system call, too slow for every request.)

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
from typing import cast

from ..core.errors import UsageError

__all__ = ["Door"]


class _Shut:
    """A stand-in for the manager's loop whose ``_thread_id`` never matches a thread."""

    _thread_id: int | None = None


#: Before the first call on a loop, after aclose(), and for loops without ``_thread_id``.
_UNBOUND, _CLOSED, _OTHER_LOOPS = _Shut(), _Shut(), _Shut()


class Door:
    """Which loop a manager belongs to, and whether it is closed."""

    __slots__ = ("loop", "open")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        #: The manager's loop while it may run (or a stand-in): what the fresh path reads.
        self.open: _Shut = _UNBOUND

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.open is _CLOSED

    def enter(self) -> None:
        """Bind the running loop on the first call; refuse another loop, or any call after
        :meth:`close`. A plain call with no loop running (``register`` at import) passes.

        Raises:
            UsageError: The manager is closed, or belongs to another event loop.
        """
        if self.open is _CLOSED:
            raise UsageError(
                "the session manager is closed: aclose() ended it for good; create a new one"
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.loop is None:
            self.loop = loop
            self.open = (
                cast(_Shut, loop) if isinstance(loop, asyncio.BaseEventLoop) else _OTHER_LOOPS
            )
        elif loop is not self.loop:
            raise UsageError(
                "this session manager belongs to another event loop (the first it ran on): its "
                "HTTP session, tasks and locks work only there; use one manager per event loop "
                "(each asyncio.run() starts a new one)"
            )

    def close(self) -> None:
        """Refuse every call from now on."""
        self.open = _CLOSED
