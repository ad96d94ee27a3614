"""Who a Django request comes from: one answer for the management API's throttle, the
``management.allow_remote`` check and ``/metrics``.

The LLM endpoints (Channels consumers) ask ``llmproxy.throttle.client_address`` with the
connection's peer; Django code asks here, with ``REMOTE_ADDR``, and gets the same answer:
the peer, or, only when that peer is one of ``clients.trusted_proxies``, the right-most
``X-Forwarded-For`` hop that is not a trusted proxy itself. A reverse proxy on the same
host therefore no longer makes every client look local once it is listed, and an
untrusted peer cannot claim to be local by sending the header.
"""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest

from llmproxy.throttle import ClientSettings, client_address
from proxy.serving import current

__all__ = ["client_of", "client_settings", "is_local", "is_loopback"]


def client_settings() -> ClientSettings:
    """The serving snapshot's ``clients:`` settings (the defaults in a process that serves nothing)."""
    gw = current.gateway()
    return gw.runtime.clients if gw is not None else ClientSettings()


def client_of(request: HttpRequest, settings: ClientSettings | None = None) -> str:
    """The request's client address: the peer, or behind a trusted proxy its X-Forwarded-For."""
    meta = request.META
    return client_address(meta.get("REMOTE_ADDR") or "", meta.get("HTTP_X_FORWARDED_FOR"),
                          settings or client_settings())  # fmt: skip


def is_loopback(address: str) -> bool:
    """Loopback (``127.0.0.0/8``, ``::1``, also IPv4-mapped); no address at all (a Unix socket) is local too."""
    if not address:
        return True
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_local(request: HttpRequest, settings: ClientSettings | None = None) -> bool:
    """Whether the request's client (as :func:`client_of` resolves it) is on this machine."""
    return is_loopback(client_of(request, settings))
