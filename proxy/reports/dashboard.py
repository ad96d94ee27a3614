"""The admin dashboard's numbers: traffic, tokens, cost, errors, latency and health over a window.

Everything reads the rollups of the window's grain and the raw rows after their marks
(the last minutes; periods not rolled up yet): the 7- and 30-day windows the daily ones
(``UsageDaily``, ``UsageLatencyDaily``, ``UsageErrorDaily``, ``UsageCredentialDaily``),
the 24 h window the hourly ones (``UsageHourly`` ..., kept for the last few days). Totals,
the per-model and per-provider tables and the charts come from one read of the window
(``charts.window_rows``), latency and TTFB from the histograms (see ``latency``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from proxy.models import UsageRecord
from proxy.serving.routing_state import CredentialState, credential_states
from proxy.serving.state import shares_state

from . import charts as charts_module
from . import grains, queries
from . import latency as hist
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


@dataclass(frozen=True, slots=True)
class Parts:
    """Where a window's numbers come from: rolled-up periods (days, or hours), and the raw rows' time ranges."""

    rolled: list[Any]
    raw: Q
    grain: grains.Grain = grains.DAY


def parts(w: Window) -> Parts:
    """The 24 h window reads the hourly rollups, the others the daily ones; the raw rows fill the rest."""
    grain = grains.HOUR if w.hourly else grains.DAY
    f = queries.UsageFilter(since=w.since)
    rolled = queries.rolled_periods(f, grain)
    return Parts(rolled, queries.raw_spans(f, rolled), grain)


def build(window_name: str = DEFAULT_WINDOW, now: datetime | None = None) -> Dashboard:
    """Everything the dashboard shows for one window.

    Each source is read once: the window's usage per bucket x model x provider x user x
    key (rollups as stored, raw rows grouped; totals, both tables, charts, traffic), the
    latency histograms per model x provider (latency, the tables' averages), TTFB, failures
    and credentials, each from the rollups of the window's grain and the raw rows after them.
    """
    w = window(window_name, now)
    p = parts(w)
    f = queries.UsageFilter(since=w.since)
    sums = charts_module.accumulate(w.since, w.buckets, w.hourly, charts_module.window_rows(f, p.grain, p.rolled))
    charts = chart_data(w.since, w.buckets, w.hourly, sums=sums)
    lat = _histogram_rows(w, "latency", p, ("model", "provider"))
    models, providers = _table(sums, lat, "model"), _table(sums, lat, "provider")
    return Dashboard(window=w, totals=_totals(sums.total()), latency=_latency(hist.histograms(lat).get(None)),
                     traffic=traffic(w, charts), models=models, providers=providers,
                     credential_rows=credential_rows(w, p), errors=error_kinds(w, p=p), ttfb=latency(w, "ttfb", p),
                     charts=charts, credentials=(states := safe_credential_states())[0], state_error=states[1],
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


def credential_rows(w: Window, p: Parts | None = None) -> list[Row]:
    """Totals per provider/credential, busiest first, with average latency (rollups and raw rows)."""
    p = p or parts(w)
    ok = Q(status_code__lt=400)
    sums = {m: Sum(m) for m in queries.METRICS if m not in ("requests", "errors")}
    found: dict[tuple[str, str], tuple[Totals, list[float]]] = {}
    rolled = (p.grain.credentials.objects.filter(**{f"{p.grain.field}__in": p.rolled}).order_by()
              .values("provider", "credential")
              .annotate(requests=Sum("requests"), errors=Sum("errors"), n_ok=Sum("ok_requests"),
                        ok_ms=Sum("ok_latency_ms"), **sums)) if p.rolled else []  # fmt: skip
    raw = (_raw(w).filter(p.raw).values("provider", "credential")
           .annotate(requests=Count("id"), errors=Count("id", filter=Q(status_code__gte=400)),
                     n_ok=Count("id", filter=ok), ok_ms=Sum("latency_ms", filter=ok), **sums))  # fmt: skip
    for got in [*rolled, *raw]:
        t, lat = found.setdefault((got["provider"], got["credential"]), (Totals(), [0.0, 0.0]))
        t.add(dict(got))
        lat[0] += float(got["n_ok"] or 0)
        lat[1] += float(got["ok_ms"] or 0)
    out = []
    for (provider, credential), (t, (n_ok, ok_ms)) in found.items():
        name = f"{provider}/{credential}" if provider and credential else "—"
        out.append(Row(name, t, ok_ms / n_ok if n_ok else None))
    out.sort(key=lambda r: (-r.totals.requests, r.name))
    top = max((r.totals.requests for r in out), default=0)
    for r in out:
        r.share = _percent(r.totals.requests, top)
    return out


def _histogram_rows(w: Window, metric: str, p: Parts, dims: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [*hist.rollup_groups(p.rolled, metric, dims, grain=p.grain),
            *hist.raw_groups(_raw(w).filter(p.raw), metric, dims)]  # fmt: skip


def _totals(sums: list[float]) -> Totals:
    t = Totals()
    t.add(dict(zip(queries.METRICS, sums, strict=True)))
    return t


def _table(sums: charts_module.Sums, lat: list[dict[str, Any]], dim: str) -> list[Row]:
    """Rows per model or provider, busiest first, with average latency."""
    avg = {k: h.avg_ms for k, h in hist.histograms(lat, dim).items()}
    out = [Row(name or "—", _totals(sums.total(series)), avg.get(name)) for name, series in sums.per_dim[dim].items()]
    out.sort(key=lambda r: (-r.totals.requests, r.name))
    top = max((r.totals.requests for r in out), default=0)
    for r in out:
        r.share = _percent(r.totals.requests, top)
    return out


def grouped(w: Window, dim: str, p: Parts | None = None) -> list[Row]:
    """Totals per model or provider (rollups and raw rows), busiest first, with average latency."""
    p = p or parts(w)
    rows = charts_module.window_rows(queries.UsageFilter(since=w.since), p.grain, p.rolled)
    sums = charts_module.accumulate(w.since, w.buckets, w.hourly, rows)
    return _table(sums, _histogram_rows(w, "latency", p, (dim,)), dim)


def _latency(h: hist.Histogram | None) -> Latency:
    if h is None or not h.n:
        return Latency()
    return Latency(h.n, h.avg_ms, h.percentile(0.50), h.percentile(0.95))


def latency(w: Window, metric: str = "latency", p: Parts | None = None) -> Latency:
    """Average and p50/p95 of the successful requests' latency (or TTFB), from the histograms.

    The average is exact; a percentile is its bucket's upper bound (at most 10 % high).
    """
    return _latency(hist.histograms(_histogram_rows(w, metric, p or parts(w))).get(None))


def error_kinds(w: Window, limit: int = 8, p: Parts | None = None) -> list[ErrorKind]:
    """The most frequent failures of the window, by status and error type."""
    p = p or parts(w)
    rolled = (p.grain.errors.objects.filter(**{f"{p.grain.field}__in": p.rolled}).order_by()
              .values("status_code", "error_type")
              .annotate(n=Sum("count"))) if p.rolled else []  # fmt: skip
    raw = _raw(w).filter(p.raw, status_code__gte=400).values("status_code", "error_type").annotate(n=Count("id"))
    return _top_errors(((r["status_code"], r["error_type"], r["n"]) for r in [*rolled, *raw]), limit)


def _top_errors(rows: Iterable[tuple[int, str, int]], limit: int = 8) -> list[ErrorKind]:
    found: dict[tuple[int, str], int] = {}
    for code, kind, n in rows:
        found[(code, kind)] = found.get((code, kind), 0) + int(n)
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [ErrorKind(code, kind, n) for (code, kind), n in ranked]


def traffic(w: Window, charts: dict[str, Any] | None = None) -> list[Bucket]:
    """One bucket per hour (24 h window) or per UTC day: the charts' totals (``chart_data``)."""
    charts = charts or chart_data(w.since, w.buckets, w.hourly)
    t = charts["totals"]
    buckets = []
    for i, iso in enumerate(charts["buckets"]):
        start = datetime.fromisoformat(iso)
        label = start.strftime("%H:00") if w.hourly else start.strftime("%b %d")
        buckets.append(Bucket(start, label, int(t["requests"][i]), int(t["errors"][i]),
                              int(t["prompt_tokens"][i] + t["completion_tokens"][i]), float(t["cost_usd"][i])))  # fmt: skip
    top = max((b.requests for b in buckets), default=0)
    return [replace(b, height=_percent(b.requests, top), error_height=_percent(b.errors, b.requests)) for b in buckets]


def _percent(part: float, whole: float) -> str:
    """A CSS percentage, formatted here so that no locale puts a comma in it."""
    return f"{100.0 * part / whole:.1f}" if whole else "0"
