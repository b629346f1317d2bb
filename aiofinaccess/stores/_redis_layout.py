"""Where a :class:`~aiofinaccess.stores.redis.RedisStore` keeps what, how a claim is split over
the due shards, and how replies and scores are read: pure functions, no I/O.

Every token set belongs to one of ``shards`` shards (a stable hash of its key). On a single
node: ``{prefix}ts:{key}`` (hash of ``version``, ``data`` and ``stamp``: the version, the
store's ``TIME`` at the write and the writer's age of the set; a record without a stamp reads
with no age), ``{prefix}keys:{provider}`` and ``{prefix}providers`` (sets, for
``RedisStore.keys``), ``{prefix}lease:{key}``, ``{prefix}due:{provider}:{shard}`` (sorted sets
of due times), ``{prefix}pending:{state}``, and the channel ``{prefix}changes``. On Redis
Cluster each name of a shard starts with the hash tag ``{<prefix>s<shard>}`` instead of the
prefix (``{app:s7}ts:{key}``, ``{app:s7}due:everifin:7``, channel ``{app:s7}changes``), so a
set's record, lease, index entries, due time and change channel share one slot while the
shards spread over the nodes. Older layouts: :mod:`aiofinaccess.stores.migrate`.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

import attrs

from ..core.tokens import TokenKey
from .protocol import stored_age

__all__ = ["Layout", "allocate", "as_bytes", "score", "stamped", "text"]

_S = TypeVar("_S", bound=Hashable)


def text(value: bytes | str) -> str:
    """A reply as text: bytes, unless a client passed in decodes replies."""
    return value.decode() if isinstance(value, bytes) else value


def as_bytes(value: bytes | str) -> bytes:
    """A reply as bytes: str, if a client passed in decodes replies."""
    return value.encode() if isinstance(value, str) else value


def stamped(
    reply: Sequence[bytes | str | None],
) -> tuple[int, bytes, float | None, float] | None:
    """Read the GET script's reply: ``(version, data, age, transit)``, or ``None`` for no
    record.

    ``age`` is the set's age now on the store's clock (``None`` for a record written before the
    stamp, or whose stamp an older process's write left behind at another version); ``transit``
    the part of it that may be the writer's clock running behind (``Versioned.transit``).
    """
    version, data, stamp, seconds, micros = reply
    if version is None or data is None:
        return None
    age, transit = None, 0.0
    fields = [] if stamp is None else text(stamp).split(" ")
    if len(fields) in (3, 4) and fields[0] == text(version) and seconds is not None:
        try:
            now = int(text(seconds)) + int(text(micros or "0")) / 1e6
            age = stored_age(float(fields[1]), float(fields[2]), now)
            transit = float(fields[3]) if len(fields) == 4 else 0.0
        except ValueError:  # not a stamp this code wrote: read the record as an unstamped one
            age, transit = None, 0.0
    return int(version), as_bytes(data), age, transit


def score(value: float) -> str:
    """A due time as Redis reads a score: ``repr`` round-trips a float exactly."""
    return repr(float(value))


@attrs.frozen(slots=True)
class Layout:
    """Key names for one prefix, shard count and mode (single node or cluster)."""

    prefix: str
    shards: int
    cluster: bool

    def shard(self, key: TokenKey | str) -> int:
        """The shard of ``key``: CRC-32 of its text, stable across processes and versions."""
        return zlib.crc32(str(key).encode()) % self.shards

    def base(self, shard: int) -> str:
        """What every name of ``shard`` starts with: the prefix, or its hash tag in a cluster."""
        if not self.cluster:
            return self.prefix
        # Braces in the prefix would end the tag early (and put every shard in one slot).
        bare = self.prefix.replace("{", "").replace("}", "")
        return f"{{{bare}s{shard}}}"

    def bases(self) -> list[str]:
        """The distinct bases: one on a single node, one per shard in a cluster."""
        return [self.base(shard) for shard in range(self.shards if self.cluster else 1)]

    def record(self, key: TokenKey) -> str:
        return f"{self.base(self.shard(key))}ts:{key}"

    def lease(self, key: TokenKey) -> str:
        return f"{self.base(self.shard(key))}lease:{key}"

    def index(self, base: str, provider: str) -> str:
        """The set of a provider's keys (per shard in a cluster)."""
        return f"{base}keys:{provider}"

    @staticmethod
    def providers(base: str) -> str:
        """The set of providers with keys (per shard in a cluster)."""
        return f"{base}providers"

    def due(self, shard: int, provider: str) -> str:
        """A provider's due sorted set in ``shard``: a claim reads only its providers' sets."""
        return f"{self.base(shard)}due:{provider}:{shard}"

    def channel(self, shard: int) -> str:
        """The change channel: one ``PUBLISH`` channel, or a sharded channel per shard."""
        return f"{self.base(shard)}changes"

    def channels(self) -> list[str]:
        return [self.channel(shard) for shard in range(self.shards if self.cluster else 1)]

    def names(self, key: TokenKey) -> list[str]:
        """The KEYS of the put and delete scripts: record, index, providers, due set."""
        shard = self.shard(key)
        base = self.base(shard)
        return [
            self.record(key),
            self.index(base, key.provider),
            self.providers(base),
            self.due(shard, key.provider),
        ]

    def meta(self) -> str:
        """A hash of settings every process sharing the prefix must agree on."""
        return f"{self.base(0)}meta"

    def pending(self, state: str) -> str:
        """A pending authorization (under the plain prefix, also in a cluster: not sharded)."""
        return f"{self.prefix}pending:{state}"


def allocate(earliest: Mapping[_S, tuple[float, int]], limit: int) -> dict[_S, int]:
    """Split a claim of ``limit`` over the shards that have due sets.

    Args:
        earliest: shard -> (its most overdue due time, how many are due), for shards with any.
        limit: How many sets to claim in all.

    Returns:
        shard -> how many to claim there, summing to ``min(limit, total due)``. Shards are
        served in the order of their most overdue set, one share each round (water filling),
        so the most overdue set anywhere is always in the batch and no shard waits for
        another's backlog to drain.
    """
    # A stable sort: ties keep the order of ``earliest`` (shard order, as the heads were read).
    order: Sequence[_S] = sorted(earliest, key=lambda shard: earliest[shard][0])
    plan = dict.fromkeys(order, 0)
    left = limit
    open_shards = [shard for shard in order if earliest[shard][1] > 0]
    while left > 0 and open_shards:
        share = max(1, left // len(open_shards))
        for shard in list(open_shards):
            take = min(share, earliest[shard][1] - plan[shard], left)
            plan[shard] += take
            left -= take
            if plan[shard] >= earliest[shard][1]:
                open_shards.remove(shard)
            if left == 0:
                break
    return {shard: count for shard, count in plan.items() if count}
