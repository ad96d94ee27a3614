"""The admin's account login: start a login, show its URL and code, watch it finish.

A login runs in a thread of the process that started it (``Session``); the page polls
that process (it refreshes itself every two seconds) until the credential is stored and
healthy. PKCE logins always take a pasted code here: the admin's browser is rarely on
the server's machine, so a loopback callback could not reach it.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections, connections
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from llmproxy import auth
from proxy.configsync.accounts import AccountError
from proxy.configsync.logins import Target, prepare, run_login
from proxy.models import HealthStatus

#: How long a login waits for its user (device code or pasted code).
WAIT = 900.0


@dataclass
class Session:
    provider_type: str
    name: str
    state: str = "starting"  # starting | waiting | done | failed
    prompt: auth.LoginPrompt | None = None
    message: str = ""
    credential_id: int | None = None
    started: float = field(default_factory=time.monotonic)
    pasted: queue.Queue[str] = field(default_factory=queue.Queue)


SESSIONS: dict[str, Session] = {}


def _run(session: Session, target: Target, options: auth.LoginOptions) -> None:
    def show(prompt: auth.LoginPrompt) -> str | None:
        session.prompt, session.state = prompt, "waiting"
        if not prompt.needs_paste:
            return None
        try:
            return session.pasted.get(timeout=WAIT)
        except queue.Empty:
            raise auth.AuthError("no code was pasted in time") from None

    close_old_connections()
    try:
        cred = run_login(target, options, show)
        session.credential_id = cred.pk
        session.message = f"credential {cred.provider.name}/{cred.name} ready"
        session.state = "done"
    except (AccountError, auth.AuthError, auth.TokenFileError) as exc:
        session.message, session.state = f"login failed: {exc}", "failed"
    except Exception as exc:  # shown, not a 500 on the next poll
        session.message, session.state = f"login failed: {type(exc).__name__}: {exc}", "failed"
    finally:
        connections.close_all()


def start(provider_type: str, provider: str | None, name: str) -> str:
    target = prepare(provider_type, provider or None)
    session = Session(provider_type, name)
    sid = uuid.uuid4().hex
    SESSIONS[sid] = session
    options = auth.LoginOptions(name=name, no_browser=True)
    threading.Thread(target=_run, args=(session, target, options), daemon=True, name=f"login-{sid[:8]}").start()
    return sid


def login_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """GET: the form, or a running login (``?session=``); POST: start one, or paste its code."""
    if not request.user.is_staff:
        raise PermissionDenied
    url = reverse("admin:proxy_credential_login")
    error = ""
    if request.method == "POST" and "session" in request.POST:
        session = SESSIONS.get(request.POST["session"])
        if session is not None and request.POST.get("code", "").strip():
            session.pasted.put(request.POST["code"])
        return HttpResponseRedirect(f"{url}?session={request.POST['session']}")
    if request.method == "POST":
        name = request.POST.get("name", "").strip() or "default"
        try:
            sid = start(request.POST.get("type", ""), request.POST.get("provider", "").strip(), name)
        except AccountError as exc:
            error = str(exc)
        else:
            return HttpResponseRedirect(f"{url}?session={sid}")
    sid = request.GET.get("session", "")
    session = SESSIONS.get(sid)
    health = None
    if session is not None and session.credential_id is not None:
        health = HealthStatus.objects.filter(credential_id=session.credential_id).first()
    context = {**site.each_context(request), "title": "Account login", "types": sorted(auth.LOGINS),
               "session": session, "sid": sid, "error": error, "health": health,
               "initial_type": request.GET.get("type", ""), "initial_provider": request.GET.get("provider", "")}  # fmt: skip
    return TemplateResponse(request, "admin/llmproxy/account_login.html", context)
