"""The change feed of :class:`~aiofinaccess.stores.postgres.PostgresStore`: one ``LISTEN``
connection per store (outside the pool) that relays every ``NOTIFY`` to the live iterators.

A write notifies in its own statement, so a change is announced only once committed. The
reader pings its connection every :data:`PING_EVERY` seconds, so a silently dead link is found
too, and after any failure it connects and listens again (with a growing pause). The feed is
best effort, as Redis's: changes sent while no ``LISTEN`` stands are not replayed, and
compare-and-swap keeps every write correct regardless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..core.stopping import cancel_asked
from ._feed import Relay

__all__ = ["Listener"]

#: Seconds between pings of an idle ``LISTEN`` connection (and how long one may take).
PING_EVERY: Final = 30.0


class Listener(Relay):
    """Listens (lazily, once) and relays every change to the live iterators.

    Args:
        connect: Opens a new connection (the store's URL and TLS settings).
        channel: The store's notification channel.
        closed: Whether the store closed (a closed store hands out ended iterators).
    """

    def __init__(
        self, connect: Callable[[], Awaitable[Any]], channel: str, closed: Callable[[], bool]
    ) -> None:
        super().__init__(closed, "PostgreSQL")
        self._connect = connect
        self._channel = channel
        self._stood = False

    async def _run(self) -> None:
        """Relay changes; listen again after any failure until cancelled."""
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError as exc:
                if cancel_asked():
                    raise
                self._failed(exc, backoff)
            except Exception as exc:  # a dead feed would go unnoticed: log it and listen again
                self._failed(exc, backoff)
            else:  # the connection ended under us
                self._failed(ConnectionError("connection lost"), backoff)
            await asyncio.sleep(backoff)
            # Grows while connecting fails; a LISTEN that stood starts it afresh.
            backoff = 0.1 if self._stood else min(backoff * 2, 5.0)
            self._stood = False

    async def _listen(self) -> None:
        """One connection's life: listen, ping while idle, return once it is lost."""
        conn = await self._connect()
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self._channel, self._notified)
            self.subscribed.set()
            self._stood = True
            while not lost.is_set():
                try:
                    async with asyncio.timeout(PING_EVERY):
                        await lost.wait()
                except TimeoutError:
                    await conn.fetchval("SELECT 1", timeout=PING_EVERY)
        finally:
            conn.terminate()  # no goodbye: the link may be dead, and this cannot block

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._relay(payload)
