"""Limits: token buckets per provider and credential; key and user limits by reservation.

Upstream limits (``ProviderConfig.rpm/tpm`` for the whole provider, ``Credential.extra``
``rpm``/``tpm`` or the provider's ``options.credential_rpm/credential_tpm`` for each
account) make the router skip a candidate that is over, never fail it.

Key and user limits (``rpm``, ``tpm``, ``max_parallel``, ``budget_usd`` per calendar
``budget_period``) refuse the client's request with ``LimitExceeded`` (429, Retry-After,
a message naming the limit). ``Limiter.reserve`` takes the request's estimated tokens and
cost from every line in one atomic store step (one Lua script on Redis), ``settle`` turns
the hold into the real cost, ``release`` gives it back after a failure; while the request
runs, a timer renews its hold every third of ``limits.reservation_ttl`` so a request
longer than the TTL keeps it (a dead process stops renewing, and its holds expire). Spend counters
are named by the holder and the period's start (``periods``), so a new period is a new
counter; the snapshot's settled spend (from the usage records) is each counter's floor,
which is how counters come back after Redis lost them, without counting anything twice.

When the store cannot answer, ``limits.on_store_error`` decides: rate limits are let
through (``open``) and budgets refused (``closed``) unless configured otherwise; each
case is logged and counted (``Limiter.store_errors``, shown in /metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import LimitExceeded, LLMProxyError
from .periods import NOUNS, PeriodClock, zone
from .reservations import BUDGET, BUDGET_HELD, PARALLEL, RPM, Denial, Hold, Line
from .runtime import ApiKeyInfo, LimitSettings
from .state import Bucket, StateStore, StoreError

log = logging.getLogger("llmproxy.limits")


def _limit(*values: Any) -> int | None:
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return int(v)
    return None


def candidate_costs(route_provider: Any, credential: Any, tokens: int) -> list[tuple[Bucket, float]]:
    """The upstream buckets one attempt takes from: provider-wide, then this credential's."""
    p, c = route_provider, credential
    ckey = f"c:{p.name}/{c.name}"
    costs: list[tuple[Bucket, float]] = []
    if p.rpm:
        costs.append((Bucket.per_minute(f"p:{p.name}:rpm", p.rpm), 1.0))
    if p.tpm:
        costs.append((Bucket.per_minute(f"p:{p.name}:tpm", p.tpm), float(tokens)))
    rpm = _limit(c.extra.get("rpm"), p.options.get("credential_rpm"))
    tpm = _limit(c.extra.get("tpm"), p.options.get("credential_tpm"))
    if rpm:
        costs.append((Bucket.per_minute(f"{ckey}:rpm", rpm), 1.0))
    if tpm:
        costs.append((Bucket.per_minute(f"{ckey}:tpm", tpm), float(tokens)))
    return costs


def tpm_buckets(costs: list[tuple[Bucket, float]]) -> list[Bucket]:
    return [b for b, _ in costs if b.key.endswith(":tpm")]


def estimate_tokens(body: bytes) -> int:
    """A cheap prompt-size guess for TPM (about four bytes of JSON per token)."""
    return max(1, len(body) // 4)


def _usd(amount: float) -> str:
    """Cents as ``5.00``; a budget below a cent keeps its digits (``0.001``, not ``0.00``)."""
    cents = f"{amount:.2f}"
    return cents if abs(float(cents) - amount) < 1e-9 else f"{amount:.4f}".rstrip("0")


@dataclass(slots=True, weakref_slot=True)
class Reservation:
    """What ``reserve`` took for one request; settle or release it exactly once."""

    hold: Hold | None
    done: bool = False
    #: The next renewal of the hold (``Limiter.renew``), cancelled when it is settled.
    timer: asyncio.TimerHandle | None = None


class Limiter:
    """Key and user limits by reservation on the shared store."""

    def __init__(
        self, store: StateStore, *, clock: Callable[[], float] = time.time, settings: LimitSettings | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings or LimitSettings()
        self.periods = PeriodClock(zone(self.settings.time_zone))
        #: ``(kind, outcome)`` -> count, e.g. ``("budget", "refused")``; /metrics shows them.
        self.store_errors: Counter[tuple[str, str]] = Counter()
        self._warned_at = 0.0
        self._renewals: set[asyncio.Task[None]] = set()

    def configure(self, settings: LimitSettings) -> None:
        if settings != self.settings:
            self.settings = settings
            self.periods = PeriodClock(zone(settings.time_zone))

    def lines(self, key: ApiKeyInfo | None, now: float) -> tuple[Line, ...]:
        """The holders a request of ``key`` counts against: the key, then its user."""
        if key is None or key.id is None:
            return ()
        out = [self._line(f"k:{key.id}", key.rpm, key.tpm, key.max_parallel, key.budget_usd, key.budget_period,
                          key.spent_usd, key.spent_period_start, now, key.period_started_at)]  # fmt: skip
        u = key.user
        if u is not None:
            out.append(self._line(f"u:{u.id}", u.rpm, u.tpm, u.max_parallel, u.budget_usd, u.budget_period,
                                  u.spent_usd, u.spent_period_start, now, u.period_started_at))  # fmt: skip
        return tuple(out)

    def period_start(self, period: str, now: float, reset_at: float | None = None) -> tuple[float, float | None]:
        """The current period's ``(start, end)``: the calendar's, or a later manual reset's start."""
        start, end = self.periods.bounds(period, now)
        if reset_at is not None and start < reset_at <= now:
            start = reset_at
        return start, end

    def _line(
        self, scope: str, rpm: int | None, tpm: int | None, par: int | None, budget: float | None, period: str,
        spent: float, spent_start: float | None, now: float, reset_at: float | None = None,
    ) -> Line:  # fmt: skip
        start, end = self.period_start(period, now, reset_at)
        floor = spent if int(spent_start or 0.0) == int(start) else 0.0
        ttl = (end - now) + 2 * 86400 if end is not None else 400 * 86400.0
        return Line(scope, rpm or None, tpm or None, par if par is not None and par >= 0 else None, budget,
                    f"{scope}:{int(start)}", floor, ttl, period)  # fmt: skip

    def spend_key(self, scope: str, period: str, now: float | None = None, reset_at: float | None = None) -> str:
        """The counter of a holder's current period (``k:7:<start>``), for the API and jobs."""
        start, _ = self.period_start(period, self.clock() if now is None else now, reset_at)
        return f"{scope}:{int(start)}"

    def wants_cost(self, key: ApiKeyInfo | None) -> bool:
        """Whether a budget applies (only then is a precise cost estimate worth its time)."""
        return key is not None and (key.budget_usd is not None or (key.user is not None
                                                                    and key.user.budget_usd is not None))  # fmt: skip

    async def reserve(
        self, key: ApiKeyInfo | None, *, tokens: int, cost: float = 0.0, request_id: str = ""
    ) -> Reservation:
        """Hold ``tokens`` and ``cost`` on every line of ``key``, or raise ``LimitExceeded``."""
        now = self.clock()
        lines = self.lines(key, now)
        if not lines:
            return Reservation(None)
        hold = Hold(request_id or uuid.uuid4().hex, lines, max(0, tokens), max(0.0, cost),
                    self.settings.reservation_ttl)  # fmt: skip
        try:
            denial = await self.store.reserve(hold, now)
        except StoreError as exc:
            return self._store_down(hold, exc)
        if denial is not None:
            raise self._refusal(hold.lines[denial.line], denial, now)
        res = Reservation(hold)
        if any(line.max_parallel is not None or line.budget_usd is not None for line in lines):
            self._schedule(res, weakref.ref(res))  # only these count holds; RPM and TPM do not
        return res

    def _schedule(self, res: Reservation, ref: weakref.ref[Reservation]) -> None:
        """Renew the hold after a third of its TTL, from a timer: nothing runs per chunk.

        The timer holds the reservation weakly, so a request dropped without settling stops
        renewing (and its hold expires) once the reservation is gone; a dead process's
        timers die with it."""
        assert res.hold is not None
        loop = asyncio.get_running_loop()
        res.timer = loop.call_later(res.hold.ttl / 3, self._renew_due, ref)

    def _renew_due(self, ref: weakref.ref[Reservation]) -> None:
        task = asyncio.ensure_future(self._renew_and_reschedule(ref))
        self._renewals.add(task)
        task.add_done_callback(self._renewals.discard)

    async def _renew_and_reschedule(self, ref: weakref.ref[Reservation]) -> None:
        res = ref()
        if res is None or res.done:
            return
        if await self.renew(res) and not res.done:
            self._schedule(res, ref)

    async def renew(self, res: Reservation) -> bool:
        """Extend a running request's hold by ``reservation_ttl`` from now (one store call).

        True while the hold is still worth renewing: it is live, or the store could not be
        reached this time (the next try may reach it before the hold expires)."""
        if res.done or res.hold is None:
            return False
        try:
            return await self.store.renew(res.hold, self.clock()) > 0
        except StoreError as exc:
            self.store_errors[("renew", "failed")] += 1
            log.warning("limits store unavailable, hold of %s not renewed: %s", res.hold.request_id, exc)
            return True

    def _store_down(self, hold: Hold, exc: StoreError) -> Reservation:
        budgets = any(line.budget_usd is not None for line in hold.lines)
        rates = any(line.rpm or line.tpm or line.max_parallel for line in hold.lines)
        s = self.settings
        refuse = (budgets and s.budgets_on_store_error == "closed") or (
            rates and s.rate_limits_on_store_error == "closed"
        )
        kind = "budget" if budgets else "rate_limit" if rates else "spend"
        self.store_errors[(kind, "refused" if refuse else "admitted")] += 1
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            log.warning("limits store unavailable (%s): %s requests under %s limits", exc,
                        "refusing" if refuse else "admitting", kind)  # fmt: skip
        if refuse:
            raise LLMProxyError("the limits store is unavailable, so this key's limits cannot be checked; retry shortly",
                                status=503, code="limits_unavailable", retry_after=1.0)  # fmt: skip
        return Reservation(None)

    def _refusal(self, line: Line, denial: Denial, now: float) -> LimitExceeded:
        who = "key" if line.scope.startswith("k:") else "user"
        if denial.kind in (BUDGET, BUDGET_HELD):
            period = line.period
            per = f" per {NOUNS[period]}" if period in NOUNS else ""
            text = f"{who} budget of {_usd(line.budget_usd or 0.0)} USD{per}"
            if denial.kind == BUDGET_HELD:
                return LimitExceeded(f"{text} is taken up by requests in flight; retry when they finish",
                                     code="budget_exceeded", retry_after=1.0)  # fmt: skip
            end = self.periods.bounds(period, now)[1]
            return LimitExceeded(f"{text} reached", code="budget_exceeded",
                                 retry_after=max(1.0, end - now) if end is not None else None)  # fmt: skip
        if denial.kind == PARALLEL:
            return LimitExceeded(f"{who} limit of {line.max_parallel} parallel requests reached", retry_after=1.0)
        what = f"{line.rpm} requests" if denial.kind == RPM else f"{line.tpm} tokens"
        return LimitExceeded(f"{who} rate limit of {what} per minute reached", retry_after=max(denial.wait, 0.001))

    async def settle(self, res: Reservation, *, tokens: int, cost: float | None) -> None:
        """Turn a hold into what the request really used (TPM and spend); idempotent."""
        if res.timer is not None:
            res.timer.cancel()
            res.timer = None
        if res.done or res.hold is None:
            res.done = True
            return
        res.done = True
        try:
            await self.store.settle(res.hold, max(0, tokens), max(0.0, cost or 0.0), self.clock())
        except StoreError as exc:
            self.store_errors[("settle", "lost")] += 1
            log.warning("limits store unavailable, usage of %s not charged: %s", res.hold.request_id, exc)

    async def release(self, res: Reservation) -> None:
        """Give a hold back after a failure: no spend, and its tokens refunded."""
        await self.settle(res, tokens=0, cost=0.0)
