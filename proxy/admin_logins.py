"""The admin's account login: start a login, show its URL and code, watch it finish.

A login's state lives in the database (``LoginSession``), so every process serving the
admin shows it and takes its pasted code, whichever one started it. The starting process
runs the flow in a thread: it writes the prompt and the outcome to the row, beats
``alive_at`` while it waits, and reads a pasted code from the row. The page refreshes
itself every two seconds until the credential is stored and healthy; a login whose
runner stopped beating (its process went away) is shown as failed. PKCE logins always
take a pasted code here: the admin's browser is rarely on the server's machine, so a
loopback callback could not reach it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections, connections
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from llmproxy import auth
from proxy.configsync.accounts import AccountError
from proxy.configsync.logins import Target, prepare, run_login
from proxy.models import HealthStatus, LoginSession

#: How long a login waits for its user (device code or pasted code).
WAIT = 900.0
#: How often the runner beats ``alive_at`` and looks for a pasted code.
BEAT = 0.25
#: A waiting login whose runner has not beaten for this long is shown as failed.
STALE = timedelta(seconds=30)
#: Finished or abandoned logins are deleted after this long.
KEEP = timedelta(days=1)
#: The methods offered per account type ("" is the type's default).
METHODS = {"kiro": ("", "builder-id", "idc", "social")}


def _update(sid: str, **fields: Any) -> None:
    LoginSession.objects.filter(pk=sid).update(alive_at=timezone.now(), **fields)


def _beat(sid: str, done: threading.Event) -> None:
    """The runner's heartbeat while the flow itself waits (a device code being approved)."""
    try:
        while not done.wait(BEAT * 8):
            LoginSession.objects.filter(pk=sid).update(alive_at=timezone.now())
    finally:
        connections.close_all()


def _wait_for_paste(sid: str) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        row = LoginSession.objects.filter(pk=sid).first()
        if row is None:
            raise auth.AuthError("the login was discarded")
        if row.pasted.strip():
            _update(sid, pasted="")
            return str(row.pasted)
        _update(sid)
        time.sleep(BEAT)
    raise auth.AuthError("no code was pasted in time")


def _run(sid: str, target: Target, options: auth.LoginOptions) -> None:
    def show(prompt: auth.LoginPrompt) -> str | None:  # runs in a worker thread of the flow's loop
        try:
            _update(sid, prompt=dataclasses.asdict(prompt), state="waiting")
            return _wait_for_paste(sid) if prompt.needs_paste else None
        finally:
            connections.close_all()

    close_old_connections()
    done = threading.Event()
    threading.Thread(target=_beat, args=(sid, done), daemon=True, name=f"login-beat-{sid[:8]}").start()
    try:
        cred = run_login(target, options, show)
        _update(sid, credential_id=cred.pk, message=f"credential {cred.provider.name}/{cred.name} ready", state="done")
    except (AccountError, auth.AuthError, auth.TokenFileError) as exc:
        _update(sid, message=f"login failed: {exc}", state="failed")
    except Exception as exc:  # shown, not a 500 on the next poll
        _update(sid, message=f"login failed: {type(exc).__name__}: {exc}", state="failed")
    finally:
        done.set()
        connections.close_all()


def start(provider_type: str, provider: str | None, name: str, method: str = "", start_url: str = "") -> str:
    target = prepare(provider_type, provider or None)
    if method and method not in METHODS.get(provider_type, ()):
        raise AccountError(f"{provider_type} has no login method {method!r}")
    LoginSession.objects.filter(created_at__lt=timezone.now() - KEEP).delete()
    sid = uuid.uuid4().hex
    LoginSession.objects.create(id=sid, provider_type=provider_type, name=name)
    options = auth.LoginOptions(name=name, no_browser=True, method=method or None, start_url=start_url or None)
    threading.Thread(target=_run, args=(sid, target, options), daemon=True, name=f"login-{sid[:8]}").start()
    return sid


def session(sid: str) -> LoginSession | None:
    """The login ``sid`` as any process sees it (a runner that stopped beating: failed)."""
    row = LoginSession.objects.filter(pk=sid).first() if sid else None
    if row is not None and row.state in ("starting", "waiting") and row.alive_at < timezone.now() - STALE:
        row.state, row.message = "failed", "login failed: the process running it stopped; start it again"
        LoginSession.objects.filter(pk=sid, state__in=("starting", "waiting")).update(
            state="failed", message=row.message
        )
    return row


def login_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """GET: the form, or a running login (``?session=``); POST: start one, or paste its code."""
    if not request.user.is_staff:
        raise PermissionDenied
    url = reverse("admin:proxy_credential_login")
    error = ""
    if request.method == "POST" and "session" in request.POST:
        sid = request.POST["session"]
        code = request.POST.get("code", "").strip()
        if code:
            LoginSession.objects.filter(pk=sid, state="waiting").update(pasted=code)
        return HttpResponseRedirect(f"{url}?session={sid}")
    if request.method == "POST":
        name = request.POST.get("name", "").strip() or "default"
        try:
            sid = start(request.POST.get("type", ""), request.POST.get("provider", "").strip(), name,
                        request.POST.get("method", "").strip(), request.POST.get("start_url", "").strip())  # fmt: skip
        except AccountError as exc:
            error = str(exc)
        else:
            return HttpResponseRedirect(f"{url}?session={sid}")
    sid = request.GET.get("session", "")
    row = session(sid)
    health = None
    if row is not None and row.credential_id is not None:
        health = HealthStatus.objects.filter(credential_id=row.credential_id).first()
    methods = sorted({m for ms in METHODS.values() for m in ms if m})
    context = {**site.each_context(request), "title": "Account login", "types": sorted(auth.LOGINS),
               "methods": methods, "session": row, "sid": sid, "error": error, "health": health,
               "initial_type": request.GET.get("type", ""), "initial_provider": request.GET.get("provider", "")}  # fmt: skip
    return TemplateResponse(request, "admin/llmproxy/account_login.html", context)
