"""Latency and TTFB over a window: histograms from the rollups (whole past days) and raw rows (the rest).

``Bucket`` computes ``buckets.bucket_of`` in SQL: ``width_bucket`` over the bounds on
PostgreSQL, a ``CASE`` elsewhere. The raw part of a window is summed per bucket by the
database too, so a page never loads single latencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Func, IntegerField, Q, QuerySet, Sum

from proxy.models import UsageRecord

from . import buckets, grains

METRICS = {"latency": "latency_ms", "ttfb": "ttfb_ms"}


_CASE = " ".join(f"WHEN %(expressions)s < {b} THEN {i}" for i, b in enumerate(buckets.BOUNDS))
_ARRAY = ",".join(str(b) for b in buckets.BOUNDS)


class Bucket(Func):
    """The histogram bucket of a millisecond column."""

    output_field = IntegerField()
    template = f"(CASE {_CASE} ELSE {len(buckets.BOUNDS)} END)"

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, template=f"width_bucket(%(expressions)s, ARRAY[{_ARRAY}])",
                           **extra_context)  # fmt: skip


@dataclass(slots=True)
class Histogram:
    counts: dict[int, int] = field(default_factory=dict)
    sum_ms: int = 0

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def add(self, bucket: int, count: int, sum_ms: int) -> None:
        self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.sum_ms += sum_ms

    @property
    def avg_ms(self) -> float | None:
        return self.sum_ms / self.n if self.n else None

    def percentile(self, p: float) -> int | None:
        return buckets.percentile(self.counts, p)


def raw_groups(qs: QuerySet[UsageRecord], metric: str, dims: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Successful rows of ``qs`` per (dims, bucket): ``count`` and ``sum_ms``."""
    column = METRICS[metric]
    ok = qs.order_by().filter(Q(status_code__lt=400), **{f"{column}__isnull": False})
    return list(ok.annotate(bucket=Bucket(F(column))).values(*dims, "bucket")
                .annotate(count=Count("id"), sum_ms=Sum(column)))  # fmt: skip


def rollup_groups(periods: list[Any], metric: str, dims: Iterable[str] = (), grain: grains.Grain = grains.DAY,
                  **filters: Any) -> list[dict[str, Any]]:  # fmt: skip
    """The latency rollups of ``periods`` (days, or hours with ``grain``) per (dims, bucket)."""
    if not periods:
        return []
    qs = grain.latency.objects.filter(**{f"{grain.field}__in": periods}, metric=metric, **filters).order_by()
    return list(qs.values(*dims, "bucket").annotate(count=Sum("count"), sum_ms=Sum("sum_ms")))


def histograms(rows: Iterable[dict[str, Any]], dim: str | None = None) -> dict[Any, Histogram]:
    """Rows of ``raw_groups``/``rollup_groups`` merged per ``dim`` (None: one histogram under key None)."""
    out: dict[Any, Histogram] = {}
    for r in rows:
        out.setdefault(r[dim] if dim else None, Histogram()).add(int(r["bucket"]), int(r["count"]),
                                                                int(r["sum_ms"] or 0))  # fmt: skip
    return out
