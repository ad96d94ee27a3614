"""What a reservation is, and its semantics on one process's memory.

A request is admitted by one atomic step over every limit that applies to it (its key's
and its user's): RPM and TPM token buckets, a cap on requests in flight, and a budget.
The step either takes everything or nothing. A budget admits a request when its
estimated cost fits what is left after the settled spend and what requests in flight
hold, or when nothing is in flight and the settled spend is under the budget (so a small
budget is not unusable; the overshoot is at most that one request). Each hold carries an
expiry, so a process that dies mid-request gives its holds back by itself; a process
that is alive renews the holds of its long requests (``renew``) before they expire.

``RedisStateStore`` runs the same rules as one Lua script (``_reserve_lua``); a test
drives both with the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Kinds of refusal, in the order they are checked.
PARALLEL, BUDGET, BUDGET_HELD, RPM, TPM = "parallel", "budget", "budget_held", "rpm", "tpm"


@dataclass(frozen=True, slots=True)
class Line:
    """The limits of one holder (``k:<id>`` or ``u:<id>``) a request counts against."""

    scope: str
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    #: The spend counter of the current period, e.g. ``k:7:1767225600``.
    spend_key: str = ""
    #: Settled spend the database knows for this period: the counter never reads below it.
    floor: float = 0.0
    spend_ttl: float = 86400.0
    period: str = "none"


@dataclass(frozen=True, slots=True)
class Hold:
    """One request's claim: ``tokens`` (TPM) and ``cost`` (USD) on every line."""

    request_id: str
    lines: tuple[Line, ...]
    tokens: int
    cost: float
    ttl: float


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a hold was refused: which line, which kind, seconds until it may fit."""

    line: int
    kind: str
    wait: float
    spent: float = 0.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    ts: float


def _level(b: _Bucket | None, cap: float, now: float) -> float:
    if b is None:
        return cap
    return min(cap, b.tokens + max(0.0, now - b.ts) * cap / 60.0)


def _bucket_wait(level: float, cap: float, cost: float) -> float:
    need = min(cost, cap)
    return 0.0 if level >= need else (need - level) * 60.0 / cap


@dataclass(slots=True)
class _Holder:
    holds: dict[str, tuple[float, float]] = field(default_factory=dict)  # request id -> (cost, expires)
    held: float = 0.0

    def sweep(self, now: float) -> None:
        gone = [rid for rid, (_, exp) in self.holds.items() if exp <= now]
        for rid in gone:
            self.held -= self.holds.pop(rid)[0]
        if not self.holds:
            self.held = 0.0


class MemoryReservations:
    """The reservation state of one process; the caller holds the lock."""

    def __init__(self) -> None:
        self.buckets: dict[str, _Bucket] = {}
        self.holders: dict[str, _Holder] = {}
        self.spend: dict[str, tuple[float, float]] = {}  # key -> (usd, expires)

    def spent(self, key: str, now: float) -> float:
        entry = self.spend.get(key)
        return entry[0] if entry is not None and entry[1] > now else 0.0

    def reserve(self, hold: Hold, now: float) -> Denial | None:
        plans: list[tuple[str, float, float, float]] = []  # bucket key, cap, level, cost
        for i, line in enumerate(hold.lines):
            holder = self.holders.setdefault(line.scope, _Holder())
            holder.sweep(now)
            if line.max_parallel is not None and len(holder.holds) >= line.max_parallel:
                return Denial(i, PARALLEL, 1.0)
            if line.budget_usd is not None:
                spent = max(self.spent(line.spend_key, now), line.floor)
                if spent >= line.budget_usd:
                    return Denial(i, BUDGET, 0.0, spent)
                if holder.holds and spent + holder.held + hold.cost > line.budget_usd:
                    return Denial(i, BUDGET_HELD, 1.0, spent)
            for kind, cap, cost in ((RPM, line.rpm, 1.0), (TPM, line.tpm, float(hold.tokens))):
                if cap:
                    key = f"{line.scope}:{kind}"
                    level = _level(self.buckets.get(key), float(cap), now)
                    wait = _bucket_wait(level, float(cap), cost)
                    if wait > 0:
                        return Denial(i, kind, wait)
                    plans.append((key, float(cap), level, cost))
        for key, _, level, cost in plans:
            self.buckets[key] = _Bucket(level - cost, now)
        for line in hold.lines:
            holder = self.holders[line.scope]
            if hold.request_id not in holder.holds:
                holder.held += hold.cost
            holder.holds[hold.request_id] = (hold.cost, now + hold.ttl)
        return None

    def renew(self, hold: Hold, now: float) -> int:
        """Push the expiry of a live hold to ``now + ttl`` on every line; how many lines held it.

        A hold that already expired (or was settled) is not brought back: that would admit
        it again without any check."""
        renewed = 0
        for line in hold.lines:
            holder = self.holders.get(line.scope)
            entry = holder.holds.get(hold.request_id) if holder is not None else None
            if holder is not None and entry is not None and entry[1] > now:
                holder.holds[hold.request_id] = (entry[0], now + hold.ttl)
                renewed += 1
        return renewed

    def settle(self, hold: Hold, tokens: int, cost: float, now: float) -> None:
        for line in hold.lines:
            holder = self.holders.get(line.scope)
            if holder is not None and hold.request_id in holder.holds:
                holder.held -= holder.holds.pop(hold.request_id)[0]
                if not holder.holds:
                    holder.held = 0.0
            if line.tpm and tokens != hold.tokens:
                key = f"{line.scope}:{TPM}"
                level = _level(self.buckets.get(key), float(line.tpm), now)
                self.buckets[key] = _Bucket(min(float(line.tpm), level - (tokens - hold.tokens)), now)
            if cost > 0 and line.spend_key:
                total = max(self.spent(line.spend_key, now), line.floor) + cost
                self.spend[line.spend_key] = (total, now + line.spend_ttl)

    def in_flight(self, scope: str, now: float) -> int:
        holder = self.holders.get(scope)
        if holder is None:
            return 0
        holder.sweep(now)
        return len(holder.holds)

    def clear(self) -> None:
        self.buckets.clear()
        self.holders.clear()
        self.spend.clear()
