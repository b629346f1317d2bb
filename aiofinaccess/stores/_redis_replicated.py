"""A :class:`~aiofinaccess.stores.redis.RedisStore` write that counts only once replicas have it.

``WAIT`` counts the writes of its own connection, so the put script and ``WAIT`` (or
``WAITAOF``) go out as one pipeline on one connection to the primary that holds the key: the
store's own client on a single node, a client of that primary's in a cluster. Fewer replicas
than asked and the put fails with :class:`~aiofinaccess.core.errors.StoreError`; the write
may still be on the primary, so the writer's retry of the same set from the same version also
accepts the version that write left (PUT's ARGV[12]) and waits for replicas again.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from ..core.errors import StoreError
from ..core.tokens import TokenKey, TokenSet
from ._redis_scripts import PUT
from .replication import Replication

__all__ = ["ReplicatedPuts"]

_PUT_SHA: Final = hashlib.sha1(PUT.encode(), usedforsecurity=False).hexdigest()


@attrs.frozen
class _Unconfirmed:
    """A write that may be on the primary without replicas: the set, its base and its version."""

    expected: int | None
    token_set: TokenSet
    version: int


class ReplicatedPuts:
    """Puts followed by ``WAIT`` on their connection, and the writes not yet confirmed.

    Args:
        client: The store's client (a cluster client: ``cluster`` is true).
        replication: What to wait for.
        errors: The driver's errors; ``no_script`` its error for a script not loaded.
        connect: A client of one cluster node (redis-py's ``ClusterNode``), made once per node.
    """

    def __init__(
        self,
        client: Any,
        *,
        cluster: bool,
        replication: Replication,
        errors: tuple[type[Exception], ...],
        no_script: type[Exception],
        connect: Callable[[Any], Any],
    ) -> None:
        self._client = client
        self._cluster = cluster
        self.replication = replication
        self._errors = errors
        self._no_script = no_script
        self._connect = connect
        self._nodes: dict[str, Any] = {}
        self._unconfirmed: dict[TokenKey, _Unconfirmed] = {}

    def also(self, key: TokenKey, expected: int | None, token_set: TokenSet) -> str:
        """The version a put of ``token_set`` at ``expected`` may also find: its own earlier,
        unconfirmed write of the same set ('' for none)."""
        earlier = self._unconfirmed.get(key)
        if earlier is None or (earlier.expected, earlier.token_set) != (expected, token_set):
            return ""
        return str(earlier.version)

    async def put(
        self,
        key: TokenKey,
        written: tuple[int | None, TokenSet, int],
        names: Sequence[str],
        args: Sequence[str | bytes],
    ) -> bool:
        """Run the put script and wait for replicas; False for a version conflict.

        Raises:
            StoreError: Fewer replicas than asked have the write in time.
            (the driver's errors): Redis failed; the write may have reached the primary.
        """
        self._unconfirmed[key] = mine = _Unconfirmed(*written)
        client = self._client if not self._cluster else self._node(names[0])
        try:
            stored, copies = await self._send(client, "EVALSHA", _PUT_SHA, names, args)
            if isinstance(stored, self._no_script):  # nothing was written: send the script itself
                stored, copies = await self._send(client, "EVAL", PUT, names, args)
        except self._errors:
            await self._reroute(names[0])
            raise
        if isinstance(stored, Exception):
            await self._reroute(names[0])
            raise stored
        if not stored:
            self._forget(key, mine)
            return False
        if isinstance(copies, Exception) or not self.replication.confirmed(copies):
            wanted = self.replication.replicas
            raise StoreError(
                f"token set {key.hashed} was written but fewer than {wanted} replicas confirmed "
                f"it within {self.replication.timeout} s ({_said(copies)}); not counted as stored"
            )
        self._forget(key, mine)
        return True

    def _forget(self, key: TokenKey, mine: _Unconfirmed) -> None:
        """Forget a settled write, unless a later put of the key took its place."""
        if self._unconfirmed.get(key) is mine:
            del self._unconfirmed[key]

    async def _send(
        self, client: Any, how: str, script: str, names: Sequence[str], args: Sequence[str | bytes]
    ) -> list[Any]:
        """The script and the wait, pipelined on one connection: their replies (or errors)."""
        pipe = client.pipeline(transaction=False)
        pipe.execute_command(how, script, len(names), *names, *args)
        pipe.execute_command(*self.replication.command())
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    def _node(self, name: str) -> Any:
        """A client of the primary that holds ``name``, made once per primary."""
        node = self._client.get_node_from_key(name)
        client = self._nodes.get(node.name)
        if client is None:
            client = self._nodes[node.name] = self._connect(node)
        return client

    async def _reroute(self, name: str) -> None:
        """After a failure in a cluster: one keyed command through the cluster client, which
        follows a ``MOVED`` and updates its slot map, so the next put finds the new primary."""
        if self._cluster:
            with contextlib.suppress(*self._errors):
                await self._client.exists(name)

    async def aclose(self) -> None:
        """Close the per-primary clients."""
        nodes, self._nodes = list(self._nodes.values()), {}
        for client in nodes:
            await client.aclose()


def _said(reply: object) -> str:
    if isinstance(reply, Exception):
        return type(reply).__name__
    if isinstance(reply, list | tuple):
        return f"{reply[0]} local and {reply[1]} replica append-only files"
    return f"{reply} replicas"
