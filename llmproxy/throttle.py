"""Failed client-key attempts, throttled per client address; and what that address is.

Every request whose key is missing or wrong takes one token from its address's bucket in
the shared state store (memory, or Redis so that all processes count together): the
bucket holds ``clients.max_key_failures`` tokens and refills them over
``clients.key_failure_window``. An address with an empty bucket gets 429 with
``Retry-After`` (the seconds until its next token) instead of 401, in the caller's
dialect. Only failures touch the store: a request with a valid key costs nothing here,
and is served even while its address is throttled (so that one misconfigured client
behind a shared NAT or proxy cannot lock everyone else there out; keys are 256-bit
random, so throttling guesses is about noise, not about odds). A store that cannot
answer lets the failure through as a plain 401.

The client address is the connection's peer. Only when that peer is one of
``clients.trusted_proxies`` (addresses or networks) is ``X-Forwarded-For`` read: the
address is then its right-most entry that is not itself a trusted proxy.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .state import Bucket, StateStore, StoreError

__all__ = ["AuthThrottle", "ClientSettings", "client_address"]

log = logging.getLogger("llmproxy.throttle")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """config.yaml ``clients:``: failed-key throttling and the trusted reverse proxies."""

    #: Failed key attempts an address may make per ``key_failure_window``; 0 turns throttling off.
    max_key_failures: int = 10
    #: Seconds over which an address's failures are forgiven again.
    key_failure_window: float = 60.0
    #: Peers (addresses or CIDR networks) whose ``X-Forwarded-For`` names the client.
    trusted_proxies: tuple[str, ...] = ()

    def trusts(self, address: str) -> bool:
        if not self.trusted_proxies:
            return False
        ip = _ip(address)
        return ip is not None and any(ip in net for net in networks(self.trusted_proxies))


@functools.lru_cache(maxsize=32)
def networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """The networks of ``trusted_proxies`` entries (an address is a one-address network); bad entries raise ValueError."""
    return tuple(ipaddress.ip_network(e.strip().strip("[]"), strict=False) for e in entries)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(peer: str, forwarded_for: str | None, settings: ClientSettings) -> str:
    """The client's address: the peer, or (from a trusted proxy) the right-most untrusted ``X-Forwarded-For`` hop."""
    if not forwarded_for or not settings.trusts(peer):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if _ip(hop) is None:
            return peer  # a garbled header: the proxy itself is what we know
        if not settings.trusts(hop):
            return str(_ip(hop))
    return peer


class AuthThrottle:
    """Counts failed key attempts per address in the shared store; answers how long to wait."""

    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._warned: dict[str, float] = {}

    async def failed(self, address: str, settings: ClientSettings) -> float:
        """Record one failed attempt from ``address``: 0 to answer it 401, else seconds of throttling."""
        limit = settings.max_key_failures
        if limit <= 0 or not address:
            return 0.0
        window = max(settings.key_failure_window, 1e-3)
        bucket = Bucket(f"authfail:{address}", float(limit), limit / window)
        now = self.clock()
        try:
            wait = await self.store.take([(bucket, 1.0)], now)
        except StoreError:
            return 0.0
        if wait > 0:
            self._warn(address, now, window)
        return wait

    def _warn(self, address: str, now: float, window: float) -> None:
        """One warning per address and window, not one per refused attempt."""
        if now - self._warned.get(address, 0.0) < window:
            return
        if len(self._warned) > 4096:
            self._warned.clear()
        self._warned[address] = now
        log.warning("client %s: too many failed API key attempts; throttled", address)
