"""Per-request overrides, the fourth config layer (INTERFACE.md section 12).

A client changes three things for one request, as a query parameter or a header:

* ``provider`` / ``x-llmproxy-provider``: serve only from that provider (404 when it does
  not serve the model);
* ``timeout`` / ``x-llmproxy-timeout``: seconds each upstream wait may take (connecting,
  the first byte, each gap between stream chunks), and after which no new attempt
  starts; at most the configured timeout;
* ``retries`` / ``x-llmproxy-retries``: attempts after the first (0: no failover), at most
  ``routing.max_attempts - 1``.

Library callers pass the same names as a mapping (``Call.overrides``, or ``overrides=``
of ``Gateway.chat`` and friends). Only a key with ``allow_overrides`` or the management
scope may use them (``ApiKeyInfo.may_override``); without keys (library mode) anyone may.
A bad value is a 400 naming the parameter; a key without the right, a 403.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest

__all__ = ["HEADERS", "NAMES", "Overrides", "parse", "requested"]

#: The override names, as query parameters and library keys.
NAMES = ("provider", "timeout", "retries")
#: The same, as request headers (lower-case).
HEADERS = {name: f"x-llmproxy-{name}" for name in NAMES}


@dataclass(frozen=True, slots=True)
class Overrides:
    """What one request overrides; None: the configured behaviour."""

    provider: str | None = None
    timeout: float | None = None
    retries: int | None = None

    def __bool__(self) -> bool:
        return self.provider is not None or self.timeout is not None or self.retries is not None

    def record(self) -> dict[str, Any]:
        """The overrides used, for the usage record (only those set)."""
        return {name: getattr(self, name) for name in NAMES if getattr(self, name) is not None}

    def attempts(self, configured: int) -> int:
        """Upstream attempts this request may make."""
        return configured if self.retries is None else 1 + self.retries


NONE = Overrides()


def requested(
    headers: Mapping[str, str], query: Mapping[str, str], given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The raw override values a call carries: ``given`` (library), then headers, then query."""
    out: dict[str, Any] = {}
    for name in NAMES:
        if given is not None and given.get(name) is not None:
            out[name] = given[name]
        elif headers.get(HEADERS[name]):
            out[name] = headers[HEADERS[name]]
        elif query.get(name):
            out[name] = query[name]
    return out


def parse(raw: Mapping[str, Any], *, max_timeout: float, max_attempts: int) -> Overrides:
    """Validate raw values (strings from the wire, or typed from a library caller).

    Raises ``InvalidRequest`` naming the parameter for a bad or out-of-range value.
    """
    if not raw:
        return NONE
    unknown = sorted(set(raw) - set(NAMES))
    if unknown:
        raise InvalidRequest(f"unknown override {unknown[0]!r} (known: {', '.join(NAMES)})", param=unknown[0])
    provider = raw.get("provider")
    if provider is not None:
        provider = str(provider).strip()
        if not provider or len(provider) > 100:
            raise InvalidRequest("override 'provider' must name a provider", param="provider")
    return Overrides(provider=provider, timeout=_timeout(raw.get("timeout"), max_timeout),
                     retries=_retries(raw.get("retries"), max_attempts))  # fmt: skip


def _timeout(value: Any, most: float) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidRequest(f"override 'timeout' must be a number of seconds > 0, got {str(value)[:40]!r}",
                             param="timeout")  # fmt: skip
    if seconds > most:
        raise InvalidRequest(f"override 'timeout' may be at most the configured timeout of {most:g} seconds",
                             param="timeout")  # fmt: skip
    return seconds


def _retries(value: Any, max_attempts: int) -> int | None:
    if value is None:
        return None
    most = max(0, max_attempts - 1)
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    if count is None or count < 0:
        raise InvalidRequest(f"override 'retries' must be a whole number >= 0, got {str(value)[:40]!r}",
                             param="retries")  # fmt: skip
    if count > most:
        raise InvalidRequest(f"override 'retries' may be at most {most} (routing.max_attempts is {max_attempts})",
                             param="retries")  # fmt: skip
    return count
