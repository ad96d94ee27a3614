"""The dashboard's chart data: per-bucket totals, and the same split by model, provider, user and key.

A window is read once (``window_rows``): the rollups of its rolled-up periods (days, or
hours for the 24 h window) at their own grain, bucket x model x provider x user x key, and
the raw rows of the rest (the last minutes, periods not rolled up yet) grouped the same
way; one pass in Python (``accumulate``) sums them per bucket and per split, and the
dashboard's totals and tables come from the same sums. Each split keeps the busiest
``TOP`` names of the window and folds the rest into "other", so a chart stays readable
with many keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import add
from typing import Any

from django.db.models import Count, F, FloatField, Q, Sum, Value
from django.db.models.functions import Cast, Coalesce

from accounts.models import ApiKey, User

from . import grains, queries

TOP = 6
DIMENSIONS = ("model", "provider", "user", "key")
SERIES = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")


def _sums() -> dict[str, Any]:
    return {"requests": Count("id"), "errors": Count("id", filter=Q(status_code__gte=400)),
            "prompt_tokens": Sum("prompt_tokens"), "completion_tokens": Sum("completion_tokens"),
            "cached_tokens": Sum("cached_tokens"), "cache_write_tokens": Sum("cache_write_tokens"),
            "reasoning_tokens": Sum("reasoning_tokens"),
            "cost_usd": Sum("cost_usd")}  # fmt: skip


def _numbers() -> dict[str, Any]:
    """``_sums`` as plain numbers: no NULL (an empty sum), cost as a float (no ``Decimal`` per row in Python)."""
    return {name: Cast(Coalesce(agg, Value(0)), FloatField()) if name == "cost_usd" else Coalesce(agg, Value(0))
            for name, agg in _sums().items()}  # fmt: skip


@dataclass(slots=True)
class Sums:
    """A window's rows summed once: per bucket, and per bucket for each name of each split.

    Each series holds every one of ``queries.METRICS`` (the charts show ``SERIES``; the
    dashboard's totals and its model and provider tables are the series summed).
    """

    starts: list[datetime]
    totals: list[list[float]]  # [metric][bucket]
    per_dim: dict[str, dict[Any, list[list[float]]]]  # dim -> name -> [metric][bucket]

    def total(self, series: list[list[float]] | None = None) -> list[float]:
        """Each metric of ``series`` (default: the window's) over the whole window."""
        return [sum(values) for values in (self.totals if series is None else series)]


def window_rows(base: queries.UsageFilter, grain: grains.Grain,
                rolled: list[Any] | None = None) -> list[tuple[Any, ...]]:  # fmt: skip
    """The filter's usage as (bucket, model, provider, user, key, *METRICS) rows, per ``grain`` (``Grain.key``).

    The rollups of the rolled-up periods as stored (their grain is bucket x model x provider
    x user x key already: one indexed read, no grouping) and the raw rows of the rest grouped
    the same way, by the database. ``rolled``: the periods' ``queries.rolled_periods``, when known.
    """
    rolled = queries.rolled_periods(base, grain) if rolled is None else rolled
    raw = (
        queries.records(base)
        .order_by()
        .filter(queries.raw_spans(base, rolled))
        .annotate(bucket=grain.key(grain.trunc("created_at")))
        .values("bucket", "model", "provider", "user_id", "key_id")
        .annotate(**{f"n_{name}": agg for name, agg in _numbers().items()})
        .values_list("bucket", "model", "provider", "user_id", "key_id", *[f"n_{m}" for m in queries.METRICS])
    )
    out = list(raw)
    if rolled:
        stored = (
            queries._rollups(base, rolled)
            .order_by()
            .annotate(cost=Cast("cost_usd", FloatField()), bucket=grain.key(F(grain.field)))
            .values_list("bucket", "model", "provider", "user_id", "key_id", *queries.METRICS[:-1], "cost")
        )
        out.extend(stored)
    return out


def accumulate(since: datetime, buckets: int, hourly: bool, rows: Iterable[tuple[Any, ...]]) -> Sums:
    """``window_rows`` summed per bucket and per split, in one tight pass (a page's main Python cost)."""
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    starts = [since + i * step for i in range(buckets)]
    grain = grains.HOUR if hourly else grains.DAY
    index = {grain.key_of(s): i for i, s in enumerate(starts)}  # the rows' buckets are ``Grain.key``s
    n = len(queries.METRICS)
    # Cells per bucket ([bucket][metric]) while summing, so that adding a row is one C-level map per split.
    total_cells = [[0.0] * n for _ in range(buckets)]
    found: list[dict[Any, list[list[float]]]] = [{} for _ in DIMENSIONS]
    models, providers, users, keys = found
    for bucket, model, provider, user, key, *values in rows:
        i = index.get(bucket)
        if i is None:
            continue
        cell = total_cells[i]
        cell[:] = map(add, cell, values)
        for split, name in ((models, model), (providers, provider), (users, user or None), (keys, key or None)):
            cells = split.get(name)
            if cells is None:
                cells = split[name] = [[0.0] * n for _ in range(buckets)]
            cell = cells[i]
            cell[:] = map(add, cell, values)

    def by_metric(cells: list[list[float]]) -> list[list[float]]:
        return [[c[m] for c in cells] for m in range(n)]

    per_dim = {d: {name: by_metric(cells) for name, cells in split.items()}
               for d, split in zip(DIMENSIONS, found, strict=True)}  # fmt: skip
    return Sums(starts, by_metric(total_cells), per_dim)


def chart_data(since: datetime, buckets: int, hourly: bool, base: queries.UsageFilter | None = None,
               sums: Sums | None = None) -> dict[str, Any]:  # fmt: skip
    """JSON for the charts (bucket labels are ISO starts, UTC); ``base`` narrows the rows (a user, a key).

    ``sums``: the window's ``accumulate`` when the caller has it already.
    """
    if sums is None:
        base = base or queries.UsageFilter(since=since)
        grain = grains.HOUR if hourly else grains.DAY
        sums = accumulate(since, buckets, hourly, window_rows(base, grain))
    pick = [queries.METRICS.index(m) for m in SERIES]
    names = _names(sums.per_dim)
    return {
        "buckets": [s.isoformat() for s in sums.starts],
        "hourly": hourly,
        "totals": {m: [_tidy(v) for v in sums.totals[j]] for m, j in zip(SERIES, pick, strict=True)},
        "split": {d: _top(d, sums.per_dim[d], names, pick) for d in DIMENSIONS},
    }


def _names(per_dim: dict[str, dict[Any, Any]]) -> dict[str, dict[Any, str]]:
    users = dict(User.objects.filter(pk__in=[k for k in per_dim["user"] if k]).values_list("pk", "username"))
    keys = {pk: f"{name or prefix} ({prefix}…)" if name else f"{prefix}…"
            for pk, prefix, name in ApiKey.objects.filter(pk__in=[k for k in per_dim["key"] if k])
            .values_list("pk", "prefix", "name")}  # fmt: skip
    return {"user": {k: users.get(k, f"#{k}") for k in per_dim["user"] if k},
            "key": {k: keys.get(k, f"#{k}") for k in per_dim["key"] if k}}  # fmt: skip


def _top(dim: str, found: dict[Any, list[list[float]]], names: dict[str, dict[Any, str]],
         pick: list[int]) -> list[dict[str, Any]]:  # fmt: skip
    requests = queries.METRICS.index("requests")
    ranked = sorted(found.items(), key=lambda kv: (-sum(kv[1][requests]), str(kv[0])))
    out = []
    for key, series in ranked[:TOP]:
        label = names.get(dim, {}).get(key) if dim in names else key
        out.append(
            {"name": label or "(none)", **{m: [_tidy(v) for v in series[j]] for m, j in zip(SERIES, pick, strict=True)}}
        )
    rest = ranked[TOP:]
    if rest:
        other = {m: [sum(values) for values in zip(*(series[j] for _, series in rest), strict=True)]
                 for m, j in zip(SERIES, pick, strict=True)}  # fmt: skip
        out.append({"name": f"{len(rest)} other", **{m: [_tidy(v) for v in other[m]] for m in SERIES}})
    return out


def _tidy(value: float) -> float | int:
    """Whole numbers as ints, costs rounded: smaller JSON, no float noise in tooltips."""
    return int(value) if value == int(value) else round(value, 8)
