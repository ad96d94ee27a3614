"""Which outbound proxy a request goes through, if any.

A provider's own ``proxy:`` wins; otherwise the environment decides as curl and Python's
``urllib`` do: ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http ones (lower-case
names too, and they take precedence), unless ``NO_PROXY`` names the host: ``*`` (all),
a host or domain (``example.com`` also covers ``api.example.com``; a leading dot is
optional), ``host:port``, an IP address or a CIDR network. Proxies are plain-HTTP
proxies (``http://[user:password@]host:port``); https upstreams are reached through a
``CONNECT`` tunnel, so TLS stays end to end.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

log = logging.getLogger("llmproxy.http")


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    #: ``Proxy-Authorization`` header value, from the URL's user:password.
    authorization: str | None = None
    login: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The proxy's URL without its credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """``http://[user:pass@]host[:port]`` -> a Proxy; anything else raises ``ValueError``."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text  # curl and urllib accept a bare host:port
    parts = urlsplit(text)
    if parts.scheme != "http":
        raise ValueError(f"proxy {url!r}: only http:// proxies are supported (https upstreams use CONNECT)")
    if not parts.hostname:
        raise ValueError(f"proxy {url!r} has no host")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"proxy {url!r} has an invalid port") from None
    auth = login = password = None
    if parts.username is not None:
        login, password = unquote(parts.username), unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    return Proxy(parts.hostname, port, auth, login, password)


def mask_proxy(url: str, placeholder: str = "<redacted>") -> str:
    """``url`` with its password (if any) replaced, for showing and for exports without secrets."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}:{placeholder}@{netloc[1]}").geturl()


def _env(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name.lower()) or environ.get(name.upper()) or "").strip()


class ProxyResolver:
    """The environment's proxy settings, read once, and the decision per upstream host."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.https = _proxy_or_none(_env(env, "https_proxy"))
        self.http = _proxy_or_none(_env(env, "http_proxy"))
        self.no_proxy = [e.strip().lower() for e in _env(env, "no_proxy").split(",") if e.strip()]
        self._explicit: dict[str, Proxy] = {}

    def resolve(self, tls: bool, host: str, port: int, explicit: str | None = None) -> Proxy | None:
        """The proxy for ``host:port`` (None: connect directly)."""
        if explicit:
            found = self._explicit.get(explicit)
            if found is None:
                found = self._explicit[explicit] = parse_proxy(explicit)
            return found
        proxy = self.https if tls else self.http
        if proxy is None or self.bypassed(host, port):
            return None
        return proxy

    def bypassed(self, host: str, port: int) -> bool:
        """Whether ``NO_PROXY`` names this host."""
        host = host.lower().strip("[]")
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, want_port = entry, None
            if entry.count(":") == 1 and not entry.startswith("["):  # host:port (not a bare IPv6 address)
                name, _, p = entry.partition(":")
                want_port = int(p) if p.isdigit() else None
            name = name.strip("[]")
            if want_port is not None and want_port != port:
                continue
            if _ip_match(host, name):
                return True
            name = name.lstrip(".")
            if name and (host == name or host.endswith("." + name)):
                return True
        return False


def _ip_match(host: str, entry: str) -> bool:
    try:
        addr = ipaddress.ip_address(host)
        return addr in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def _proxy_or_none(url: str) -> Proxy | None:
    if not url:
        return None
    try:
        return parse_proxy(url)
    except ValueError as exc:
        # Inherited from the environment, perhaps for other programs: said, not fatal.
        log.warning("ignoring the environment's proxy setting: %s", exc)
        return None
