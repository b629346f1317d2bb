"""The last-use stamps of a :class:`~aiofinaccess.stores.redis.RedisStore`: a ``used`` field in
each set's record hash (the server's ``TIME`` of the use, from the writer's age of it), which
a put leaves alone and a delete removes with the record.

A stamp or a read is one script per batch of keys: on a single node one script spans the
batch; in a cluster, where a script stays in one slot, one script per shard, at most
:data:`~._redis_duty.FANOUT` at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from ..core.tokens import TokenKey
from ._redis_duty import FANOUT, Call
from ._redis_layout import Layout, score, text
from .protocol import check_uses

__all__ = ["IDLE_FOR", "MARK_USED", "UseStampSets"]

#: Keys per script.
BATCH: Final = 500

# KEYS: record, due set, record, due set... ARGV: per pair, the member (str(key)) and the age
# of its use. On the server's clock: the later use wins; a stored set with no due time falls
# due now (a set the duty left idle rejoins it); a key not stored is skipped.
MARK_USED: Final = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local at = now - tonumber(ARGV[i + 1])
    local was = tonumber(redis.call('HGET', KEYS[i], 'used') or '')
    if was == nil or at > was then
      redis.call('HSET', KEYS[i], 'used', string.format('%.6f', at))
    end
    redis.call('ZADD', KEYS[i + 1], 'NX', string.format('%.6f', now), ARGV[i])
  end
end
return 1
"""
# KEYS: records. Answers the server's TIME, then per key its version ('' = not stored) and
# its last use ('' = never stamped).
IDLE_FOR: Final = """
local time = redis.call('TIME')
local out = {time[1], time[2]}
for i = 1, #KEYS do
  local record = redis.call('HMGET', KEYS[i], 'version', 'used')
  out[#out + 1] = record[1] or ''
  out[#out + 1] = record[2] or ''
end
return out
"""


class UseStampSets:
    """The stamps of one store, on its client, through its guarded ``call``."""

    def __init__(self, client: Any, layout: Layout, call: Call) -> None:
        self._layout = layout
        self._call = call
        self._mark = client.register_script(MARK_USED)
        self._read = client.register_script(IDLE_FOR)
        self._fanout = asyncio.Semaphore(FANOUT)

    def _batches(self, keys: Sequence[TokenKey]) -> list[list[TokenKey]]:
        """``keys`` in script-sized batches, each within one slot in a cluster."""
        if not self._layout.cluster:
            return [list(keys[start : start + BATCH]) for start in range(0, len(keys), BATCH)]
        shards: dict[int, list[TokenKey]] = {}
        for key in keys:
            shards.setdefault(self._layout.shard(key), []).append(key)
        return [
            group[start : start + BATCH]
            for group in shards.values()
            for start in range(0, len(group), BATCH)
        ]

    async def _fanned(self, script: Any, keys: list[str], args: list[str]) -> Any:
        async with self._fanout:
            return await script(keys=keys, args=args)

    async def mark_used(self, uses: Mapping[TokenKey, float]) -> None:
        """See :meth:`RedisStore.mark_used`."""
        ages = dict(check_uses(uses))
        calls = []
        for batch in self._batches(list(ages)):
            names, args = [], []
            for key in batch:
                names += [
                    self._layout.record(key),
                    self._layout.due(self._layout.shard(key), key.provider),
                ]
                args += [str(key), score(ages[key])]
            calls.append(self._fanned(self._mark, names, args))
        if calls:
            await self._call("mark used", None, asyncio.gather(*calls))

    async def idle_for(self, keys: Collection[TokenKey]) -> dict[TokenKey, float | None]:
        """See :meth:`RedisStore.idle_for`."""
        batches = self._batches(list(dict.fromkeys(keys)))
        calls = [
            self._fanned(self._read, [self._layout.record(key) for key in batch], [])
            for batch in batches
        ]
        if not calls:
            return {}
        replies = await self._call("idle for", None, asyncio.gather(*calls))
        found: dict[TokenKey, float | None] = {}
        for batch, reply in zip(batches, replies, strict=True):
            now = int(text(reply[0])) + int(text(reply[1])) / 1e6
            for n, key in enumerate(batch):
                version, used = text(reply[2 + 2 * n]), text(reply[3 + 2 * n])
                if version:
                    found[key] = max(0.0, now - float(used)) if used else None
        return found
