"""Django views off the LLM hot path: liveness, readiness, metrics, and the users' portal."""

from __future__ import annotations

import hmac
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.actions import create_api_key, revoke_api_key
from accounts.models import ApiKey, User
from llmproxy.journal import backlog_bytes as journal_backlog

from .clients import is_local
from .reports import portal as portal_data
from .serving import metrics
from .serving.process_counters import counters_dir, read_node
from .serving.process_engine import STORE_ERRORS, get_engine
from .serving.usage_journal import journal_dir

log = logging.getLogger("llmproxy.views")
LOGIN_URL = "/accounts/login/"


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers. Checks nothing else, so a slow database never restarts it."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready: database, cache and Celery broker reachable; 503 names what failed."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("cache", _check_cache), ("broker", _check_broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    key = f"llmproxy:readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was just stored")
    cache.delete(key)


def _check_broker() -> None:
    url: str = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        _check_broker_folders()
    elif url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
    else:
        from kombu import Connection

        with Connection(url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1)


def _check_broker_folders() -> None:
    """The embedded broker is a folder pair: they must exist (created if missing) and be writable."""
    options: dict[str, Any] = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    for key in ("data_folder_in", "data_folder_out"):
        folder = options.get(key)
        if not folder:
            continue
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"broker folder {folder} is not writable")


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of the node's counters (kept by the usage ingester), plus gauges."""
    refused = _metrics_refusal(request)
    if refused is not None:
        return refused
    directory = journal_dir()
    engine = get_engine()
    gauges = {
        "llmproxy_config_version": ("Config version this process serves.", float(engine.gateway.runtime.version)),
        "llmproxy_usage_journal_backlog_bytes": (
            "Journaled usage not yet in the database.",
            float(journal_backlog(directory)),
        ),
    }
    # Every serving process's counts of the node, the exited ones' included (process_counters).
    errors = read_node(counters_dir(), engine.counters).get(STORE_ERRORS, {})
    return HttpResponse(metrics.from_journal(directory).render(gauges, errors), content_type=metrics.CONTENT_TYPE)


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may read /metrics: the bearer token when one is set, else loopback."""
    token = settings.LLMPROXY.get("METRICS_TOKEN") or ""
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(sent.encode(), token.encode()):
            return None
        resp = HttpResponse("metrics: send Authorization: Bearer <LLMPROXY_METRICS_TOKEN>\n", status=401,
                            content_type="text/plain")  # fmt: skip
        resp["WWW-Authenticate"] = "Bearer"
        return resp
    if settings.LLMPROXY.get("METRICS_ALLOW_REMOTE") or is_local(request):
        return None
    return HttpResponse("metrics: loopback only; set LLMPROXY_METRICS_TOKEN to read them remotely\n",
                        status=403, content_type="text/plain")  # fmt: skip


def portal_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    return login_required(view, login_url=LOGIN_URL)


@portal_login_required
@require_GET
def portal(request: HttpRequest) -> HttpResponse:
    """The signed-in user's usage (chart, filtered table, CSV), keys, budgets and limits.

    Staff may look at anyone's with ``?user=NAME``; keys are created and revoked for oneself.
    """
    viewer: User = request.user  # type: ignore[assignment]
    user = viewer
    if viewer.is_staff and request.GET.get("user"):
        user = get_object_or_404(User, username=request.GET["user"])
    f = portal_data.parse_filters(request.GET)
    keys = list(ApiKey.objects.filter(user=user).order_by("revoked", "-created_at"))
    context = {"viewed": user, "own": user.pk == viewer.pk, "filters": f, "keys": keys, "now": timezone.now(),
               "usage": portal_data.usage(user, f), "limits": portal_data.limits(user),
               "csv_url": portal_data.csv_url(user, f, viewer),
               "usernames": _usernames() if viewer.is_staff else []}  # fmt: skip
    return render(request, "portal/index.html", context)


#: Names a staff member's "user" box suggests (typing any other name works too).
MAX_SUGGESTED_USERS = 500


def _usernames() -> list[str]:
    """The user names staff pick from to see someone's portal (so nobody has to know ``?user=``)."""
    return list(User.objects.order_by("username").values_list("username", flat=True)[:MAX_SUGGESTED_USERS])


@portal_login_required
@require_POST
@never_cache
def portal_create_key(request: HttpRequest) -> HttpResponse:
    """Create a key and show its plain value, this once (the page is never cached)."""
    user: User = request.user  # type: ignore[assignment]
    name = request.POST.get("name", "").strip()[:100]
    key, raw = create_api_key(user, name=name)
    return render(request, "portal/key_created.html", {"key": key, "raw": raw})


@portal_login_required
@require_POST
def portal_revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    revoke_api_key(key)
    messages.success(request, f"Key {key.prefix}… revoked.")
    return redirect("portal")
