"""The admin's usage list without OFFSET or COUNT: keyset pages, and filters whose choices come from the rollups.

Django's changelist counts the matching rows and skips to page N with OFFSET; at millions
of rows both read most of the table. ``KeysetChangeList`` shows ``list_per_page`` rows
after the cursor in ``?before=`` (see ``keyset``) and links to the next page; the order is
fixed (newest first). ``RollupValues`` lists a column's values from ``UsageDaily`` (a few
thousand rows) instead of ``SELECT DISTINCT`` over the usage table.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from proxy.models import UsageDaily

from . import keyset

CURSOR_VAR = "before"


class KeysetChangeList(ChangeList):
    cursor: str
    next_cursor: str | None
    older_url: str
    newest_url: str

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.cursor = request.GET.get(CURSOR_VAR, "")
        super().__init__(request, *args, **kwargs)

    def get_filters_params(self, params: Any = None) -> Any:
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(CURSOR_VAR, None)
        return lookup_params

    def get_query_string(self, new_params: Any = None, remove: Any = None) -> str:
        """Links that change a filter start again at the newest row."""
        new_params = dict(new_params or {})
        new_params.setdefault(CURSOR_VAR, None)
        return super().get_query_string(new_params, remove)

    def get_results(self, request: HttpRequest) -> None:
        qs = self.queryset
        if self.cursor:
            try:
                qs = keyset.older_than(qs, self.cursor)
            except keyset.BadCursor:
                raise IncorrectLookupParameters from None
        per_page = self.list_per_page
        rows = list(qs.order_by("-created_at", "-pk")[: per_page + 1])
        more = len(rows) > per_page
        rows = rows[:per_page]
        self.next_cursor = keyset.encode(rows[-1].created_at, rows[-1].pk) if more and rows else None
        self.older_url = self.get_query_string({CURSOR_VAR: self.next_cursor}) if self.next_cursor else ""
        self.newest_url = self.get_query_string()
        self.result_count = len(rows)
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.result_list = rows
        self.can_show_all = False
        self.multi_page = False
        self.paginator = self.model_admin.get_paginator(request, self.queryset, per_page)  # never counted


class RollupValues(admin.SimpleListFilter):
    """A column's values seen in the last ``DAYS`` days of rollups (``model`` or ``provider``)."""

    DAYS = 90
    column = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        since = timezone.now().date() - timedelta(days=self.DAYS)
        qs = UsageDaily.objects.filter(day__gte=since).exclude(**{self.column: ""})
        values = list(qs.order_by(self.column).values_list(self.column, flat=True).distinct())
        chosen = self.value()
        if chosen and chosen not in values:  # not rolled up yet: still a choice, or Django drops the filter
            values.append(chosen)
        return [(v, v) for v in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.column: value}) if value else queryset


class ModelFilter(RollupValues):
    title = column = parameter_name = "model"


class ProviderFilter(RollupValues):
    title = column = parameter_name = "provider"
