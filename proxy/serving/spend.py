"""Spend of a key or a user in its current budget period: settled (usage rows) and live.

``settled_spend`` sums the usage records since the period's start: the snapshot hands it
to the limiter as each counter's floor, and the reports and portal show it. ``live_spend``
is what the API and admin show as ``spend_usd``: the larger of that and the live counter
in the state store (which also holds what was charged but is not written yet).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from accounts.models import ApiKey, User
from accounts.periods import current_period_start
from llmproxy.state import StoreError
from proxy.models import UsageRecord

from . import current
from .state import make_state_store

log = logging.getLogger("llmproxy.limits")


def settled_spend(holder: ApiKey | User, now: datetime | None = None) -> Decimal:
    """USD the usage rows show for the key (or all of the user's keys) this period."""
    start = current_period_start(holder, now)
    qs = UsageRecord.objects.filter(user_id=holder.pk) if isinstance(holder, User) else (
        UsageRecord.objects.filter(key_id=holder.pk))  # fmt: skip
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    return Decimal(qs.aggregate(total=Sum("cost_usd"))["total"] or 0)


def counter_key(holder: ApiKey | User) -> str:
    """The live counter's name, as ``llmproxy.limits.Limiter`` names it."""
    scope = f"u:{holder.pk}" if isinstance(holder, User) else f"k:{holder.pk}"
    start = current_period_start(holder)
    return f"{scope}:{int(start.timestamp()) if start else 0}"


def live_spend(holders: Sequence[ApiKey | User]) -> list[Decimal]:
    """``spend_usd`` for each holder: max(settled, live counter); the counter is skipped if the store is down."""
    gw = current.gateway()
    store = gw.router.store if gw is not None else make_state_store()
    try:
        counters = store.spends([counter_key(h) for h in holders])
    except StoreError as exc:
        log.warning("limits store unavailable, showing settled spend only: %s", exc)
        counters = [0.0] * len(holders)
    return [max(settled_spend(h), Decimal(str(round(c, 6)))) for h, c in zip(holders, counters, strict=True)]


def seed_spend(key_id: int, usd: float) -> float:
    """Raise a key's live spend counter to at least ``usd``; never lowers it. The counter's value."""
    key = ApiKey.objects.get(pk=key_id)
    gw = current.gateway()
    store = gw.router.store if gw is not None else make_state_store()
    return store.set_spend(counter_key(key), float(usd), 40 * 86400.0, at_least=True)
