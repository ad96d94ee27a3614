"""Shared routing state: token buckets, cooldowns, round-robin positions, affinity, spend.

Every gateway process reads and writes the same numbers through a ``StateStore``: the
in-memory one for a single process (the embedded profile, tests), the Redis one when
several processes serve together. Each operation that reads then writes runs atomically
(a lock in memory, one Lua script in Redis), so two processes never both take the last
token or both start the half-open trial of a cooled credential.

Times are wall-clock seconds passed in by the caller (``now``), never read here, so
processes on one host agree and tests drive a fake clock. ``llmproxy.stores.create_store``
picks the store for a deployment.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .reservations import Denial, Hold, MemoryReservations

#: The longest cooldown a store accepts, whatever an upstream's Retry-After says.
MAX_COOLDOWN = 86_400.0


class StoreError(Exception):
    """The shared store could not answer; callers fail open rather than refuse traffic."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: ``capacity`` tokens when full, refilled at ``rate`` per second."""

    key: str
    capacity: float
    rate: float

    @classmethod
    def per_minute(cls, key: str, limit: float) -> Bucket:
        return cls(key, float(limit), float(limit) / 60.0)


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A credential (or credential + model) sitting out after failures.

    Past ``until`` it is half-open: one trial request may take it (``trial_until`` is
    that request's lease); success clears the record, failure cools it for twice as long.
    """

    until: float
    failures: int
    reason: str
    trial_until: float = 0.0

    @property
    def rate_limited(self) -> bool:
        return self.reason == "rate_limited"

    def blocks(self, now: float) -> bool:
        return self.until > now or self.trial_until > now

    def recovers_at(self) -> float:
        return max(self.until, self.trial_until)


def cooldown_seconds(
    prev: Cooldown | None, *, base: float, fixed: float | None, cap: float, reason: str, now: float
) -> tuple[float, int]:
    """The next cooldown's length and failure count (the Redis script does the same).

    Failures only count when the previous cooldown had already ended: a burst of
    concurrent failures during one cooldown is one failure, not a reason to cool for days.
    They count per reason: a 429 after a 500 starts from the provider's own cooldown.
    """
    if prev is not None and prev.until > now:
        failures = prev.failures
    else:
        failures = (prev.failures if prev is not None and prev.reason == reason else 0) + 1
    seconds = fixed if fixed is not None else min(base * 2 ** min(failures - 1, 30), cap)
    seconds = min(max(seconds, 0.0), MAX_COOLDOWN)
    if prev is not None and prev.until > now:
        seconds = max(seconds, prev.until - now)
    return seconds, failures


class StateStore(ABC):
    """The operations routing and limits need; async on the request path, sync for admin."""

    @abstractmethod
    async def take(self, costs: Sequence[tuple[Bucket, float]], now: float) -> float:
        """Take every cost from its bucket, all or nothing: 0 when taken, else seconds to wait."""

    @abstractmethod
    async def debit(self, bucket: Bucket, amount: float, now: float) -> None:
        """Correct a bucket after the fact (actual tokens minus the estimate; negative refunds)."""

    @abstractmethod
    async def cooldowns(self, keys: Sequence[str], now: float) -> list[Cooldown | None]: ...

    @abstractmethod
    async def cool(
        self, key: str, *, base: float, fixed: float | None, cap: float, reason: str, now: float, keep: float = 3600.0
    ) -> Cooldown:
        """Start (or extend) a cooldown; see ``cooldown_seconds``. The record outlives it by ``keep``."""

    @abstractmethod
    async def begin_trial(self, key: str, now: float, lease: float) -> bool:
        """Claim the one half-open trial of an ended cooldown; True also when there is no record."""

    @abstractmethod
    async def clear(self, keys: Sequence[str]) -> None: ...

    @abstractmethod
    async def rr_order(self, group: str, members: Sequence[tuple[str, int]]) -> list[str]:
        """One smooth weighted round-robin step over ``members``: the pick first, then the rest by precedence."""

    @abstractmethod
    async def get(self, key: str) -> str | None: ...

    @abstractmethod
    async def put(self, key: str, value: str, ttl: float) -> None: ...

    @abstractmethod
    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take a lease on ``key`` for ``owner`` unless someone else holds it; it ends by itself after ``ttl``."""

    @abstractmethod
    async def unlock(self, key: str, owner: str) -> None:
        """End ``owner``'s lease on ``key`` (a lease someone else took since is left alone)."""

    @abstractmethod
    async def add_spend(self, key: str, amount: float, *, floor: float = 0.0, ttl: float) -> float:
        """Add to a spend counter that never reads below ``floor`` (the settled spend); the new total."""

    @abstractmethod
    async def spend(self, key: str) -> float: ...

    @abstractmethod
    async def reserve(self, hold: Hold, now: float) -> Denial | None:
        """Admit a request on every line of ``hold`` at once, or say which line refused it."""

    @abstractmethod
    async def renew(self, hold: Hold, now: float) -> int:
        """Extend a live hold's expiry to ``now + hold.ttl``; how many of its lines still held it."""

    @abstractmethod
    async def settle(self, hold: Hold, tokens: int, cost: float, now: float) -> None:
        """End a hold: give back what it held, correct TPM to ``tokens``, add ``cost`` to the spend."""

    @abstractmethod
    def spends(self, keys: Sequence[str]) -> list[float]:
        """Spend counters (sync: the API and admin show them); 0 for a missing one."""

    @abstractmethod
    def list_cooldowns(self) -> dict[str, Cooldown]:
        """Every cooldown record (sync: for the admin and commands)."""

    @abstractmethod
    def clear_cooldowns(self, path: str = "") -> int:
        """Drop the cooldowns under a key path (sync): ``""`` all, ``"p"`` a provider's, ``"p/c"`` a credential's."""

    @abstractmethod
    def set_spend(self, key: str, value: float, ttl: float, *, at_least: bool = False) -> float:
        """Set a spend counter (sync: budget jobs); with ``at_least`` never lower it."""

    @abstractmethod
    def reset(self) -> None:
        """Forget everything (tests, and a clean start)."""

    async def aclose(self) -> None:  # noqa: B027 (a no-op unless the store holds connections)
        """Close this event loop's connections (a no-op in memory)."""


@dataclass(slots=True)
class _TokenState:
    tokens: float
    ts: float


def _refill(state: _TokenState | None, bucket: Bucket, now: float) -> float:
    if state is None:
        return bucket.capacity
    return min(bucket.capacity, state.tokens + max(0.0, now - state.ts) * bucket.rate)


def _wait(tokens: float, bucket: Bucket, cost: float) -> float:
    need = min(cost, bucket.capacity)
    if tokens >= need:
        return 0.0
    return (need - tokens) / bucket.rate if bucket.rate > 0 else MAX_COOLDOWN


class MemoryStateStore(StateStore):
    """One process's state, guarded by a lock so the admin thread may read and clear it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _TokenState] = {}
        self._cooldowns: dict[str, tuple[Cooldown, float]] = {}  # key -> (record, expires_at)
        self._rr: dict[str, dict[str, float]] = {}
        self._values: dict[str, tuple[str, float]] = {}
        self._sweep_at = 1024
        self._res = MemoryReservations()
        self._spend = self._res.spend
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (owner, until)

    async def take(self, costs: Sequence[tuple[Bucket, float]], now: float) -> float:
        with self._lock:
            levels = [_refill(self._buckets.get(b.key), b, now) for b, _ in costs]
            wait = max((_wait(t, b, c) for t, (b, c) in zip(levels, costs, strict=True)), default=0.0)
            if wait > 0:
                return wait
            for t, (b, c) in zip(levels, costs, strict=True):
                self._buckets[b.key] = _TokenState(t - c, now)
            return 0.0

    async def debit(self, bucket: Bucket, amount: float, now: float) -> None:
        with self._lock:
            tokens = _refill(self._buckets.get(bucket.key), bucket, now)
            self._buckets[bucket.key] = _TokenState(min(bucket.capacity, tokens - amount), now)

    def _record(self, key: str, now: float) -> Cooldown | None:
        entry = self._cooldowns.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._cooldowns[key]
            return None
        return entry[0]

    async def cooldowns(self, keys: Sequence[str], now: float) -> list[Cooldown | None]:
        with self._lock:
            return [self._record(k, now) for k in keys]

    async def cool(
        self, key: str, *, base: float, fixed: float | None, cap: float, reason: str, now: float, keep: float = 3600.0
    ) -> Cooldown:
        with self._lock:
            prev = self._record(key, now)
            seconds, failures = cooldown_seconds(prev, base=base, fixed=fixed, cap=cap, reason=reason, now=now)
            record = Cooldown(now + seconds, failures, reason)
            self._cooldowns[key] = (record, now + seconds + keep)
            return record

    async def begin_trial(self, key: str, now: float, lease: float) -> bool:
        with self._lock:
            entry = self._cooldowns.get(key)
            if entry is None:
                return True
            record, expires = entry
            if record.blocks(now):
                return False
            self._cooldowns[key] = (Cooldown(record.until, record.failures, record.reason, now + lease), expires)
            return True

    async def clear(self, keys: Sequence[str]) -> None:
        with self._lock:
            for k in keys:
                self._cooldowns.pop(k, None)

    async def rr_order(self, group: str, members: Sequence[tuple[str, int]]) -> list[str]:
        with self._lock:
            current = self._rr.setdefault(group, {})
            return _smooth_wrr(current, members)

    async def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._values.get(key)
            if entry is None or entry[1] <= self._clock():
                return None
            return entry[0]

    async def put(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            if len(self._values) >= self._sweep_at:  # one entry per session: drop the expired ones
                self._values = {k: v for k, v in self._values.items() if v[1] > now}
                self._sweep_at = max(1024, 2 * len(self._values))
            self._values[key] = (value, now + ttl)

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            held = self._leases.get(key)
            if held is not None and held[1] > now and held[0] != owner:
                return False
            self._leases[key] = (owner, now + ttl)
            return True

    async def unlock(self, key: str, owner: str) -> None:
        with self._lock:
            if self._leases.get(key, ("", 0.0))[0] == owner:
                del self._leases[key]

    async def add_spend(self, key: str, amount: float, *, floor: float = 0.0, ttl: float) -> float:
        with self._lock:
            total = max(self._spend_now(key), floor) + amount
            self._spend[key] = (total, self._clock() + ttl)
            return total

    def _spend_now(self, key: str) -> float:
        entry = self._spend.get(key)
        return entry[0] if entry is not None and entry[1] > self._clock() else 0.0

    async def spend(self, key: str) -> float:
        with self._lock:
            return self._spend_now(key)

    async def reserve(self, hold: Hold, now: float) -> Denial | None:
        with self._lock:
            return self._res.reserve(hold, now)

    async def renew(self, hold: Hold, now: float) -> int:
        with self._lock:
            return self._res.renew(hold, now)

    async def settle(self, hold: Hold, tokens: int, cost: float, now: float) -> None:
        with self._lock:
            self._res.settle(hold, tokens, cost, now)

    def spends(self, keys: Sequence[str]) -> list[float]:
        with self._lock:
            return [self._spend_now(k) for k in keys]

    def list_cooldowns(self) -> dict[str, Cooldown]:
        now = self._clock()
        with self._lock:
            return {k: rec for k, (rec, expires) in self._cooldowns.items() if expires > now}

    def clear_cooldowns(self, path: str = "") -> int:
        with self._lock:
            gone = [k for k in self._cooldowns if under(k, path)]
            for k in gone:
                del self._cooldowns[k]
            return len(gone)

    def set_spend(self, key: str, value: float, ttl: float, *, at_least: bool = False) -> float:
        with self._lock:
            total = max(self._spend_now(key), value) if at_least else value
            self._spend[key] = (total, self._clock() + ttl)
            return total

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._cooldowns.clear()
            self._rr.clear()
            self._values.clear()
            self._res.clear()
            self._leases.clear()


def under(key: str, path: str) -> bool:
    """Whether a cooldown key lies under a path: ``p/c/m`` is under ``""``, ``p`` and ``p/c``."""
    return not path or key == path or key.startswith(path + "/")


def _smooth_wrr(current: dict[str, float], members: Sequence[tuple[str, int]]) -> list[str]:
    """nginx's smooth weighted round-robin, one step; ``current`` is updated in place."""
    total = 0
    for name, weight in members:
        current[name] = current.get(name, 0) + weight
        total += weight
    best = max((name for name, _ in members), key=lambda n: current[n], default=None)
    if best is None:
        return []
    current[best] -= total
    rest = sorted((name for name, _ in members if name != best), key=lambda n: -current[n])
    return [best, *rest]
