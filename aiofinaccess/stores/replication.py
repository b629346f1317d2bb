"""How many copies of a write a replicated store waits for before it counts the write as stored.

>>> RedisStore("redis+cluster://node:6379", replication=Replication(replicas=1))  # doctest: +SKIP

A rotated refresh token the store acknowledged but its primary alone held is lost when a replica
without it takes over: the store then gives back a refresh token the identity provider has
already spent. With a :class:`Replication` a write counts as stored only once ``replicas``
replicas have it; until then the session core keeps the set as a pending write and retries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from ..core._repr import fields_repr
from ..core.errors import ConfigurationError

__all__ = ["Replication"]


@attrs.frozen(kw_only=True)
class Replication:
    """Wait for replicas after each token set write (Redis: ``WAIT``, or ``WAITAOF``).

    Args:
        replicas: How many replicas must have the write (at least 1).
        timeout: Seconds to wait for them; fewer by then and the write fails with
            :class:`~aiofinaccess.core.errors.StoreError` (it may still be on the primary).
        fsync: Also wait until the primary and those replicas have written it to their
            append-only file (``WAITAOF 1 replicas``: Redis 7.2 or later, with ``appendonly
            yes``); by default a replica's memory is enough.

    Raises:
        ConfigurationError: ``replicas`` is not a positive integer or ``timeout`` not a positive
            number of seconds.
    """

    __repr__ = fields_repr

    replicas: int = 1
    timeout: float = 1.0
    fsync: bool = False

    def __attrs_post_init__(self) -> None:
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int):
            raise ConfigurationError("Replication.replicas must be a positive integer")
        if self.replicas < 1:
            raise ConfigurationError("Replication.replicas must be a positive integer")
        if not (isinstance(self.timeout, int | float) and 0 < self.timeout < math.inf):
            raise ConfigurationError("Replication.timeout must be a positive number of seconds")
        if not isinstance(self.fsync, bool):
            raise ConfigurationError("Replication.fsync must be True or False")

    def command(self) -> tuple[str | int, ...]:
        """The command to send on the write's connection, right after the write."""
        milliseconds = max(1, math.ceil(self.timeout * 1000))
        if self.fsync:
            return ("WAITAOF", 1, self.replicas, milliseconds)
        return ("WAIT", self.replicas, milliseconds)

    def confirmed(self, reply: int | Sequence[int]) -> bool:
        """Whether the reply to :meth:`command` says enough copies have the write."""
        if isinstance(reply, int):  # WAIT: replicas
            return reply >= self.replicas
        local, remote = reply  # WAITAOF: the primary (0 or 1), then replicas
        return local >= 1 and remote >= self.replicas
