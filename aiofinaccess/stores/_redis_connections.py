""":class:`~aiofinaccess.stores.protocol.ConnectionRecords` on Redis: the ``RedisStore``'s half
of the connection registry.

Names under one base (the prefix, or shard 0's hash tag in a cluster, so every script
touches one slot): ``conn:data`` and ``conn:version`` (hashes by record name),
``notice:data`` (hash by notice id; a finished notice keeps an empty value, so its id stays
claimed), ``notice:due`` (sorted set of unfinished notices by the time their claim runs
out, on the server's ``TIME``), ``notice:done`` (finished notices by when, for pruning) and
``budget:{name}`` (one sorted set per connection: its update slots by when they were taken,
expiring with the last of them). Each operation is one script: a claim is ``HSETNX`` (one
claimant ever wins) and a ``ZADD``; an overdue take moves what it takes forward in the same
step, so concurrent takers never share a notice; a budget's take counts and adds in one step.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any, Final

from ..core.errors import StoreConflictError
from ..core.update_budget import check_budget
from ._redis_layout import as_bytes, text
from .protocol import check_claim

__all__ = ["RedisConnections"]

_NOW: Final = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"

_GET: Final = """
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}
"""
_PUT: Final = """
local v = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[3] == '' then
  if v then return -1 end
elseif v ~= ARGV[3] then return -1 end
local n = (tonumber(v) or 0) + 1
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], n)
return n
"""
_CLAIM: Final = (
    "if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end\n"
    + _NOW
    + "redis.call('ZADD', KEYS[2], string.format('%.6f', now + tonumber(ARGV[3])), ARGV[1])\n"
    "return 1\n"
)
_OVERDUE: Final = (
    _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.6f', now),
                       'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[2], string.format('%.6f', now + tonumber(ARGV[2])), id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[1], id)
end
return out
"""
)
_FINISH: Final = (
    _NOW
    + """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], '')
  redis.call('ZADD', KEYS[3], string.format('%.6f', now), ARGV[1])
end
return 1
"""
)
_PRUNE: Final = (
    _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf',
                       string.format('%.6f', now - tonumber(ARGV[1])), 'LIMIT', 0, 1000)
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return #ids
"""
)
# The rule of core.update_budget.next_slot, in Lua: slots taken at or before now - window no
# longer count (and go); fewer than the limit left takes one, else the answer is when the
# oldest that must leave does (a string: Redis would cut a Lua number to an integer).
_TAKE: Final = (
    _NOW
    + """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now - window))
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], string.format('%.6f', now), ARGV[3])
  local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(last, now) + window - now) * 1000))
  return false
end
local first = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return string.format('%.6f', tonumber(first[2]) + window)
"""
)


class RedisConnections:
    """The scripts; the store provides ``_client``, ``_layout`` and ``_call``."""

    _client: Any
    _layout: Any

    async def _call(self, what: str, key: Any, command: Any) -> Any:
        raise NotImplementedError  # pragma: no cover  (the store's own)

    def _names(self, *names: str) -> list[str]:
        base = self._layout.base(0)
        return [f"{base}{name}" for name in names]

    def _run(self, what: str, script: str, keys: list[str], *args: object) -> Any:
        # eval each time: redis-py caches nothing across clients; the scripts are small.
        return self._call(what, None, self._client.eval(script, len(keys), *keys, *args))

    async def get_connection(self, name: str) -> tuple[bytes, int] | None:
        """The record under ``name`` and its version, or ``None``."""
        data, version = await self._run(
            "get connection", _GET, self._names("conn:data", "conn:version"), name
        )
        return None if data is None else (as_bytes(data), int(version))

    async def put_connection(self, name: str, data: bytes, *, expected_version: int | None) -> int:
        """Write the record at ``expected_version``; return the new version."""
        expected = "" if expected_version is None else str(expected_version)
        keys = self._names("conn:data", "conn:version")
        version = int(await self._run("put connection", _PUT, keys, name, data, expected))
        if version < 0:
            raise StoreConflictError(f"connection record is not at version {expected_version}")
        return version

    async def list_connections(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every record, as ``(name, data)``."""
        (name,) = self._names("conn:data")
        found = await self._call("list connections", None, self._client.hgetall(name))
        for record, data in sorted(found.items()):
            yield text(record), as_bytes(data)

    async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
        """Claim ``notice`` unless it was ever claimed."""
        check_claim(1, claim_for)
        keys = self._names("notice:data", "notice:due")
        return int(await self._run("claim notice", _CLAIM, keys, notice, data, claim_for)) == 1

    async def overdue_notices(self, *, limit: int, claim_for: float) -> list[tuple[str, bytes]]:
        """Take up to ``limit`` unfinished notices whose claim ran out, in one script."""
        check_claim(limit, claim_for)
        keys = self._names("notice:data", "notice:due")
        flat = await self._run("overdue notices", _OVERDUE, keys, limit, claim_for)
        return [(text(flat[i]), as_bytes(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def finish_notice(self, notice: str) -> None:
        """Never overdue again; the id stays claimed."""
        keys = self._names("notice:data", "notice:due", "notice:done")
        await self._run("finish notice", _FINISH, keys, notice)

    async def prune_notices(self, *, older_than: float) -> int:
        """Forget notices finished more than ``older_than`` seconds ago (a thousand a script)."""
        keys = self._names("notice:data", "notice:done")
        pruned = 0
        while True:
            batch = int(await self._run("prune notices", _PRUNE, keys, older_than))
            pruned += batch
            if batch < 1000:
                return pruned

    async def take_update(self, name: str, *, limit: int, window: float) -> float | None:
        """Take one of ``name``'s slots in the window, or say when one frees (one script)."""
        check_budget(limit, window)
        keys = self._names(f"budget:{name}")
        member = secrets.token_hex(8)  # two takes in one microsecond stay two slots
        found = await self._run("take update", _TAKE, keys, limit, window, member)
        return None if found is None else float(text(found))
