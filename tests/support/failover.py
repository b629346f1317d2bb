"""A failover drill for replicated stores: rotations a primary acknowledged while its replica
lagged, a replica promoted without them, and the refresh tokens the store then gives back that
the identity provider had already spent.

The lag is made, not hoped for: the replica is stopped (SIGSTOP) and the primary drops its link
(``CLIENT KILL TYPE replica``), so nothing the primary acknowledges reaches it, not even into
its socket buffer. Before the replica resumes, the primary is stopped too, so the replica cannot
catch up before it is promoted; the primary resumes as the new primary's replica and gives up
its own writes. :class:`Drill` plays the session core's part: a rotated set whose write failed
stays pending (no further renewal of that key) and is written again once the store is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import attrs

from aiofinaccess import StoreError, TokenKey, TokenSet
from aiofinaccess.stores.redis import RedisStore
from tests.stores.contract import sample
from tests.support.polling import until
from tests.support.redis_cluster import Cluster, redis_cli_binary
from tests.support.redis_server import running_redis

#: Runs one command on the node at a port (``redis-cli``); its output.
Command = Callable[..., Awaitable[str]]


async def cli(port: int, *args: str) -> str:
    """One ``redis-cli`` command against the server on ``port``; its output."""
    return await Cluster([port], redis_cli_binary()).command(port, *args)


async def pid_of(command: Command, port: int) -> int:
    """The process id of the Redis server on ``port``."""
    for line in (await command(port, "INFO", "server")).splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":")[1])
    raise AssertionError(f"no process_id in INFO of {port}")


@contextlib.asynccontextmanager
async def stopped(command: Command, port: int) -> AsyncIterator[None]:
    """The server on ``port`` stopped (SIGSTOP) inside the block, continued (SIGCONT) after."""
    pid = await pid_of(command, port)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def port_of(url: str) -> int:
    """The port of a ``redis://host:port/db`` URL."""
    return int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


@contextlib.asynccontextmanager
async def replicated_redis(settle: float) -> AsyncIterator[tuple[int, int]]:
    """A ``redis-server`` and its replica, in sync: their ports (primary, replica)."""
    async with running_redis() as primary, running_redis() as replica:
        ports = port_of(primary), port_of(replica)
        for port in ports:  # a full sync starts at once, not after 5 s
            await cli(port, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
        await cli(ports[1], "REPLICAOF", "127.0.0.1", str(ports[0]))
        # A write the replica acknowledges: after a sync, Redis streams writes to a replica only
        # once it has acknowledged (once a second), and WAIT counts none before.
        await cli(ports[0], "SET", "replicated", "yes")
        await until(lambda: replica_caught_up(cli, ports[0]), settle)
        yield ports


async def replica_caught_up(command: Command, primary: int) -> bool:
    """Whether ``primary`` has replicas, each online (counted by ``WAIT``) and acknowledging
    its whole replication stream."""
    fields = dict(
        line.split(":", 1)
        for line in (await command(primary, "INFO", "replication")).split()
        if ":" in line
    )
    replicas = [value for name, value in fields.items() if name.startswith("slave")]
    replicas = [dict(part.split("=", 1) for part in value.split(",")) for value in replicas]
    offset = int(fields.get("master_repl_offset", "0"))
    return bool(replicas) and all(
        replica["state"] == "online" and int(replica["offset"]) >= offset for replica in replicas
    )


@attrs.define
class Provider:
    """An identity provider's refresh side: a refresh token works once, then it is spent."""

    spent: set[str] = attrs.Factory(set)
    reused: int = 0
    _serial: itertools.count[int] = attrs.Factory(itertools.count)

    def issue(self) -> TokenSet:
        n = next(self._serial)
        return sample(f"AT-{n}", f"RT-{n}")

    def rotate(self, refresh: str) -> TokenSet:
        """Spend ``refresh`` and issue a new set (a spent one counts as a reuse)."""
        if refresh in self.spent:
            self.reused += 1
        self.spent.add(refresh)
        return self.issue()


@attrs.define
class Drill:
    """Rotations against one store, as the session core would do them."""

    store: RedisStore
    provider: Provider
    keys: list[TokenKey]
    acknowledged: int = 0
    #: key -> (the version the set was redeemed from, the redeemed set): written, not stored.
    pending: dict[TokenKey, tuple[int | None, TokenSet]] = attrs.Factory(dict)

    async def start(self, timeout: float) -> None:
        """A first set for every key (a write that fails is tried again until ``timeout``)."""
        for key in self.keys:
            self.pending[key] = (None, self.provider.issue())
        await self.write_pending(timeout)
        self.acknowledged = 0

    async def rotate(self, rounds: int) -> None:
        """``rounds`` renewals of every key that has no pending write (the core renews a key no
        further while its last set is unwritten)."""
        for _ in range(rounds):
            await asyncio.gather(
                *(self._renew(key) for key in self.keys if key not in self.pending)
            )

    async def _renew(self, key: TokenKey) -> None:
        stored = await self.store.get(key)
        assert stored is not None
        assert stored.token_set.refresh_token is not None
        fresh = self.provider.rotate(stored.token_set.refresh_token)
        try:
            await self.store.put(key, fresh, expected_version=stored.version)
        except StoreError:
            self.pending[key] = (stored.version, fresh)
        else:
            self.acknowledged += 1

    async def write_pending(self, timeout: float) -> None:
        """Write every pending set again until the store takes it, as the core's retries do."""
        for key, (base, fresh) in list(self.pending.items()):

            async def stored(
                key: TokenKey = key, base: int = base, fresh: TokenSet = fresh
            ) -> bool:
                try:
                    await self.store.put(key, fresh, expected_version=base)
                except StoreError:
                    return False
                return True

            await until(stored, timeout, every=0.1)
            del self.pending[key]
            self.acknowledged += 1

    async def spent_in_store(self) -> int:
        """How many keys the store now holds a refresh token of that the provider spent."""
        found = await self.store.get_many(self.keys)
        assert len(found) == len(self.keys)
        return sum(found[key].token_set.refresh_token in self.provider.spent for key in self.keys)


def on_primary(
    keys: Iterable[TokenKey], owner: Callable[[TokenKey], int]
) -> dict[int, list[TokenKey]]:
    """``keys`` grouped by the port of the primary that holds each."""
    grouped: dict[int, list[TokenKey]] = {}
    for key in keys:
        grouped.setdefault(owner(key), []).append(key)
    return grouped
