"""Keyset pagination of usage rows, newest first: a page is "the next N rows older than this one".

A cursor names the last row of the page before it by ``created_at`` and ``id`` (ids break
ties between rows of the same microsecond), written ``<microseconds since 1970>.<id>``. Going
deeper costs the same as the first page (an index range scan of N rows), unlike OFFSET,
which reads and throws away every row before the page. No count is taken either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from django.db.models import Model, Q, QuerySet

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"^(-?\d{1,20})\.(\d{1,20})$")
M = TypeVar("M", bound=Model)


class BadCursor(ValueError):
    """Not a cursor this module wrote."""


def encode(created_at: datetime, pk: int) -> str:
    return f"{(created_at - EPOCH) // timedelta(microseconds=1)}.{pk}"


def decode(cursor: str) -> tuple[datetime, int]:
    found = _CURSOR.match(cursor.strip())
    if not found:
        raise BadCursor("a cursor is <microseconds>.<id>, as next_cursor gave it")
    try:
        return EPOCH + timedelta(microseconds=int(found.group(1))), int(found.group(2))
    except OverflowError:
        raise BadCursor("the cursor's time is out of range") from None


def older_than(qs: QuerySet[M], cursor: str) -> QuerySet[M]:
    """Rows after the cursor's in ``-created_at, -id`` order.

    The redundant ``created_at <= t`` lets the database range-scan the index on
    ``created_at`` instead of testing the OR row by row.
    """
    ts, pk = decode(cursor)
    return qs.filter(Q(created_at__lt=ts) | Q(created_at=ts, pk__lt=pk), created_at__lte=ts)


@dataclass(slots=True)
class Page(Generic[M]):
    items: list[M]
    next_cursor: str | None  # None: this is the last page


def page(qs: QuerySet[M], cursor: str | None, limit: int) -> Page[M]:
    """``limit`` rows of ``qs`` (ordered ``-created_at, -id``) after ``cursor``, and the next page's cursor."""
    if cursor:
        qs = older_than(qs, cursor)
    rows = list(qs.order_by("-created_at", "-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    nxt = encode(last.created_at, last.pk) if more and last is not None else None  # type: ignore[attr-defined]
    return Page(rows, nxt)
