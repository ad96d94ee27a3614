"""Fetches made on a client's behalf reach public addresses only (the SSRF guard).

A client that sends an image URL makes the gateway open a connection; without a guard a
key holder could reach loopback services, the private network or a cloud metadata
endpoint (169.254.169.254) through it. So every such fetch:

- resolves the host once, refuses it when any address is loopback, private, link-local,
  multicast, reserved or unspecified (IPv4, IPv6, and IPv4 embedded in IPv6), and then
  connects to exactly the addresses it checked: the check runs inside the connector's
  resolver, so no second lookup can answer differently (DNS rebinding);
- follows at most ``MAX_REDIRECTS`` redirects itself, checking each target the same way;
- streams the body and aborts past ``ImageSettings.max_bytes``.

Failures are ``FetchRefused`` with a fixed, short reason: what lies behind a URL (its
status, its content type, whether a port is open) is never told back to the client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

MAX_REDIRECTS = 3
DEFAULT_MAX_BYTES = 20_000_000
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> [(family, address), ...]``; tests replace the system resolver with one.
Lookup = Callable[[str, int], Awaitable[list[tuple[int, str]]]]


@dataclass(frozen=True, slots=True)
class ImageSettings:
    """config.yaml ``images:``: which hosts image URLs may reach, and how much they may send."""

    #: True: no address check at all (test setups; ``LLMPROXY_IMAGES_ALLOW_PRIVATE=true``).
    allow_private: bool = False
    #: Host names, or ``host:port``, exempt from the private-address rule (an internal image store).
    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES

    def exempt(self, host: str, port: int) -> bool:
        if self.allow_private:
            return True
        name = host.lower().rstrip(".").strip("[]")
        for entry in self.allow_hosts:
            allowed = entry.lower().strip()
            if allowed in (name, f"{name}:{port}", f"[{name}]", f"[{name}]:{port}"):
                return True
        return False


class FetchRefused(Exception):
    """A fetch was refused or failed; ``reason`` is safe to show the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_public(addr: IPAddress) -> bool:
    """True for an address on the public internet; IPv4 inside IPv6 is judged as IPv4."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr.teredo is not None:
            embedded = addr.teredo[1]
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
    flags = (addr.is_private, addr.is_loopback, addr.is_link_local, addr.is_multicast, addr.is_reserved,
             addr.is_unspecified)  # fmt: skip
    return addr.is_global and not any(flags)


async def system_lookup(host: str, port: int) -> list[tuple[int, str]]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver hook: the one lookup per connection, checked before it is used."""

    def __init__(self, settings: ImageSettings, lookup: Lookup | None = None) -> None:
        self._settings = settings
        self._lookup = lookup or system_lookup

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:  # fmt: skip
        answers = await self._lookup(host, port)
        exempt = self._settings.exempt(host, port)
        out: list[ResolveResult] = []
        for fam, address in answers:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not exempt and not is_public(ip):
                raise _NotPublic(f"{host} resolves to a non-public address")
            out.append({"hostname": host, "host": str(ip), "port": port, "family": fam, "proto": 0,
                        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV})  # fmt: skip
        if not out:
            raise OSError(f"{host} has no address")
        return out

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class Fetched:
    data: bytes
    content_type: str | None


class GuardedFetcher:
    """GETs through one short-lived session whose connector resolves only via the guard."""

    def __init__(self, settings: ImageSettings, *, lookup: Lookup | None = None, timeout: float = 30.0) -> None:
        self.settings = settings
        self._resolver = GuardedResolver(settings, lookup)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GuardedFetcher:
        connector = aiohttp.TCPConnector(resolver=self._resolver, use_dns_cache=False, ssl=_ssl_context())
        # No proxy from the environment (trust_env=False): it would make the connection, not us.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              timeout=self._timeout, trust_env=False)  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str, accept: str) -> Fetched:
        """The body of ``url`` after at most ``MAX_REDIRECTS`` checked redirects."""
        target = _parse(url)
        for _ in range(MAX_REDIRECTS + 1):
            self._check_literal(target)
            location = await self._one(target, accept)
            if isinstance(location, Fetched):
                return location
            target = _parse(str(target.join(URL(location))))
        raise FetchRefused(f"was redirected more than {MAX_REDIRECTS} times")

    def _check_literal(self, url: URL) -> None:
        """An IP address in the URL never reaches the resolver: check it here."""
        host = url.host or ""
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return
        if not self.settings.exempt(host, url.port or 0) and not is_public(ip):
            raise FetchRefused("is not a public address")

    async def _one(self, url: URL, accept: str) -> Fetched | str:
        assert self._session is not None, "use GuardedFetcher as an async context manager"
        headers = {"accept": accept, "user-agent": _user_agent()}
        try:
            async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status in _REDIRECTS and resp.headers.get("location"):
                    return resp.headers["location"]
                if resp.status != 200:
                    raise FetchRefused("could not be fetched")
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.settings.max_bytes:
                    raise FetchRefused(f"is larger than {self.settings.max_bytes} bytes")
                buf = bytearray()
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    if len(buf) > self.settings.max_bytes:
                        raise FetchRefused(f"is larger than {self.settings.max_bytes} bytes")
                ctype = resp.headers.get("content-type")
                return Fetched(bytes(buf), ctype.split(";")[0].strip().lower() if ctype else None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            if _caused_by_guard(exc):
                raise FetchRefused("is not a public address") from None
            raise FetchRefused("could not be fetched") from None


class _NotPublic(OSError):
    """Raised inside the connector, so aiohttp wraps it like any failed lookup."""


def _caused_by_guard(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, _NotPublic) or isinstance(getattr(exc, "os_error", None), _NotPublic):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _parse(url: str) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise FetchRefused("is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchRefused("is not an http(s) URL")
    return parsed


@cache
def _ssl_context() -> ssl.SSLContext:
    """Built on first use (not at import), so SSL_CERT_FILE / SSL_CERT_DIR set by then count."""
    return ssl.create_default_context()


@cache
def _user_agent() -> str:
    try:
        return f"llmproxy/{metadata.version('llmproxy')}"
    except metadata.PackageNotFoundError:
        return "llmproxy"
