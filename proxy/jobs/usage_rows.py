"""Journal records -> ``UsageRecord`` rows, column by column, built once per ingester.

A record is a ``UsageEvent`` as orjson wrote it. Each concrete column of ``UsageRecord``
(the id aside) takes the record's value of the same name (``user_id``, ``key_id`` by
attname), token counts (and ``tokens_estimated``, from its ``estimated``) from the nested
``usage``, defaults for what an older record lacks.
A field added to both the event and the model flows through without a change here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from proxy.models import UsageRecord

#: Model column <- key of the record's nested ``usage``.
TOKEN_COLUMNS = {
    "prompt_tokens": "input_tokens",
    "completion_tokens": "output_tokens",
    "cached_tokens": "cached_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "reasoning_tokens",
}

Getter = Callable[[dict[str, Any]], Any]


def columns() -> list[models.Field[Any, Any]]:
    return [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]


def row_builder(connection: BaseDatabaseWrapper, *, adapt: bool) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function record -> row tuple in ``columns()`` order.

    ``adapt``: convert values with the backend's own adapters (SQLite through Django's
    cursor); without it values stay Python objects (psycopg's COPY adapts them).
    """
    getters = [_getter(f, connection, adapt) for f in columns()]

    def build(record: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(g(record) for g in getters)

    return build


def _getter(f: models.Field[Any, Any], connection: BaseDatabaseWrapper, adapt: bool) -> Getter:
    name = f.attname
    default = f.get_default()
    if name == "tokens_estimated":
        return lambda r: bool((r.get("usage") or {}).get("estimated"))
    if name in TOKEN_COLUMNS:
        key = TOKEN_COLUMNS[name]
        return lambda r: max(0, int((r.get("usage") or {}).get(key) or 0))
    if isinstance(f, models.DateTimeField):
        if adapt:
            ops = connection.ops
            return lambda r: ops.adapt_datetimefield_value(_when(r.get(name)))
        return lambda r: _when(r.get(name))
    if isinstance(f, models.DecimalField):
        places = f.decimal_places or 0

        def decimal(r: dict[str, Any]) -> Decimal | None:
            v = r.get(name)
            return None if v is None else Decimal(repr(round(float(v), places)))

        return decimal
    if isinstance(f, (models.PositiveIntegerField, models.PositiveSmallIntegerField)):
        if f.null:
            return lambda r: None if r.get(name) is None else max(0, int(r[name]))
        return lambda r: max(0, int(r[name] if r.get(name) is not None else default))
    if isinstance(f, models.CharField) and f.max_length:
        limit = f.max_length
        return lambda r: str(r.get(name) if r.get(name) is not None else default)[:limit]
    if adapt or not isinstance(f, (models.BooleanField, models.IntegerField, models.ForeignKey)):
        return lambda r: f.get_db_prep_save(r.get(name, default), connection)
    return lambda r: r.get(name, default)


def _when(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value or 0), tz=UTC)
