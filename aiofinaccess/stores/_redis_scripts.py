"""The Lua scripts of :class:`~aiofinaccess.stores.redis.RedisStore`.

Redis runs a script atomically, so each of these is one indivisible step. Every script names
its keys in ``KEYS`` (in a cluster they share one hash tag, so one slot); a change is published
by the same script that wrote it, with the command (``PUBLISH`` or ``SPUBLISH``) passed in.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLAIM", "DELETE", "DUE_TOLERANCE", "GET", "PUT", "RESCHEDULE"]

#: Due times of a writer further off ``TIME`` move by the distance (RefreshPolicy's margin).
DUE_TOLERANCE: Final = 1.0

# KEYS: token set, provider's keys, providers, due set. ARGV: expected version ('' = absent),
# version, data, str(key), provider, channel, publish command, due time ('' = none), the
# writer's age of the set, the writer's wall clock as it sent the call, and the tolerance.
# The distance from the writer's clock to the store's TIME is the call's transit (a busy
# server, a slow network) when within the tolerance: the set was up to that much older when
# the write ran. The stamped age counts it, so that no reader sees the set younger than it is,
# and the stamp keeps it apart (``transit``), since the distance may as well be the writer's
# clock running behind: a reader must not judge the set older by it where that is the unsafe
# side (Versioned.transit). Beyond the tolerance the clocks disagree: a due time moves by the
# distance, so due times are on the store's clock. The stamp is ``version written age
# transit`` (``written`` on the store's clock): a reader counts a set's age on the store's
# clock, and takes the stamp only when its version is the record's (an older process's write
# leaves a stale stamp behind). ARGV[12]
# ('' = none) is a version taken as ARGV[1]: the writer's own earlier write of the same set
# that it could not confirm, so its retry goes through whether or not that write survived.
# The delete's ARGV: expected ('' = any), str(key), provider, channel, publish command; it
# answers -1 for a conflict.
PUT: Final = """
local current = redis.call('HGET', KEYS[1], 'version') or ''
if ARGV[12] ~= '' and current == ARGV[12] then current = ARGV[1] end
if current ~= ARGV[1] then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local off, tolerance, age = now - tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[9])
local transit = 0
if off > 0 and off <= tolerance then transit = off end
local stamp = ARGV[2] .. ' ' .. string.format('%.6f', now) .. ' '
  .. string.format('%.6f', age + transit) .. ' ' .. string.format('%.6f', transit)
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'data', ARGV[3], 'stamp', stamp)
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
if ARGV[8] == '' then
  redis.call('ZREM', KEYS[4], ARGV[4])
else
  local due = ARGV[8]
  if math.abs(off) > tolerance then due = string.format('%.6f', due + off) end
  redis.call('ZADD', KEYS[4], due, ARGV[4])
end
redis.call(ARGV[7], ARGV[6], ARGV[4] .. '\\n' .. ARGV[2])
return 1
"""
# KEYS: token set. Its version, data and stamp, and the store's TIME (seconds, microseconds):
# one script, so the time is the clock of the node that holds the set, as the stamp's is.
GET: Final = """
local record = redis.call('HMGET', KEYS[1], 'version', 'data', 'stamp')
local time = redis.call('TIME')
return {record[1], record[2], record[3], time[1], time[2]}
"""
DELETE: Final = """
local current = redis.call('HGET', KEYS[1], 'version')
if not current then return 0 end
if ARGV[1] ~= '' and current ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call(ARGV[5], ARGV[4], ARGV[2] .. '\\n')
return 1
"""
# KEYS: token set, due set. ARGV: due time ('' = none), str(key), expected version ('' = any),
# the writer's wall clock as it sent the call, and the tolerance: a due time moves as PUT's
# does, so it is on the store's clock whoever reschedules. Only for a stored set (at that
# version).
RESCHEDULE: Final = """
local current = redis.call('HGET', KEYS[1], 'version')
if not current then return 0 end
if ARGV[3] ~= '' and current ~= ARGV[3] then return 0 end
if ARGV[1] == '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  local time = redis.call('TIME')
  local due, off = ARGV[1], tonumber(time[1]) + tonumber(time[2]) / 1000000 - tonumber(ARGV[4])
  if math.abs(off) > tonumber(ARGV[5]) then due = string.format('%.6f', due + off) end
  redis.call('ZADD', KEYS[2], due, ARGV[2])
end
return 1
"""
# KEYS: due sets (one provider's in one shard each; on one node a script may span them all).
# ARGV: how many, claim_for, how many entries to look at at most, then per run of KEYS that
# share them: the run's length, the record names' prefix (its shard's base .. 'ts:'), its
# provider, our client key of that provider (on one node a provider's shards are one run: 4
# arguments instead of 3 per due set, which redis-py encoded one by one on every claim).
# "Now" is the server's clock (TIME), never the claimant's. A merge of the sets' heads, read a
# few at a time: the most overdue anywhere first. A user set whose record is gone and a member
# that is no key of the set's provider are dropped (ZREM) and counted; another client's set is
# left for its own worker. Answers {claimed members, how many were dropped}.
CLAIM: Final = """
local limit, budget = tonumber(ARGV[1]), tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local upto = string.format('%.17g', now)
local deadline = string.format('%.17g', now + tonumber(ARGV[2]))
local chunk = math.min(limit, 8)
local buffers, positions, offsets = {}, {}, {}
local records, owns, users, kinds = {}, {}, {}, {}
local function fill(i)
  buffers[i] = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', upto, 'WITHSCORES',
                          'LIMIT', offsets[i], chunk)
  positions[i] = 1
  offsets[i] = offsets[i] + #buffers[i] / 2
end
local at, left = 4, 0
for i = 1, #KEYS do
  if left == 0 then
    if i > 1 then at = at + 4 end
    left = tonumber(ARGV[at])
    if left == nil or left < 1 then return redis.error_reply('ERR claim: bad run length') end
  end
  left = left - 1
  offsets[i] = 0
  fill(i)
  records[i], owns[i] = ARGV[at + 1], ARGV[at + 3]
  users[i], kinds[i] = ARGV[at + 2] .. ':user:', ARGV[at + 2] .. ':client'
end
local claimed, claimed_in, dropped, dropped_in = {}, {}, {}, {}
local examined = 0
while #claimed < limit and examined < budget do
  local best, best_score = nil, nil
  for i = 1, #KEYS do
    if positions[i] <= #buffers[i] then
      local score = tonumber(buffers[i][positions[i] + 1])
      if best == nil or score < best_score then best, best_score = i, score end
    end
  end
  if best == nil then break end
  local member = buffers[best][positions[best]]
  positions[best] = positions[best] + 2
  if positions[best] > #buffers[best] and #buffers[best] == 2 * chunk then fill(best) end
  examined = examined + 1
  local user, kind = users[best], kinds[best]
  if member == owns[best] or (#member > #user and string.sub(member, 1, #user) == user) then
    if redis.call('EXISTS', records[best] .. member) == 1 then
      claimed[#claimed + 1] = member
      claimed_in[#claimed_in + 1] = best
    else
      dropped[#dropped + 1] = member
      dropped_in[#dropped_in + 1] = best
    end
  else
    local next_char = string.sub(member, #kind + 1, #kind + 1)
    if not (string.sub(member, 1, #kind) == kind and (next_char == '' or next_char == ':')) then
      dropped[#dropped + 1] = member
      dropped_in[#dropped_in + 1] = best
    end
  end
end
for j, member in ipairs(claimed) do redis.call('ZADD', KEYS[claimed_in[j]], deadline, member) end
for j, member in ipairs(dropped) do redis.call('ZREM', KEYS[dropped_in[j]], member) end
return {claimed, #dropped}
"""
