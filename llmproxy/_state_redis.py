"""``RedisStateStore``: the shared state of several gateway processes, one Lua script per step.

Each read-modify-write is one script, so it is atomic across processes. Floats travel as
strings (Redis truncates Lua numbers to integers on the way out). Every key carries a TTL,
so state left behind by a removed credential or a finished period disappears by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aredis

from ._reserve_lua import RENEW, RESERVE, SETTLE
from ._resp import RespClient, RespError, supported
from .reservations import Denial, Hold
from .state import MAX_COOLDOWN, Bucket, Cooldown, StateStore, StoreError, under

# Lua's tostring keeps 14 digits: a timestamp would lose its milliseconds.
_NUM = """
local function num(x) return string.format('%.17g', x) end
"""

_TAKE = (
    _NUM
    + """
local now = tonumber(ARGV[1])
local levels = {}
local wait = 0
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3*i - 1]), tonumber(ARGV[3*i]), tonumber(ARGV[3*i + 1])
  local st = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = cap
  if st[1] then tokens = math.min(cap, tonumber(st[1]) + math.max(0, now - tonumber(st[2])) * rate) end
  levels[i] = tokens
  local need = math.min(cost, cap)
  if tokens < need then
    local w = 86400
    if rate > 0 then w = (need - tokens) / rate end
    if w > wait then wait = w end
  end
end
if wait > 0 then return num(wait) end
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3*i - 1]), tonumber(ARGV[3*i]), tonumber(ARGV[3*i + 1])
  local left = levels[i] - cost
  redis.call('HSET', KEYS[i], 't', num(left), 'ts', num(now))
  local ttl = 86400
  if rate > 0 then ttl = math.ceil((cap - left) / rate) + 1 end
  redis.call('EXPIRE', KEYS[i], ttl)
end
return '0'
"""
)

_DEBIT = (
    _NUM
    + """
local now, cap, rate, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local st = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = cap
if st[1] then tokens = math.min(cap, tonumber(st[1]) + math.max(0, now - tonumber(st[2])) * rate) end
local left = math.min(cap, tokens - amount)
redis.call('HSET', KEYS[1], 't', num(left), 'ts', num(now))
local ttl = 86400
if rate > 0 then ttl = math.ceil((cap - left) / rate) + 1 end
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""
)

_COOL = (
    _NUM
    + """
local now = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'until', 'failures', 'reason')
local prev_until = tonumber(st[1])
local failures = tonumber(st[2]) or 0
local active = prev_until ~= nil and prev_until > now
if not active then
  if st[3] ~= ARGV[5] then failures = 0 end
  failures = failures + 1
end
local seconds
if ARGV[3] ~= '' then seconds = tonumber(ARGV[3])
else seconds = math.min(tonumber(ARGV[2]) * 2 ^ math.min(failures - 1, 30), tonumber(ARGV[4])) end
seconds = math.min(math.max(seconds, 0), tonumber(ARGV[7]))
if active then seconds = math.max(seconds, prev_until - now) end
local untl = now + seconds
redis.call('HSET', KEYS[1], 'until', num(untl), 'failures', failures, 'reason', ARGV[5], 'trial', '0')
redis.call('EXPIRE', KEYS[1], math.ceil(seconds + tonumber(ARGV[6])))
return {num(untl), num(failures)}
"""
)

_TRIAL = (
    _NUM
    + """
local now = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'until', 'trial')
if not st[1] then return 1 end
if tonumber(st[1]) > now or tonumber(st[2] or '0') > now then return 0 end
redis.call('HSET', KEYS[1], 'trial', num(now + tonumber(ARGV[2])))
return 1
"""
)

_RR = (
    _NUM
    + """
local cur, names, total, best = {}, {}, 0, nil
for i = 1, #ARGV / 2 do
  local name, w = ARGV[2*i - 1], tonumber(ARGV[2*i])
  local c = (tonumber(redis.call('HGET', KEYS[1], name)) or 0) + w
  cur[name] = c
  names[i] = name
  total = total + w
  if best == nil or c > cur[best] then best = name end
end
cur[best] = cur[best] - total
local out = {best}
for i = 1, #names do
  redis.call('HSET', KEYS[1], names[i], num(cur[names[i]]))
  out[i + 1] = num(cur[names[i]])
end
redis.call('EXPIRE', KEYS[1], 86400)
return out
"""
)

_SPEND = (
    _NUM
    + """
local v = tonumber(redis.call('GET', KEYS[1])) or 0
if ARGV[4] == '1' then v = math.max(v, tonumber(ARGV[2])) + tonumber(ARGV[1]) else v = tonumber(ARGV[2]) end
redis.call('SET', KEYS[1], num(v), 'EX', math.max(1, math.ceil(tonumber(ARGV[3]))))
return num(v)
"""
)


class RedisStateStore(StateStore):
    """State in Redis under ``prefix``; the async client serves requests, a sync one the admin."""

    def __init__(self, url: str, *, prefix: str = "llmproxy:rt:", timeout: float = 1.0) -> None:
        self.url = url
        self.prefix = prefix
        self._timeout = timeout
        self._aclient: aredis.Redis | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._ascripts: dict[str, Any] = {}
        self._sclient: redis.Redis | None = None
        self._resp: RespClient | None = None
        self._resp_loop: asyncio.AbstractEventLoop | None = None

    def _fast(self) -> RespClient | None:
        """The pipelined client for scripts (``redis://`` URLs), one per event loop; None: use redis-py."""
        loop = asyncio.get_running_loop()
        if self._resp_loop is not loop:
            if self._resp is not None:
                self._resp.close()
            self._resp = (RespClient(self.url, timeout=self._timeout, connect_timeout=3 * self._timeout)
                          if supported(self.url) else None)  # fmt: skip
            self._resp_loop = loop
        return self._resp

    def _async(self) -> tuple[aredis.Redis, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:  # a client's connections belong to one loop
            # A bounded, blocking pool: past 64 connections a request waits for a free one
            # (Redis runs one script at a time anyway) instead of failing, as the default
            # pool does past 100 in flight, or opening hundreds of sockets in a burst.
            pool = aredis.BlockingConnectionPool.from_url(self.url, max_connections=64, timeout=5 * self._timeout,
                                                          socket_timeout=self._timeout,
                                                          socket_connect_timeout=3 * self._timeout)  # fmt: skip
            self._aclient = aredis.Redis(connection_pool=pool)
            self._aloop = loop
            self._ascripts = {name: self._aclient.register_script(lua) for name, lua in _SCRIPTS.items()}
        return self._aclient, self._ascripts

    async def aclose(self) -> None:
        if self._resp is not None:
            self._resp.close()
        self._resp, self._resp_loop = None, None
        client, self._aclient, self._aloop = self._aclient, None, None
        if client is not None:
            await client.aclose(close_connection_pool=True)

    def _sync(self) -> redis.Redis:
        if self._sclient is None:
            self._sclient = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        return self._sclient

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        fast = self._fast()
        if fast is not None:
            return await self._run_fast(fast, script, [self.prefix + k for k in keys], args)
        _, scripts = self._async()
        try:
            return await scripts[script](keys=[self.prefix + k for k in keys], args=list(args))
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None

    async def _run_fast(self, client: RespClient, script: str, keys: list[str], args: Sequence[Any]) -> Any:
        sha = _SHAS[script]
        try:
            try:
                return await client.call("EVALSHA", sha, len(keys), *keys, *args)
            except RespError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                await client.call("SCRIPT", "LOAD", _SCRIPTS[script])  # a restarted or flushed Redis
                return await client.call("EVALSHA", sha, len(keys), *keys, *args)
        except (TimeoutError, RespError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None

    async def take(self, costs: Sequence[tuple[Bucket, float]], now: float) -> float:
        if not costs:
            return 0.0
        args: list[Any] = [repr(now)]
        for bucket, cost in costs:
            args += [repr(bucket.capacity), repr(bucket.rate), repr(float(cost))]
        return float(await self._run("take", ["tb:" + b.key for b, _ in costs], args))

    async def debit(self, bucket: Bucket, amount: float, now: float) -> None:
        args = [repr(now), repr(bucket.capacity), repr(bucket.rate), repr(float(amount))]
        await self._run("debit", ["tb:" + bucket.key], args)

    async def cooldowns(self, keys: Sequence[str], now: float) -> list[Cooldown | None]:
        if not keys:
            return []
        client, _ = self._async()
        try:
            async with client.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.hmget(self.prefix + "cd:" + k, "until", "failures", "reason", "trial")
                rows = await pipe.execute()
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None
        return [_cooldown(row) for row in rows]

    async def cool(
        self, key: str, *, base: float, fixed: float | None, cap: float, reason: str, now: float, keep: float = 3600.0
    ) -> Cooldown:
        args = [repr(now), repr(base), "" if fixed is None else repr(fixed), repr(cap), reason, repr(keep),
                repr(MAX_COOLDOWN)]  # fmt: skip
        until, failures = await self._run("cool", ["cd:" + key], args)
        return Cooldown(float(until), int(float(failures)), reason)

    async def begin_trial(self, key: str, now: float, lease: float) -> bool:
        return bool(int(await self._run("trial", ["cd:" + key], [repr(now), repr(lease)])))

    async def clear(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        client, _ = self._async()
        try:
            await client.delete(*[self.prefix + "cd:" + k for k in keys])
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None

    async def rr_order(self, group: str, members: Sequence[tuple[str, int]]) -> list[str]:
        if not members:
            return []
        args: list[Any] = []
        for name, weight in members:
            args += [name, int(weight)]
        out = await self._run("rr", ["rr:" + group], args)
        best = _text(out[0])
        values = {name: float(_text(v)) for (name, _), v in zip(members, out[1:], strict=True)}
        rest = sorted((name for name, _ in members if name != best), key=lambda n: -values[n])
        return [best, *rest]

    async def get(self, key: str) -> str | None:
        client, _ = self._async()
        try:
            value = await client.get(self.prefix + "kv:" + key)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None
        return None if value is None else _text(value)

    async def put(self, key: str, value: str, ttl: float) -> None:
        client, _ = self._async()
        try:
            await client.set(self.prefix + "kv:" + key, value, px=max(1, int(ttl * 1000)))
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        client, _ = self._async()
        try:
            return bool(await client.set(self.prefix + "lk:" + key, owner, nx=True, px=max(1, int(ttl * 1000))))
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None

    async def unlock(self, key: str, owner: str) -> None:
        await self._run("unlock", ["lk:" + key], [owner])

    async def add_spend(self, key: str, amount: float, *, floor: float = 0.0, ttl: float) -> float:
        return float(await self._run("spend", ["sp:" + key], [repr(float(amount)), repr(float(floor)), repr(ttl), "1"]))

    async def spend(self, key: str) -> float:
        value = await self.get_raw("sp:" + key)
        return float(value) if value is not None else 0.0

    async def get_raw(self, key: str) -> str | None:
        client, _ = self._async()
        try:
            value = await client.get(self.prefix + key)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None
        return None if value is None else _text(value)

    def _hold_keys(self, hold: Hold) -> list[str]:
        keys: list[str] = []
        for line in hold.lines:
            s = "rv:" + line.scope
            keys += [s + ":rpm", s + ":tpm", s + ":z", s + ":h", "sp:" + (line.spend_key or line.scope + ":-")]
        return keys

    async def reserve(self, hold: Hold, now: float) -> Denial | None:
        args: list[Any] = [repr(now), hold.request_id, str(hold.tokens), repr(float(hold.cost)), repr(hold.ttl)]
        for line in hold.lines:
            args += [line.rpm or 0, line.tpm or 0, -1 if line.max_parallel is None else line.max_parallel,
                     -1.0 if line.budget_usd is None else repr(float(line.budget_usd)), repr(line.floor),
                     repr(line.spend_ttl)]  # fmt: skip
        out = await self._run("reserve", self._hold_keys(hold), args)
        if not isinstance(out, list):
            return None
        index, kind, wait, spent = (_text(v) for v in out)
        return Denial(int(index), kind, float(wait), float(spent))

    async def renew(self, hold: Hold, now: float) -> int:
        return int(await self._run("renew", self._hold_keys(hold), [repr(now), hold.request_id, repr(hold.ttl)]))

    async def settle(self, hold: Hold, tokens: int, cost: float, now: float) -> None:
        args: list[Any] = [repr(now), hold.request_id, str(hold.tokens), repr(float(cost)), repr(hold.ttl), str(tokens)]
        for line in hold.lines:
            args += [line.tpm or 0, repr(line.floor), repr(line.spend_ttl) if line.spend_key else "0"]
        await self._run("settle", self._hold_keys(hold), args)

    def spends(self, keys: Sequence[str]) -> list[float]:
        if not keys:
            return []
        try:
            values = self._sync().mget([self.prefix + "sp:" + k for k in keys])
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None
        return [float(_text(v)) if v is not None else 0.0 for v in values]

    def list_cooldowns(self) -> dict[str, Cooldown]:
        client = self._sync()
        start = len(self.prefix) + 3
        out: dict[str, Cooldown] = {}
        for raw in client.scan_iter(match=_glob(self.prefix + "cd:") + "*", count=500):
            key = _text(raw)
            record = _cooldown(client.hmget(key, "until", "failures", "reason", "trial"))
            if record is not None:
                out[key[start:]] = record
        return out

    def clear_cooldowns(self, path: str = "") -> int:
        client = self._sync()
        start = len(self.prefix) + 3
        found = client.scan_iter(match=_glob(self.prefix + "cd:" + path) + "*", count=500)
        keys = [k for k in found if under(_text(k)[start:], path)]
        return int(client.delete(*keys)) if keys else 0

    def set_spend(self, key: str, value: float, ttl: float, *, at_least: bool = False) -> float:
        script = self._sync().register_script(_SPEND)
        args = ["0", repr(float(value)), repr(ttl), "1" if at_least else "0"]
        return float(_text(script(keys=[self.prefix + "sp:" + key], args=args)))

    def reset(self) -> None:
        client = self._sync()
        keys = list(client.scan_iter(match=_glob(self.prefix) + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])


_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_SCRIPTS = {
    "take": _TAKE,
    "debit": _DEBIT,
    "cool": _COOL,
    "trial": _TRIAL,
    "rr": _RR,
    "spend": _SPEND,
    "unlock": _UNLOCK,
    "reserve": RESERVE,
    "settle": SETTLE,
    "renew": RENEW,
}


_SHAS = {name: hashlib.sha1(lua.encode()).hexdigest() for name, lua in _SCRIPTS.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob(text: str) -> str:
    """Escape a literal for a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _cooldown(row: Sequence[Any]) -> Cooldown | None:
    if not row or row[0] is None:
        return None
    until, failures, reason, trial = (_text(v) if v is not None else "" for v in row)
    trial_until = float(trial) if trial else 0.0
    if not math.isfinite(trial_until):
        trial_until = 0.0
    return Cooldown(float(until), int(float(failures or "0")), reason, trial_until)
