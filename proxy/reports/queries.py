"""Report queries over usage: filtered records, grouped summaries, CSV rows, a key's budget spend.

Summaries read ``UsageDaily`` rollups for the days the rollup job has written (today's
up to a few minutes ago), and the raw ``UsageRecord`` rows for everything else (the rest
of today, days not rolled up yet, partial days at the edges of the requested range).
``UsageRollupDay`` says which days are rolled up and until when: the job writes a day's
rows and its mark in one transaction.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import ApiKey, User
from proxy.models import UsageRecord
from proxy.serving.spend import settled_spend

from . import grains, keyset

#: The usage record fields of the external contract (INTERFACE.md section 4), in order: the CSV's
#: columns exactly (the API's items add ``cache_write_tokens`` and ``tokens_estimated``).
USAGE_FIELDS = ("request_id", "created_at", "user", "key_prefix", "ingress", "model", "upstream_model", "provider",
                "credential", "stream", "status_code", "error_type", "prompt_tokens", "completion_tokens",
                "cached_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "ttfb_ms", "attempts", "overrides")  # fmt: skip
#: ``credential`` groups by provider and credential name (credential names repeat across providers).
#: Rows per query of the CSV export (keyset pages).
CSV_PAGE = 2000
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


def summary(f: UsageFilter, group_by: Sequence[str], *, today: date | None = None, rolled: list[date] | None = None,
            label: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Totals grouped by any of ``GROUPS``, merged from rollups and raw rows.

    ``rolled`` (from ``rolled_days``) saves looking the rolled-up days up again; without
    ``label`` user and key stay bare ids under "user" and "key".
    """
    if "credential" in group_by and "provider" not in group_by:
        group_by = [*group_by, "provider"]
    dims = [g for g in GROUPS if g in group_by]
    # Rollups carry no credential: per-credential totals come from the raw rows (retention).
    if "credential" in dims:
        rolled = Rolled()
    elif rolled is None:
        rolled = rolled_days(f, today)
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in [*raw_rows(f, dims, rolled), *rollup_rows(f, dims, rolled)]:
        key = tuple(row[d] for d in dims)
        acc = totals.setdefault(key, {**{d: row[d] for d in dims}, **dict.fromkeys(METRICS, 0)})
        for m in METRICS:
            acc[m] += row[m] or 0
    out = sorted(totals.values(), key=lambda r: tuple(_sortable(r[d]) for d in dims))
    if label:
        _label(out, dims)
    for r in out:
        r["cost_usd"] = float(r["cost_usd"])
        if "day" in r:
            r["day"] = r["day"].isoformat()
    return out


def count(f: UsageFilter) -> int:
    """How many records match: rollup sums for whole rolled-up days, a count of the raw rows for the rest."""
    rolled = rolled_days(f)
    total = records(f).order_by().filter(raw_spans(f, rolled)).count()
    if rolled:
        total += int(_rollups(f, rolled).aggregate(n=Sum("requests"))["n"] or 0)
    return total


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


class Rolled(list[Any]):
    """Rolled-up periods (a list, for ``day__in``/``hour__in``) of one grain, and up to when each is rolled up."""

    def __init__(self, until: dict[Any, datetime] | Iterable[Any] | None = None,
                 grain: grains.Grain = grains.DAY) -> None:  # fmt: skip
        # Django rebuilds a list lookup value as type(value)(items): periods without their marks then.
        marks = until if isinstance(until, dict) else dict.fromkeys(until or ())
        self.until: dict[Any, datetime | None] = dict(sorted(marks.items()))
        self.grain = grain
        super().__init__(self.until)


def rolled_days(f: UsageFilter, today: date | None = None) -> Rolled:
    """Days wholly inside the range that the rollup job has written (today too: up to a few minutes ago)."""
    return rolled_periods(f, grains.DAY, today)


def rolled_periods(f: UsageFilter, grain: grains.Grain, before: date | datetime | None = None) -> Rolled:
    """Periods of ``grain`` wholly inside the range that the rollup job has written (``before``: only earlier ones)."""
    if f.username or f.key_prefix or f.status_code is not None:
        return Rolled(grain=grain)  # rollups carry ids and no status; these filters need the raw rows
    field = grain.field
    qs = grain.mark.objects.all()
    if before is not None:
        qs = qs.filter(**{f"{field}__lt": before})
    if f.since is not None:
        first = grain.period_of(f.since)
        if grain.start(first) < f.since:
            first = grain.period_of(grain.start(first) + grain.step)
        qs = qs.filter(**{f"{field}__gte": first})
    if f.until is not None:
        qs = qs.filter(**{f"{field}__lt": grain.period_of(f.until)})
    return Rolled(dict(qs.values_list(field, "rolled_until")), grain)


def raw_spans(f: UsageFilter, rolled: list[Any]) -> Q:
    """The times of the filter's range that no rollup covers, as index-friendly ranges.

    Whole ``created_at`` ranges (not "the row's day is not one of these"), so the database
    reads today's latest rows by the index instead of testing every row of the table.
    """
    until = rolled.until if isinstance(rolled, Rolled) else {}
    grain = rolled.grain if isinstance(rolled, Rolled) else grains.DAY
    spans: list[tuple[datetime | None, datetime | None]] = []
    start = f.since
    for period in rolled:
        begin = grain.start(period)
        if start is None or start < begin:
            spans.append((start, begin))
        start = until.get(period) or begin + grain.step
    spans.append((start, f.until))
    parts = []
    for lo, hi in spans:
        if lo is not None and hi is not None and lo >= hi:
            continue
        if lo is None and hi is None:
            return Q()  # everything
        part = Q()
        if lo is not None:
            part &= Q(created_at__gte=lo)
        if hi is not None:
            part &= Q(created_at__lt=hi)
        parts.append(part)
    if not parts:
        return Q(pk__in=[])  # nothing: rollups cover it all
    q = parts[0]
    for part in parts[1:]:
        q |= part
    return q


def raw_rows(f: UsageFilter, dims: list[str], rolled: list[date]) -> Iterator[dict[str, Any]]:
    qs = records(f).order_by().filter(raw_spans(f, rolled))
    if "day" in dims:
        qs = qs.annotate(day=TruncDate("created_at", tzinfo=UTC))
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


def rollup_rows(f: UsageFilter, dims: list[str], rolled: list[date]) -> Iterator[dict[str, Any]]:
    if not rolled:
        return
    values = (
        _rollups(f, rolled).order_by().values(*[_RAW_DIM[d] for d in dims]).annotate(**{m: Sum(m) for m in METRICS})
    )
    for row in values:
        out = {d: row[_RAW_DIM[d]] for d in dims}
        for d in ("user", "key"):
            if d in out and not out[d]:
                out[d] = None  # rollups store "none" as 0
        yield {**out, **{m: row[m] for m in METRICS}}


def _rollups(f: UsageFilter, rolled: list[Any]) -> QuerySet[Any]:
    """The rollup rows of the rolled-up periods (of ``rolled``'s grain: days unless told) the filter keeps."""
    grain = rolled.grain if isinstance(rolled, Rolled) else grains.DAY
    qs: QuerySet[Any] = grain.totals.objects.filter(**{f"{grain.field}__in": rolled})
    if f.user_id is not None:
        qs = qs.filter(user_id=f.user_id)
    if f.key_id is not None:
        qs = qs.filter(key_id=f.key_id)
    if f.model:
        qs = qs.filter(model=f.model)
    if f.provider:
        qs = qs.filter(provider=f.provider)
    return qs


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


def record_row(rec: UsageRecord, *, staff: bool = False, usernames: dict[int, str] | None = None) -> dict[str, Any]:
    """One usage record as the API and the CSV show it; ``error_detail`` (upstream words) for staff only.

    ``usernames`` (user id -> name) stands in for ``rec.user`` when the rows were read without the join.
    """
    if usernames is not None:
        username = (usernames.get(rec.user_id) or None) if rec.user_id else None
    else:
        username = rec.user.username if rec.user_id and rec.user else None
    row = {
        "id": rec.pk,
        "request_id": rec.request_id,
        "created_at": rec.created_at,
        "user": username,
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
        "tokens_estimated": rec.tokens_estimated,
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
    # Page by keyset, 2,000 rows a query, without the join to users: each query walks the
    # (created_at, id) index from where the last one stopped, so the first lines go out at
    # once. (A server-side cursor over the whole export let PostgreSQL plan for a tenth of
    # ten million rows: a sort, 15 s before the first line.) Usernames: one lookup per user met.
    usernames: dict[int, str] = {}
    cursor: str | None = None
    while True:
        page = keyset.page(qs.select_related(None), cursor, CSV_PAGE)
        for rec in page.items:
            if rec.user_id and rec.user_id not in usernames:
                usernames[rec.user_id] = (
                    User.objects.filter(pk=rec.user_id).values_list("username", flat=True).first() or ""
                )
            row = record_row(rec, staff=staff, usernames=usernames)
            yield writer.writerow([_csv_value(row[name]) for name in names])
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


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
