"""Limits: token buckets per provider and credential, per API key, and key budgets.

Upstream limits (``ProviderConfig.rpm/tpm`` for the whole provider, ``Credential.extra``
``rpm``/``tpm`` or the provider's ``options.credential_rpm/credential_tpm`` for each
account) make the router skip a candidate that is over, never fail it. Key limits
(``ApiKeyInfo.rpm/tpm``) and budgets refuse the client's request with ``LimitExceeded``
(429, Retry-After). Tokens are estimated before the call and corrected once the usage is
known, so a bucket ends up charged with what the upstream really counted.

Budgets: the spend of a key in its current period lives in the ``StateStore`` under
``spend_key(key)`` (the key id and the period start, so a new period starts a new counter
and nothing has to be zeroed). The snapshot's ``ApiKeyInfo.spent_usd`` (settled in the
database) is the counter's floor. A request is admitted while spend < budget, so the
requests in flight when the budget runs out may overshoot it by their own cost.
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import LimitExceeded
from .runtime import ApiKeyInfo
from .state import Bucket, StateStore, StoreError

log = logging.getLogger("llmproxy.limits")

_PERIOD_DAYS = {"daily": 1, "weekly": 7}
_PERIOD_NAMES = {"daily": "day", "weekly": "week", "monthly": "month"}


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


def period_end(period: str, started_at: float | None) -> float | None:
    if started_at is None or period not in ("daily", "weekly", "monthly"):
        return None
    if period in _PERIOD_DAYS:
        return started_at + _PERIOD_DAYS[period] * 86400.0
    start = datetime.fromtimestamp(started_at, tz=UTC)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day).timestamp()


def spend_key(key_id: int | None, period_started_at: float | None) -> str:
    return f"{key_id}:{int(period_started_at or 0)}"


def spend_ttl(period: str) -> float:
    """How long a spend counter is kept: its period and some slack (a year and more without one)."""
    days = {"daily": 1, "weekly": 7, "monthly": 31}.get(period, 400)
    return (days + 2) * 86400.0


class Limiter:
    """Key rate limits and budgets on the shared store; store trouble lets traffic through."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _key_costs(self, key: ApiKeyInfo, tokens: int) -> list[tuple[Bucket, float]]:
        costs: list[tuple[Bucket, float]] = []
        if key.rpm:
            costs.append((Bucket.per_minute(f"k:{key.id}:rpm", key.rpm), 1.0))
        if key.tpm:
            costs.append((Bucket.per_minute(f"k:{key.id}:tpm", key.tpm), float(tokens)))
        return costs

    async def admit(self, key: ApiKeyInfo | None, tokens: int) -> None:
        """Raise ``LimitExceeded`` when the key is over its budget or its RPM/TPM."""
        if key is None:
            return
        try:
            if key.budget_usd is not None:
                await self._check_budget(key)
            costs = self._key_costs(key, tokens)
            if costs:
                wait = await self.store.take(costs, self.clock())
                if wait > 0:
                    limits = [f"{key.rpm} requests" if key.rpm else "", f"{key.tpm} tokens" if key.tpm else ""]
                    raise LimitExceeded(
                        f"this API key's rate limit ({' / '.join(x for x in limits if x)} per minute) is reached",
                        retry_after=wait,
                    )
        except StoreError as exc:
            log.warning("limits store unavailable, admitting without key limits: %s", exc)

    async def _check_budget(self, key: ApiKeyInfo) -> None:
        assert key.budget_usd is not None
        spent = max(await self.store.spend(spend_key(key.id, key.period_started_at)), key.spent_usd)
        if spent < key.budget_usd:
            return
        end = period_end(key.budget_period, key.period_started_at)
        retry = max(1.0, end - self.clock()) if end is not None else None
        raise LimitExceeded(
            f"this API key has used its budget of ${key.budget_usd:.2f}"
            + (f" for this {_PERIOD_NAMES[key.budget_period]}" if end else ""),
            code="budget_exceeded",
            retry_after=retry,
        )

    async def settle(self, key: ApiKeyInfo | None, estimate: int, actual_tokens: int, cost: float | None) -> None:
        """Charge what the upstream really counted: correct the key's TPM, add the spend."""
        if key is None:
            return
        try:
            if key.tpm and actual_tokens:
                bucket = Bucket.per_minute(f"k:{key.id}:tpm", key.tpm)
                await self.store.debit(bucket, actual_tokens - estimate, self.clock())
            if cost and key.id is not None:
                await self.store.add_spend(
                    spend_key(key.id, key.period_started_at), cost, floor=key.spent_usd,
                    ttl=spend_ttl(key.budget_period),
                )  # fmt: skip
        except StoreError as exc:
            log.warning("limits store unavailable, usage not charged to key %s: %s", key.id, exc)
