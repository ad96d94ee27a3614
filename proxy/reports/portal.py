"""What a member's portal shows: usage as a chart and a table (filtered), keys, budgets and limits.

A member sees their own; staff may look at any user's (``?user=NAME``). Filters are the
date range (whole UTC days, at most ``MAX_DAYS``), a model and a key; the CSV link carries
the same filters to the management API's streaming export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.http import QueryDict
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.periods import period_resets_at

from . import queries
from .charts import chart_data

DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(slots=True)
class Filters:
    since: date
    until: date  # inclusive
    model: str = ""
    key_id: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1


@dataclass(slots=True)
class Limits:
    """One key's or the user's own limits and budget, with this period's spend."""

    label: str
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget_usd: Decimal | None
    period: str
    spend: Decimal
    resets_at: datetime | None
    revoked: bool = False

    @property
    def remaining(self) -> Decimal | None:
        return None if self.budget_usd is None else max(self.budget_usd - self.spend, Decimal(0))

    @property
    def used_percent(self) -> str:
        if not self.budget_usd:
            return "0"
        return f"{min(100.0, float(100 * self.spend / self.budget_usd)):.1f}"


def parse_filters(params: QueryDict, today: date | None = None) -> Filters:
    """The filters from the query string; a bad value is reported and the default used."""
    today = today or timezone.now().astimezone(UTC).date()
    errors: list[str] = []
    until = _date(params.get("until"), today, "until", errors)
    since = _date(params.get("since"), until - timedelta(days=DEFAULT_DAYS - 1), "since", errors)
    if since > until:
        errors.append("'since' is after 'until': showing the default range")
        since, until = today - timedelta(days=DEFAULT_DAYS - 1), today
    if (until - since).days >= MAX_DAYS:
        errors.append(f"at most {MAX_DAYS} days at a time")
        since = until - timedelta(days=MAX_DAYS - 1)
    key_id = None
    if params.get("key"):
        try:
            key_id = int(params.get("key", ""))
        except ValueError:
            errors.append("'key' must be a key id")
    return Filters(since, until, (params.get("model") or "").strip()[:200], key_id, errors)


def _date(raw: str | None, default: date, name: str, errors: list[str]) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"'{name}' must be a date (YYYY-MM-DD)")
        return default


def usage(user: User, f: Filters) -> dict[str, Any]:
    """Chart data (daily), the table (day x model x key) and totals for the user and filters."""
    since = datetime.combine(f.since, time(0), tzinfo=UTC)
    until = datetime.combine(f.until + timedelta(days=1), time(0), tzinfo=UTC)
    uf = queries.UsageFilter(user_id=user.pk, model=f.model or None, key_id=f.key_id, since=since, until=until)
    rows = queries.summary(uf, ["day", "key", "model"])
    totals = {m: sum(r[m] for r in rows) for m in queries.METRICS}
    charts = chart_data(since, f.days, False, base=uf)
    models = sorted({r["model"] for r in rows if r["model"]} | ({f.model} if f.model else set()))
    return {"rows": list(reversed(rows)), "totals": totals, "charts": charts, "models": models}


def csv_url(user: User, f: Filters, viewer: User) -> str:
    params: dict[str, str] = {"since": f.since.isoformat(), "until": (f.until + timedelta(days=1)).isoformat()}
    if viewer.pk != user.pk:
        params["user"] = str(user.pk)
    if f.model:
        params["model"] = f.model
    if f.key_id is not None:
        params["key"] = str(f.key_id)
    return "/api/v1/usage/export?" + urlencode(params)


def limits(user: User, now: datetime | None = None) -> list[Limits]:
    """The user's own limits first, then each key's (revoked keys last)."""
    now = now or timezone.now()
    out = [_limits("you (all your keys)", user, now)]
    for key in ApiKey.objects.filter(user=user).order_by("revoked", "-created_at"):
        out.append(_limits(key.name or f"{key.prefix}…", key, now, revoked=key.revoked))
    return out


def _limits(label: str, owner: ApiKey | User, now: datetime, *, revoked: bool = False) -> Limits:
    spend = queries.key_spend(owner, now) if owner.budget_usd is not None else Decimal(0)
    return Limits(label, owner.rpm, owner.tpm, owner.max_parallel, owner.budget_usd, owner.budget_period, spend,
                  period_resets_at(owner.budget_period, now), revoked)  # fmt: skip
