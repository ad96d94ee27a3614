"""Management API for usage: records, grouped summaries and the CSV export.

Staff see everyone's usage; other callers see their own, whatever filters they send.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Field, Query, Router, Schema

from accounts.validation import ValidationFailed
from proxy.reports import keyset, queries
from proxy.reports.streaming import streamed

from .auth import actor

usage_router = Router(tags=["usage"])


class UsageQuery(Schema):
    user: str | None = Field(None, description="User id or username.")
    key: str | None = Field(None, description="Key id or prefix.")
    model: str | None = None
    provider: str | None = None
    status_code: int | None = None
    since: datetime | None = Field(None, description="Inclusive; a date means its midnight UTC.")
    until: datetime | None = Field(None, description="Exclusive; a date means its midnight UTC.")


class Page(Schema):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, description="The previous page's next_cursor: the rows after it.")
    offset: int = Field(0, ge=0, description="Rows to skip (slow deep in a big table; prefer cursor).")


class UsageOut(Schema):
    id: int
    request_id: str
    created_at: datetime
    user: str | None
    user_id: int | None
    key_id: int | None
    key_prefix: str
    ingress: str
    model: str
    upstream_model: str
    provider: str
    credential: str
    stream: bool
    status_code: int
    error_type: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = Field(description="Prompt-cache reads.")
    cache_write_tokens: int = Field(0, description="Prompt-cache writes (Anthropic's cache_creation_input_tokens).")
    reasoning_tokens: int
    tokens_estimated: bool = Field(
        False, description="Some token counts are the gateway's own tokenizer's: the upstream reported none."
    )
    cost_usd: float | None
    latency_ms: int
    ttfb_ms: int | None
    attempts: int
    error_detail: str | None = Field(None, description="Staff only: which upstream failed how, in its own words.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="The per-request overrides the call used: provider, timeout, retries."
    )


class UsagePage(Schema):
    count: int
    limit: int
    offset: int
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null on the last.")
    items: list[UsageOut]


class SummaryRow(Schema):
    day: date | None = None
    user_id: int | None = None
    username: str | None = None
    key_id: int | None = None
    key_prefix: str | None = None
    key_name: str | None = None
    model: str | None = None
    provider: str | None = None
    credential: str | None = None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = Field(description="Prompt-cache reads.")
    cache_write_tokens: int = Field(0, description="Prompt-cache writes.")
    reasoning_tokens: int
    cost_usd: float


def _filter(request: HttpRequest, q: UsageQuery) -> queries.UsageFilter:
    """The query as a filter, narrowed to the caller's own usage unless they are staff."""
    f = queries.UsageFilter(model=q.model, provider=q.provider, status_code=q.status_code,
                            since=_utc(q.since, "since"), until=_utc(q.until, "until"))  # fmt: skip
    if q.user:
        if q.user.isdigit():
            f.user_id = int(q.user)
        else:
            f.username = q.user
    if q.key:
        if q.key.isdigit():
            f.key_id = int(q.key)
        else:
            f.key_prefix = q.key
    caller = actor(request)
    if not caller.is_staff:
        if f.user_id not in (None, caller.pk) or f.username not in (None, caller.username):
            f.user_id = -1  # someone else's: nothing
        else:
            f.user_id, f.username = caller.pk, None
    return f


def _utc(value: datetime | None, field: str) -> datetime | None:
    """In UTC: a naive time is UTC; an offset is applied here, not by the database.

    PostgreSQL refuses offsets past +-15:59 that Python accepts (a 500 there), and a
    time near year 1 can leave the calendar once shifted: both are the caller's 422.
    """
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValidationFailed.one(field, "out of range") from None


@usage_router.get("", response=UsagePage)
def list_usage(request: HttpRequest, q: Query[UsageQuery], page: Query[Page]) -> dict[str, Any]:
    """Usage records, newest first, a page of ``limit`` after ``cursor`` (or ``offset``).

    ``count`` is every matching record, summed from the daily rollups where they cover
    whole days (so it can trail the raw rows by one rollup run) and counted from the raw
    rows for the rest.
    """
    f = _filter(request, q)
    qs = queries.records(f)
    staff = actor(request).is_staff
    if page.cursor is not None:
        try:
            found = keyset.page(qs, page.cursor, page.limit)
        except keyset.BadCursor as exc:
            raise ValidationFailed.one("cursor", str(exc)) from None
        rows, nxt = found.items, found.next_cursor
    else:
        rows = list(qs[page.offset : page.offset + page.limit + 1])
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        nxt = keyset.encode(rows[-1].created_at, rows[-1].pk) if more and rows else None
    items = [queries.record_row(r, staff=staff) for r in rows]
    return {"count": queries.count(f), "limit": page.limit, "offset": 0 if page.cursor is not None else page.offset,
            "next_cursor": nxt, "items": items}  # fmt: skip


@usage_router.get("/summary", response=list[SummaryRow])
def usage_summary(request: HttpRequest, q: Query[UsageQuery], group_by: str = "day") -> list[dict[str, Any]]:
    """Totals grouped by ``group_by``: a comma-separated subset of day, user, key, model, provider, credential.

    Whole past days come from the daily rollups when the rollup job has written them,
    the rest (today, days not rolled up yet, partial days) from the raw records.
    """
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    bad = [g for g in groups if g not in queries.GROUPS]
    if bad or not groups:
        raise ValidationFailed.one("group_by", f"choose from {', '.join(queries.GROUPS)}; got {group_by!r}")
    return queries.summary(_filter(request, q), groups)


@usage_router.get("/export", response={200: None}, openapi_extra={"responses": {200: {"content": {"text/csv": {}}}}})
def usage_export(request: HttpRequest, q: Query[UsageQuery]) -> StreamingHttpResponse:
    """All matching records as CSV, one column per usage field of the contract."""
    lines = queries.csv_lines(queries.records(_filter(request, q)), staff=actor(request).is_staff)
    return streamed(request, lines, "text/csv", "usage.csv")
