"""Report queries over usage: filtered records, grouped summaries, CSV rows, a key's budget spend.

Summaries read ``UsageDaily`` rollups for whole past days that have been rolled up, and
the raw ``UsageRecord`` rows for everything else (today, days not rolled up yet, partial
days at the edges of the requested range). A day counts as rolled up when any rollup
row exists for it: the rollup job writes a day's rows in one go.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import ApiKey, User
from proxy.models import UsageDaily, UsageRecord
from proxy.serving.spend import settled_spend

#: The usage record fields of the external contract (INTERFACE.md section 4), in order.
USAGE_FIELDS = ("request_id", "created_at", "user", "key_prefix", "ingress", "model", "upstream_model", "provider",
                "credential", "stream", "status_code", "error_type", "prompt_tokens", "completion_tokens",
                "cached_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "ttfb_ms", "attempts", "overrides")  # fmt: skip
#: ``credential`` groups by provider and credential name (credential names repeat across providers).
GROUPS = ("day", "user", "key", "model", "provider", "credential")
#: ``cached_tokens``: prompt-cache reads; ``cache_write_tokens``: prompt-cache writes.
METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
           "reasoning_tokens", "cost_usd")  # fmt: skip
_RAW_DIM = {"day": "day", "user": "user_id", "key": "key_id", "model": "model", "provider": "provider",
            "credential": "credential"}  # fmt: skip


@dataclass(slots=True)
class UsageFilter:
    user_id: int | None = None
    username: str | None = None
    key_id: int | None = None
    key_prefix: str | None = None
    model: str | None = None
    provider: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    status_code: int | None = None


def records(f: UsageFilter) -> QuerySet[UsageRecord]:
    """Usage rows matching the filter, newest first."""
    qs = UsageRecord.objects.select_related("user").order_by("-created_at", "-id")
    q = Q()
    if f.user_id is not None:
        q &= Q(user_id=f.user_id)
    if f.username:
        q &= Q(user__username=f.username)
    if f.key_id is not None:
        q &= Q(key_id=f.key_id)
    if f.key_prefix:
        q &= Q(key_prefix=f.key_prefix)
    if f.model:
        q &= Q(model=f.model)
    if f.provider:
        q &= Q(provider=f.provider)
    if f.since is not None:
        q &= Q(created_at__gte=f.since)
    if f.until is not None:
        q &= Q(created_at__lt=f.until)
    if f.status_code is not None:
        q &= Q(status_code=f.status_code)
    return qs.filter(q)


def summary(f: UsageFilter, group_by: Sequence[str], *, today: date | None = None) -> list[dict[str, Any]]:
    """Totals grouped by any of ``GROUPS``, merged from rollups and raw rows."""
    if "credential" in group_by and "provider" not in group_by:
        group_by = [*group_by, "provider"]
    dims = [g for g in GROUPS if g in group_by]
    today = today or timezone.now().astimezone(UTC).date()
    # Rollups carry no credential: per-credential totals come from the raw rows (retention).
    rolled = _rolled_days(f, today) if f.status_code is None and "credential" not in dims else []
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in [*_raw_rows(f, dims, rolled), *_rollup_rows(f, dims, rolled)]:
        key = tuple(row[d] for d in dims)
        acc = totals.setdefault(key, {**{d: row[d] for d in dims}, **dict.fromkeys(METRICS, 0)})
        for m in METRICS:
            acc[m] += row[m] or 0
    out = sorted(totals.values(), key=lambda r: tuple(_sortable(r[d]) for d in dims))
    _label(out, dims)
    for r in out:
        r["cost_usd"] = float(r["cost_usd"])
        if "day" in r:
            r["day"] = r["day"].isoformat()
    return out


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def _rolled_days(f: UsageFilter, today: date) -> list[date]:
    """Past days wholly inside the range that the rollup job has written."""
    if f.username or f.key_prefix:
        return []  # rollups carry ids only; these filters need the raw rows
    qs = UsageDaily.objects.filter(day__lt=today)
    if f.since is not None:
        first = f.since.astimezone(UTC)
        qs = qs.filter(day__gte=first.date() if first.time() == time(0) else first.date() + timedelta(days=1))
    if f.until is not None:
        qs = qs.filter(day__lt=f.until.astimezone(UTC).date())
    return sorted(set(qs.values_list("day", flat=True).distinct()))


def _raw_rows(f: UsageFilter, dims: list[str], rolled: list[date]) -> Iterator[dict[str, Any]]:
    qs = records(f).order_by().annotate(day=TruncDate("created_at", tzinfo=UTC))
    if rolled:
        qs = qs.exclude(day__in=rolled)
    values = qs.values(*[_RAW_DIM[d] for d in dims]).annotate(
        requests=Count("id"),
        errors=Count("id", filter=Q(status_code__gte=400)),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        cached_tokens=Sum("cached_tokens"),
        cache_write_tokens=Sum("cache_write_tokens"),
        reasoning_tokens=Sum("reasoning_tokens"),
        cost_usd=Sum("cost_usd"),
    )
    for row in values:
        yield {**{d: row[_RAW_DIM[d]] for d in dims}, **{m: row[m] for m in METRICS}}


def _rollup_rows(f: UsageFilter, dims: list[str], rolled: list[date]) -> Iterator[dict[str, Any]]:
    if not rolled:
        return
    qs = UsageDaily.objects.filter(day__in=rolled)
    if f.user_id is not None:
        qs = qs.filter(user_id=f.user_id)
    if f.key_id is not None:
        qs = qs.filter(key_id=f.key_id)
    if f.model:
        qs = qs.filter(model=f.model)
    if f.provider:
        qs = qs.filter(provider=f.provider)
    values = qs.order_by().values(*[_RAW_DIM[d] for d in dims]).annotate(**{m: Sum(m) for m in METRICS})
    for row in values:
        out = {d: row[_RAW_DIM[d]] for d in dims}
        for d in ("user", "key"):
            if d in out and not out[d]:
                out[d] = None  # rollups store "none" as 0
        yield {**out, **{m: row[m] for m in METRICS}}


def _label(rows: list[dict[str, Any]], dims: list[str]) -> None:
    """Turn user and key ids into ``user_id``/``username`` and ``key_id``/``key_prefix``/``key_name``."""
    if "user" in dims:
        ids = {r["user"] for r in rows if r["user"] is not None}
        names = dict(User.objects.filter(pk__in=ids).values_list("pk", "username"))
        for r in rows:
            uid = r.pop("user")
            r["user_id"], r["username"] = uid, names.get(uid)
    if "key" in dims:
        ids = {r["key"] for r in rows if r["key"] is not None}
        keys = {k["pk"]: k for k in ApiKey.objects.filter(pk__in=ids).values("pk", "prefix", "name")}
        for r in rows:
            kid = r.pop("key")
            info: dict[str, Any] = dict(keys.get(kid, {}))
            r["key_id"], r["key_prefix"], r["key_name"] = kid, info.get("prefix"), info.get("name")


def record_row(rec: UsageRecord, *, staff: bool = False) -> dict[str, Any]:
    """One usage record as the API and the CSV show it; ``error_detail`` (upstream words) for staff only."""
    row = {
        "id": rec.pk,
        "request_id": rec.request_id,
        "created_at": rec.created_at,
        "user": rec.user.username if rec.user_id and rec.user else None,
        "user_id": rec.user_id,
        "key_id": rec.key_id,
        "key_prefix": rec.key_prefix,
        "ingress": rec.ingress,
        "model": rec.model,
        "upstream_model": rec.upstream_model,
        "provider": rec.provider,
        "credential": rec.credential,
        "stream": rec.stream,
        "status_code": rec.status_code,
        "error_type": rec.error_type,
        "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens,
        "cached_tokens": rec.cached_tokens,
        "cache_write_tokens": rec.cache_write_tokens,
        "reasoning_tokens": rec.reasoning_tokens,
        "cost_usd": None if rec.cost_usd is None else float(rec.cost_usd),
        "latency_ms": rec.latency_ms,
        "ttfb_ms": rec.ttfb_ms,
        "attempts": rec.attempts,
        "overrides": rec.overrides if isinstance(rec.overrides, dict) else {},
    }
    if staff:
        row["error_detail"] = rec.error_detail
    return row


class _Echo:
    """A file-like object whose ``write`` hands the line back (for streaming CSV)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(qs: QuerySet[UsageRecord], *, staff: bool = False) -> Iterator[str]:
    """The CSV export: a header of ``USAGE_FIELDS`` (plus ``error_detail`` for staff), then one line per record."""
    writer = csv.writer(_Echo())
    names = (*USAGE_FIELDS, "error_detail") if staff else USAGE_FIELDS
    yield writer.writerow(names)
    for rec in qs.iterator(chunk_size=2000):
        row = record_row(rec, staff=staff)
        yield writer.writerow([_csv_value(row[name]) for name in names])


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):  # the overrides used: compact JSON, empty when none
        return json.dumps(value, separators=(",", ":"), sort_keys=True) if value else ""
    return str(value)


def key_spend(key: ApiKey | User, now: datetime | None = None) -> Decimal:
    """USD spent by the key (or all of a user's keys) in its current budget period, from the usage rows."""
    return settled_spend(key, now)
