"""Prometheus metrics, counted by the usage ingester from the journal (no database on either side).

The ingester calls ``observe_record`` for each record it committed and keeps ``state()``
in its watermark file, so every count covers each request once, for all serving
processes of the node together (``serve --workers N`` shows one view, not one per
process) and across restarts. ``/metrics`` renders that state (``Metrics.from_state``)
in the text exposition format (version 0.0.4).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmproxy.journal import read_state
from llmproxy.usage import UsageEvent, event_from_record

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Request latency buckets, seconds: LLM calls run from tens of milliseconds to minutes.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
UPSTREAM_ERROR_CODES = frozenset(
    {"upstream_error", "upstream_timeout", "upstream_unreachable", "bad_upstream_response"}
)

Labels = tuple[str, ...]
COUNTERS = ("requests", "tokens", "cost", "upstream_errors", "retries")
HISTOGRAMS = ("latency", "ttfb")


class Histogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """The process's counters; ``observe`` is cheap enough for the request path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: defaultdict[Labels, int] = defaultdict(int)
        self.tokens: defaultdict[Labels, int] = defaultdict(int)
        self.cost: defaultdict[Labels, float] = defaultdict(float)
        self.latency: defaultdict[Labels, Histogram] = defaultdict(Histogram)
        self.ttfb: defaultdict[Labels, Histogram] = defaultdict(Histogram)
        self.upstream_errors: defaultdict[Labels, int] = defaultdict(int)
        self.retries: defaultdict[Labels, int] = defaultdict(int)

    def observe(self, ev: UsageEvent) -> None:
        # Only routed requests name a served model; anything else could be any client string.
        mp = (ev.model if ev.provider else "", ev.provider)
        u = ev.usage
        with self._lock:
            self.requests[(*mp, str(ev.status_code))] += 1
            for kind, n in (("prompt", u.input_tokens), ("completion", u.output_tokens),
                            ("cached", u.cached_tokens), ("reasoning", u.reasoning_tokens)):  # fmt: skip
                if n:
                    self.tokens[(*mp, kind)] += n
            if ev.cost_usd:
                self.cost[mp] += ev.cost_usd
            self.latency[mp].observe(ev.latency_ms / 1000)
            if ev.ttfb_ms is not None:
                self.ttfb[mp].observe(ev.ttfb_ms / 1000)
            if ev.provider and (ev.error_type in UPSTREAM_ERROR_CODES or ev.status_code >= 500):
                self.upstream_errors[(ev.provider, ev.error_type or str(ev.status_code))] += 1
            if ev.attempts > 1:
                self.retries[(ev.provider,)] += ev.attempts - 1

    def observe_record(self, record: Mapping[str, Any]) -> None:
        """Count one journal record (the ingester, after its batch committed)."""
        self.observe(event_from_record(record))

    def state(self) -> dict[str, Any]:
        """The counts as JSON-ready lists, for the ingester's watermark file."""
        with self._lock:
            out: dict[str, Any] = {name: [[*k, v] for k, v in getattr(self, name).items()] for name in COUNTERS}
            for name in HISTOGRAMS:
                out[name] = [[*k, h.counts, h.sum, h.count] for k, h in getattr(self, name).items()]
        return out

    @classmethod
    def from_state(cls, state: Any) -> Metrics:
        m = cls()
        if not isinstance(state, dict):
            return m
        for name in COUNTERS:
            series = getattr(m, name)
            for *key, value in state.get(name, ()):
                series[tuple(key)] = value
        for name in HISTOGRAMS:
            hists = getattr(m, name)
            for *key, counts, total, count in state.get(name, ()):
                h = hists[tuple(key)]
                if len(counts) == len(BUCKETS):
                    h.counts, h.sum, h.count = list(counts), float(total), int(count)
        return m

    def render(
        self, gauges: Mapping[str, tuple[str, float]] | None = None,
        store_errors: Mapping[Labels, int] | None = None,
    ) -> str:  # fmt: skip
        """The exposition text; ``gauges`` maps a name to (help, value) read at scrape time,
        ``store_errors`` is the limiter's count of state-store failures by (limit kind, outcome),
        summed over the node's serving processes (``process_counters.read_node``)."""
        with self._lock:
            out: list[str] = []
            _family(out, "llmproxy_requests_total", "counter", "Requests by public model, provider and status.",
                    _series(("model", "provider", "status"), self.requests))  # fmt: skip
            _family(out, "llmproxy_tokens_total", "counter", "Tokens by model, provider and kind.",
                    _series(("model", "provider", "kind"), self.tokens))  # fmt: skip
            _family(out, "llmproxy_cost_usd_total", "counter", "Cost in USD by model and provider.",
                    _series(("model", "provider"), self.cost))  # fmt: skip
            _histogram(out, "llmproxy_request_duration_seconds", "Request latency, end to end.", self.latency)
            _histogram(out, "llmproxy_time_to_first_byte_seconds", "Streamed requests: time to first byte.", self.ttfb)
            _family(out, "llmproxy_upstream_errors_total", "counter", "Requests that ended in an upstream failure.",
                    _series(("provider", "error_type"), self.upstream_errors))  # fmt: skip
            _family(out, "llmproxy_retries_total", "counter", "Extra upstream attempts (failover) by final provider.",
                    _series(("provider",), self.retries))  # fmt: skip
        _family(out, "llmproxy_limits_store_errors_total", "counter",
                "Requests whose key/user limits the state store could not check, by limit kind and what was done "
                "(limits.on_store_error).", _series(("kind", "outcome"), {k: float(v) for k, v in (store_errors or {}).items()}))  # fmt: skip
        for name, (help_text, value) in (gauges or {}).items():
            _family(out, name, "gauge", help_text, [("", value)])
        return "\n".join(out) + "\n"

    def reset(self) -> None:
        """Forget every count (tests)."""
        with self._lock:
            for series in (self.requests, self.tokens, self.cost, self.latency, self.ttfb, self.upstream_errors,
                           self.retries):  # fmt: skip
                series.clear()


def _series(names: Labels, values: Mapping[Labels, float]) -> list[tuple[str, float]]:
    return [(_labels(names, key), v) for key, v in sorted(values.items())]


def _family(out: list[str], name: str, kind: str, help_text: str, series: Iterable[tuple[str, float]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    out.extend(f"{name}{labels} {_number(v)}" for labels, v in series)


def _histogram(out: list[str], name: str, help_text: str, hists: Mapping[Labels, Histogram]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} histogram")
    for key, h in sorted(hists.items()):
        base = list(zip(("model", "provider"), key, strict=True))
        for bound, n in zip(BUCKETS, h.counts, strict=True):
            out.append(f"{name}_bucket{_labels_of([*base, ('le', _number(bound))])} {n}")
        out.append(f"{name}_bucket{_labels_of([*base, ('le', '+Inf')])} {h.count}")
        out.append(f"{name}_sum{_labels_of(base)} {_number(h.sum)}")
        out.append(f"{name}_count{_labels_of(base)} {h.count}")


def _labels(names: Labels, values: Labels) -> str:
    return _labels_of(list(zip(names, values, strict=True)))


def _labels_of(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def from_journal(directory: str | Path) -> Metrics:
    """The counts the ingester last committed for the journal in ``directory``."""
    return Metrics.from_state(read_state(directory))
