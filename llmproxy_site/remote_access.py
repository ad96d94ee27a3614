"""``management.allow_remote``: the management API and the admin answer loopback clients only.

By default (``false``) a request to ``/api/v1/`` or ``/admin/`` from an address that is
not loopback gets a 403 (JSON for the API) before any view runs. This is a Django
middleware: it never sees ``/v1/*``, which Channels consumers serve. A request without a
client address (a Unix socket) is local. The address is ``proxy.clients.client_of``'s,
the one the LLM endpoints throttle by: behind one of ``clients.trusted_proxies`` the
``X-Forwarded-For`` client, otherwise the peer (whatever header it sends). Docker
setups, where the admin is reached from another address, set
``management: {allow_remote: true}`` or ``LLMPROXY_MANAGEMENT_ALLOW_REMOTE=true``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from llmproxy.config import ConfigError, load, loads
from proxy.clients import is_local, is_loopback

__all__ = ["LocalManagementOnly", "allow_remote_setting", "is_loopback"]

_GUARDED = ("/api/v1/", "/admin/")
_MESSAGE = "the management API and admin accept only local clients here (set management.allow_remote: true)"


def allow_remote_setting(config_path: str | None) -> bool:
    """``management.allow_remote`` of the config (environment overrides applied); ``False`` if it does not load."""
    try:
        return (load(config_path) if config_path else loads("")).management.allow_remote
    except (ConfigError, OSError):
        return False


class LocalManagementOnly:
    """Refuse non-loopback clients on the management paths unless ``allow_remote`` is on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith(_GUARDED) and not settings.LLMPROXY.get("MANAGEMENT_ALLOW_REMOTE") and not is_local(request):
            if path.startswith("/api/"):
                return JsonResponse({"detail": _MESSAGE}, status=403)  # the API's own error shape
            return HttpResponse(_MESSAGE, status=403, content_type="text/plain")
        return self.get_response(request)
