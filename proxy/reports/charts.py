"""The dashboard's chart data: per-bucket totals, and the same split by model, provider, user and key.

One query feeds every split: rows grouped by bucket x model x provider x user x key
(the daily rollups' own grain, plus today's raw rows; raw rows by hour for the 24 h
window), summed per dimension here. Each split keeps the busiest ``TOP`` names of the
window and folds the rest into "other", so a chart stays readable with many keys.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour

from accounts.models import ApiKey, User

from . import queries

TOP = 6
DIMENSIONS = ("model", "provider", "user", "key")
SERIES = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")
_SUMS = {"requests": Count("id"), "errors": Count("id", filter=Q(status_code__gte=400)),
         "prompt_tokens": Sum("prompt_tokens"), "completion_tokens": Sum("completion_tokens"),
         "cost_usd": Sum("cost_usd")}  # fmt: skip


def _sums() -> dict[str, Any]:
    return {"requests": Count("id"), "errors": Count("id", filter=Q(status_code__gte=400)),
            "prompt_tokens": Sum("prompt_tokens"), "completion_tokens": Sum("completion_tokens"),
            "cost_usd": Sum("cost_usd")}  # fmt: skip


_DIM_FIELD = {"model": "model", "provider": "provider", "user": "user_id", "key": "key_id"}


def chart_data(since: datetime, buckets: int, hourly: bool, base: queries.UsageFilter | None = None) -> dict[str, Any]:
    """JSON for the charts (bucket labels are ISO starts, UTC); ``base`` narrows the rows (a user, a key)."""
    base = base or queries.UsageFilter(since=since)
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    starts = [since + i * step for i in range(buckets)]
    index = {s: i for i, s in enumerate(starts)}
    rows = _hourly_rows(base) if hourly else _daily_rows(base)
    totals = {m: [0.0] * buckets for m in SERIES}
    per_dim: dict[str, dict[Any, dict[str, list[float]]]] = {d: {} for d in DIMENSIONS}
    for row in rows:
        i = index.get(row["bucket"])
        if i is None:
            continue
        for m in SERIES:
            totals[m][i] += float(row[m] or 0)
        for d in DIMENSIONS:
            acc = per_dim[d].setdefault(row[_DIM_FIELD[d]], {m: [0.0] * buckets for m in SERIES})
            for m in SERIES:
                acc[m][i] += float(row[m] or 0)
    names = _names(per_dim)
    return {
        "buckets": [s.isoformat() for s in starts],
        "hourly": hourly,
        "totals": {m: [_tidy(v) for v in values] for m, values in totals.items()},
        "split": {d: _top(d, per_dim[d], names) for d in DIMENSIONS},
    }


def _hourly_rows(base: queries.UsageFilter) -> list[dict[str, Any]]:
    qs = (
        queries.records(base)
        .order_by()
        .annotate(bucket=TruncHour("created_at", tzinfo=UTC))
        .values("bucket", "model", "provider", "user_id", "key_id")
        .annotate(**_sums())
    )
    out: list[dict[str, Any]] = []
    for found in qs:
        row: dict[str, Any] = dict(found)
        row["bucket"] = row["bucket"].astimezone(UTC)
        out.append(row)
    return out


def _daily_rows(base: queries.UsageFilter) -> list[dict[str, Any]]:
    rows = queries.summary(base, ["day", "user", "key", "model", "provider"])
    for row in rows:
        row["bucket"] = datetime.combine(date.fromisoformat(row["day"]), time(0), tzinfo=UTC)
    return rows


def _names(per_dim: dict[str, dict[Any, Any]]) -> dict[str, dict[Any, str]]:
    users = dict(User.objects.filter(pk__in=[k for k in per_dim["user"] if k]).values_list("pk", "username"))
    keys = {pk: f"{name or prefix} ({prefix}…)" if name else f"{prefix}…"
            for pk, prefix, name in ApiKey.objects.filter(pk__in=[k for k in per_dim["key"] if k])
            .values_list("pk", "prefix", "name")}  # fmt: skip
    return {"user": {k: users.get(k, f"#{k}") for k in per_dim["user"] if k},
            "key": {k: keys.get(k, f"#{k}") for k in per_dim["key"] if k}}  # fmt: skip


def _top(dim: str, found: dict[Any, dict[str, list[float]]], names: dict[str, dict[Any, str]]) -> list[dict[str, Any]]:
    ranked = sorted(found.items(), key=lambda kv: (-sum(kv[1]["requests"]), str(kv[0])))
    out = []
    for key, series in ranked[:TOP]:
        label = names.get(dim, {}).get(key) if dim in names else key
        out.append({"name": label or "(none)", **{m: [_tidy(v) for v in series[m]] for m in SERIES}})
    rest = ranked[TOP:]
    if rest:
        other: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(ranked[0][1]["requests"]))
        for _, series in rest:
            for m in SERIES:
                other[m] = [a + b for a, b in zip(other[m], series[m], strict=True)]
        out.append({"name": f"{len(rest)} other", **{m: [_tidy(v) for v in other[m]] for m in SERIES}})
    return out


def _tidy(value: float) -> float | int:
    """Whole numbers as ints, costs rounded: smaller JSON, no float noise in tooltips."""
    return int(value) if value == int(value) else round(value, 8)
