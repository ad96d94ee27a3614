"""The reservation rules of ``reservations.MemoryReservations`` as Lua scripts.

One script admits (every line of one request, all or nothing, one round trip), one
settles or releases, one renews a long request's hold. Per line the keys are: the RPM bucket, the TPM bucket, a sorted set
of holds (request id scored by expiry), a hash of their costs (field ``_sum``: the total
held) and the spend counter of the period. Expired holds are swept before each check,
so a dead process's holds vanish on their own. Numbers travel as strings.
"""

from __future__ import annotations

_HEAD = """
local function num(x) return string.format('%.17g', x) end
local now, rid, tokens, cost, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local n = #KEYS / 5
local function sweep(z, h)
  -- Drops expired holds; returns how many are left. When none are, the hash is left as it
  -- is: the admission that follows overwrites its total.
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #old > 0 then
    for _, r in ipairs(old) do
      local a = redis.call('HGET', h, r)
      if a then
        redis.call('HDEL', h, r)
        redis.call('HINCRBYFLOAT', h, '_sum', -tonumber(a))
      end
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  end
  return redis.call('ZCARD', z)
end
local function level(key, cap)
  local st = redis.call('HMGET', key, 't', 'ts')
  if not st[1] then return cap end
  return math.min(cap, tonumber(st[1]) + math.max(0, now - tonumber(st[2])) * cap / 60)
end
local function store(key, cap, left)
  redis.call('HSET', key, 't', num(left), 'ts', num(now))
  redis.call('EXPIRE', key, math.ceil((cap - left) * 60 / cap) + 1)
end
"""

RESERVE = (
    _HEAD
    + """
local plans, counts = {}, {}
for i = 1, n do
  local k, a = (i - 1) * 5, 5 + (i - 1) * 6
  local rpm, tpm, par, budget, floor = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3]),
                                       tonumber(ARGV[a+4]), tonumber(ARGV[a+5])
  local z, h = KEYS[k+3], KEYS[k+4]
  local busy = sweep(z, h)
  counts[i] = busy
  if par >= 0 and busy >= par then return {tostring(i - 1), 'parallel', '1', '0'} end
  if budget >= 0 then
    local spent = math.max(tonumber(redis.call('GET', KEYS[k+5])) or 0, floor)
    if spent >= budget then return {tostring(i - 1), 'budget', '0', num(spent)} end
    local held = busy > 0 and (tonumber(redis.call('HGET', h, '_sum')) or 0) or 0
    if busy > 0 and spent + held + cost > budget then return {tostring(i - 1), 'budget_held', '1', num(spent)} end
  end
  for j, lim in ipairs({{rpm, 1}, {tpm, tokens}}) do
    local cap, c = lim[1], lim[2]
    if cap > 0 then
      local key = KEYS[k+j]
      local lv = level(key, cap)
      local need = math.min(c, cap)
      if lv < need then return {tostring(i - 1), j == 1 and 'rpm' or 'tpm', num((need - lv) * 60 / cap), '0'} end
      plans[#plans + 1] = {key, cap, lv - c}
    end
  end
end
for _, p in ipairs(plans) do store(p[1], p[2], p[3]) end
for i = 1, n do
  local k = (i - 1) * 5
  local z, h = KEYS[k+3], KEYS[k+4]
  if redis.call('ZADD', z, now + ttl, rid) == 0 then
    redis.call('HSET', h, rid, num(cost))  -- the same request again: its hold renewed, counted once
  elseif counts[i] == 0 then
    -- No other holds: the hash holds at most a total (swept holds took their fields along),
    -- which is 0 but for rounding; overwritten, not added to.
    redis.call('HSET', h, '_sum', num(cost), rid, num(cost))
  else
    redis.call('HINCRBYFLOAT', h, '_sum', cost)
    redis.call('HSET', h, rid, num(cost))
  end
  redis.call('EXPIRE', z, math.ceil(ttl) + 60)
  redis.call('EXPIRE', h, math.ceil(ttl) + 60)
end
return 0
"""
)

SETTLE = (
    _HEAD
    + """
local used = tonumber(ARGV[6])
for i = 1, n do
  local k, a = (i - 1) * 5, 6 + (i - 1) * 3
  local tpm, floor, sttl = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  local z, h = KEYS[k+3], KEYS[k+4]
  if redis.call('ZREM', z, rid) == 1 then
    if redis.call('ZCARD', z) == 0 then
      redis.call('DEL', h)  -- the last hold: the total is 0, whatever rounding left in it
    else
      local amt = redis.call('HGET', h, rid)
      if amt then
        redis.call('HDEL', h, rid)
        redis.call('HINCRBYFLOAT', h, '_sum', -tonumber(amt))
      end
    end
  end
  if tpm > 0 and used ~= tokens then
    local key = KEYS[k+2]
    store(key, tpm, math.min(tpm, level(key, tpm) - (used - tokens)))
  end
  if cost > 0 and sttl > 0 then
    local v = math.max(tonumber(redis.call('GET', KEYS[k+5])) or 0, floor) + cost
    redis.call('SET', KEYS[k+5], num(v), 'EX', math.max(1, math.ceil(sttl)))
  end
end
return 1
"""
)

#: Keys as for ``RESERVE`` (five per line; only the holds' set and hash are used); ARGV:
#: now, request id, ttl. A hold that expired or was settled is not brought back.
RENEW = """
local now, rid, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local renewed = 0
for i = 1, #KEYS / 5 do
  local z, h = KEYS[(i - 1) * 5 + 3], KEYS[(i - 1) * 5 + 4]
  local exp = tonumber(redis.call('ZSCORE', z, rid))
  if exp and exp > now then
    redis.call('ZADD', z, 'XX', now + ttl, rid)
    redis.call('EXPIRE', z, math.ceil(ttl) + 60)
    redis.call('EXPIRE', h, math.ceil(ttl) + 60)
    renewed = renewed + 1
  end
end
return renewed
"""
