"""The admin dashboard's numbers: traffic, tokens, cost, errors, latency and health over a window.

Totals and the per-model and per-provider tables come from ``queries.summary`` (the
daily rollups for whole past days, the raw rows for the rest). Hourly traffic, latency
percentiles and error kinds need single requests, so they read the raw usage rows of
the window (kept for the retention period).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from proxy.models import UsageRecord
from proxy.serving.routing_state import CredentialState, credential_states
from proxy.serving.state import shares_state

from . import queries
from .charts import chart_data

log = logging.getLogger("llmproxy.dashboard")

#: name -> (label, how many buckets, hourly buckets)
WINDOWS = {"24h": ("Last 24 hours", 24, True), "7d": ("Last 7 days", 7, False), "30d": ("Last 30 days", 30, False)}
DEFAULT_WINDOW = "24h"


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    label: str
    since: datetime  # inclusive; the window runs until now
    buckets: int
    hourly: bool


def window(name: str, now: datetime | None = None) -> Window:
    """A window by name (unknown names get the default), aligned to whole hours or UTC days."""
    name = name if name in WINDOWS else DEFAULT_WINDOW
    label, buckets, hourly = WINDOWS[name]
    now = (now or timezone.now()).astimezone(UTC)
    if hourly:
        since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=buckets - 1)
    else:
        since = datetime.combine(now.date() - timedelta(days=buckets - 1), time(0), tzinfo=UTC)
    return Window(name, label, since, buckets, hourly)


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt-cache reads
    cache_write_tokens: int = 0  # prompt-cache writes
    reasoning_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def error_rate(self) -> float:
        """Percent of requests that failed."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def add(self, row: dict[str, Any]) -> None:
        for name in queries.METRICS:
            value = row.get(name) or 0
            setattr(self, name, getattr(self, name) + (float(value) if name == "cost_usd" else int(value)))


@dataclass(slots=True)
class Row:
    """One model or provider in the window."""

    name: str
    totals: Totals
    avg_latency_ms: float | None = None
    share: str = "0"  # percent of the window's requests, for the bar


@dataclass(frozen=True, slots=True)
class Latency:
    """End-to-end latency of the window's successful requests, in milliseconds."""

    count: int = 0
    avg_ms: float | None = None
    p50_ms: int | None = None
    p95_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    label: str
    requests: int
    errors: int
    tokens: int
    cost_usd: float
    height: str = "0"  # percent of the tallest bucket
    error_height: str = "0"  # percent of this bucket


@dataclass(frozen=True, slots=True)
class ErrorKind:
    status_code: int
    error_type: str
    count: int


@dataclass(slots=True)
class Dashboard:
    window: Window
    totals: Totals
    latency: Latency
    traffic: list[Bucket]
    models: list[Row]
    providers: list[Row]
    errors: list[ErrorKind]
    #: Per provider/credential: what session affinity keeps in each account's prompt cache.
    credential_rows: list[Row] = field(default_factory=list)
    ttfb: Latency = field(default_factory=Latency)
    charts: dict[str, Any] = field(default_factory=dict)  # charts.chart_data, for the page's script
    credentials: list[CredentialState] = field(default_factory=list)
    state_error: str = ""  # the state store could not be read
    shares_state: bool = True  # cooldowns seen here are the ones every serving process sees

    @property
    def windows(self) -> list[tuple[str, str]]:
        return [(name, label) for name, (label, _, _) in WINDOWS.items()]

    @property
    def tables(self) -> list[tuple[str, list[Row]]]:
        return [("Model", self.models), ("Provider", self.providers), ("Credential", self.credential_rows)]


def build(window_name: str = DEFAULT_WINDOW, now: datetime | None = None) -> Dashboard:
    """Everything the dashboard shows for one window."""
    w = window(window_name, now)
    models = grouped(w, "model")
    totals = Totals()
    for row in models:
        for name in queries.METRICS:
            setattr(totals, name, getattr(totals, name) + getattr(row.totals, name))
    states, error = safe_credential_states()
    return Dashboard(window=w, totals=totals, latency=latency(w), traffic=traffic(w), models=models,
                     providers=grouped(w, "provider"), credential_rows=grouped(w, "credential"), errors=error_kinds(w), ttfb=latency(w, "ttfb_ms"),
                     charts=chart_data(w.since, w.buckets, w.hourly), credentials=states, state_error=error,
                     shares_state=shares_state())  # fmt: skip


def safe_credential_states() -> tuple[list[CredentialState], str]:
    """``credential_states()``, or nothing and the reason when the state store is unreachable."""
    try:
        return credential_states(), ""
    except Exception as exc:
        log.warning("could not read the credentials' state: %s", exc)
        return [], f"{type(exc).__name__}: {exc}"


def _raw(w: Window) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(created_at__gte=w.since).order_by()


def grouped(w: Window, dim: str) -> list[Row]:
    """Totals per model, provider or provider/credential (rollups and raw rows), busiest first,
    with average latency."""
    rows = queries.summary(queries.UsageFilter(since=w.since), [dim])
    fields = ("provider", "credential") if dim == "credential" else (dim,)
    ok = Avg("latency_ms", filter=Q(status_code__lt=400))
    avg = {tuple(r[:-1]): r[-1] for r in _raw(w).values_list(*fields).annotate(avg=ok).values_list(*fields, "avg")}
    out = []
    for found in rows:
        totals = Totals()
        totals.add(found)
        name = "/".join(str(found[f]) for f in fields) if all(found[f] for f in fields) else "—"
        out.append(Row(name, totals, avg.get(tuple(found[f] for f in fields))))
    out.sort(key=lambda r: (-r.totals.requests, r.name))
    top = max((r.totals.requests for r in out), default=0)
    for r in out:
        r.share = _percent(r.totals.requests, top)
    return out


def latency(w: Window, column: str = "latency_ms") -> Latency:
    """Average and nearest-rank p50/p95 of the successful requests' latency (or ``ttfb_ms``)."""
    qs = _raw(w).filter(status_code__lt=400, **{f"{column}__isnull": False})
    agg = qs.aggregate(n=Count("id"), avg=Avg(column))
    n = int(agg["n"] or 0)
    if not n:
        return Latency()
    ordered = qs.order_by(column).values_list(column, flat=True)

    def rank(p: float) -> int:
        return int(ordered[max(math.ceil(p * n) - 1, 0)])  # one LIMIT 1 OFFSET k query

    return Latency(n, float(agg["avg"]), rank(0.50), rank(0.95))


def error_kinds(w: Window, limit: int = 8) -> list[ErrorKind]:
    """The most frequent failures of the window, by status and error type."""
    rows = (
        _raw(w)
        .filter(status_code__gte=400)
        .values("status_code", "error_type")
        .annotate(n=Count("id"))
        .order_by("-n", "status_code", "error_type")[:limit]
    )
    return [ErrorKind(r["status_code"], r["error_type"], r["n"]) for r in rows]


def traffic(w: Window) -> list[Bucket]:
    """One bucket per hour (24 h window, raw rows) or per UTC day (rollups and raw rows)."""
    step = timedelta(hours=1) if w.hourly else timedelta(days=1)
    starts = [w.since + i * step for i in range(w.buckets)]
    found = _hourly(w) if w.hourly else _daily(w)
    buckets = []
    for start in starts:
        t = found.get(start, Totals())
        label = start.strftime("%H:00") if w.hourly else start.strftime("%b %d")
        buckets.append(Bucket(start, label, t.requests, t.errors, t.tokens, float(t.cost_usd)))
    top = max((b.requests for b in buckets), default=0)
    return [replace(b, height=_percent(b.requests, top), error_height=_percent(b.errors, b.requests)) for b in buckets]


def _hourly(w: Window) -> dict[datetime, Totals]:
    values = (
        _raw(w)
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("hour")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status_code__gte=400)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost_usd=Sum("cost_usd"),
        )
    )
    out: dict[datetime, Totals] = {}
    for row in values:
        t = Totals()
        t.add(dict(row))
        out[row["hour"].astimezone(UTC)] = t
    return out


def _daily(w: Window) -> dict[datetime, Totals]:
    out: dict[datetime, Totals] = {}
    for row in queries.summary(queries.UsageFilter(since=w.since), ["day"]):
        t = Totals()
        t.add(row)
        out[datetime.combine(date.fromisoformat(row["day"]), time(0), tzinfo=UTC)] = t
    return out


def _percent(part: float, whole: float) -> str:
    """A CSS percentage, formatted here so that no locale puts a comma in it."""
    return f"{100.0 * part / whole:.1f}" if whole else "0"
