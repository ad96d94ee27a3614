"""The dashboard's chart data: per-bucket totals, and the same split by model, provider, user and key.

The raw rows (today, days not rolled up yet; everything by hour for the 24 h window) are
read once, grouped by bucket x model x provider x user x key, and feed every split; the
rollups are summed per split by the database (one grouped query per dimension), so the
page gets a few hundred rows, not one per rollup row. Each split keeps the busiest ``TOP`` names of the
window and folds the rest into "other", so a chart stays readable with many keys.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour

from accounts.models import ApiKey, User

from . import queries

TOP = 6
DIMENSIONS = ("model", "provider", "user", "key")
SERIES = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")


def _sums() -> dict[str, Any]:
    return {"requests": Count("id"), "errors": Count("id", filter=Q(status_code__gte=400)),
            "prompt_tokens": Sum("prompt_tokens"), "completion_tokens": Sum("completion_tokens"),
            "cached_tokens": Sum("cached_tokens"), "cache_write_tokens": Sum("cache_write_tokens"),
            "reasoning_tokens": Sum("reasoning_tokens"),
            "cost_usd": Sum("cost_usd")}  # fmt: skip


def chart_data(since: datetime, buckets: int, hourly: bool, base: queries.UsageFilter | None = None,
               rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """JSON for the charts (bucket labels are ISO starts, UTC); ``base`` narrows the rows (a user, a key).

    ``rows``: the hourly rows (``hourly_rows``) when the caller has read them already.
    """
    base = base or queries.UsageFilter(since=since)
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    starts = [since + i * step for i in range(buckets)]
    index = {s: i for i, s in enumerate(starts)}
    totals = {m: [0.0] * buckets for m in SERIES}
    per_dim: dict[str, dict[Any, dict[str, list[float]]]] = {d: {} for d in DIMENSIONS}

    def add(row: dict[str, Any], dims: tuple[str, ...], total: bool) -> None:
        i = index.get(row["bucket"])
        if i is None:
            return
        values = [(m, float(row[m] or 0)) for m in SERIES]
        if total:
            for m, value in values:
                totals[m][i] += value
        for d in dims:
            acc = per_dim[d].get(row[d])
            if acc is None:
                acc = per_dim[d][row[d]] = {n: [0.0] * buckets for n in SERIES}
            for m, value in values:
                acc[m][i] += value

    if hourly:
        for row in hourly_rows(base) if rows is None else rows:
            add(row, DIMENSIONS, True)
    else:
        rolled = queries.rolled_days(base)
        for row in queries.raw_rows(base, ["day", *DIMENSIONS], rolled):  # the raw part: one query, every split
            add(_bucket(row), DIMENSIONS, True)
        for d in DIMENSIONS:  # the rollups: summed per split by the database
            for row in queries.rollup_rows(base, ["day", d], rolled):
                add(_bucket(row), (d,), d == "model")
    names = _names(per_dim)
    return {
        "buckets": [s.isoformat() for s in starts],
        "hourly": hourly,
        "totals": {m: [_tidy(v) for v in values] for m, values in totals.items()},
        "split": {d: _top(d, per_dim[d], names) for d in DIMENSIONS},
    }


def _bucket(row: dict[str, Any]) -> dict[str, Any]:
    row["bucket"] = datetime.combine(row["day"], time(0), tzinfo=UTC)
    return row


def hourly_rows(base: queries.UsageFilter, *extra: str) -> list[dict[str, Any]]:
    """Raw rows by hour x model x provider x user x key (x ``extra`` columns), summed."""
    qs = (
        queries.records(base)
        .order_by()
        .annotate(bucket=TruncHour("created_at", tzinfo=UTC))
        .values("bucket", "model", "provider", "user_id", "key_id", *extra)
        .annotate(**_sums())
    )
    out: list[dict[str, Any]] = []
    for found in qs:
        row: dict[str, Any] = dict(found)
        row["bucket"] = row["bucket"].astimezone(UTC)
        row["user"], row["key"] = row.pop("user_id"), row.pop("key_id")
        out.append(row)
    return out


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
