"""The admin index's dashboard, rendered by a tag as the admin's own index renders its action log."""

from __future__ import annotations

from typing import Any

from django import template

from proxy.reports import charts, dashboard
from proxy.serving import live_feed

register = template.Library()


@register.inclusion_tag("admin/llmproxy/dashboard.html", takes_context=True)
def llmproxy_dashboard(context: template.Context) -> dict[str, Any]:
    """The dashboard for the window in ``?window=`` (24h, 7d or 30d)."""
    request = context["request"]
    return {
        "board": dashboard.build(request.GET.get("window", "")),
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "live_path": live_feed.PATH,
        "split_dims": charts.DIMENSIONS,
    }


@register.filter
def has_login(provider_type: str) -> bool:
    """Whether accounts of this provider type log in from the admin (device flow or pasted code)."""
    from llmproxy import auth

    return provider_type in auth.LOGINS
