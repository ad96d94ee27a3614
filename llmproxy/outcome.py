"""What an upstream failure means for routing: cool whom, for how long, and try the next?

    429                      rate_limited  credential+model  Retry-After / reset headers, else
                                                            the provider's cooldown, doubling
    401, 402, 403            auth          whole credential  auth_cooldown, doubling (+ token refresh)
    404                      not_found     credential+model  not_found_cooldown
    408, 409, 5xx, 529,      error         credential+model  error_cooldown, doubling
    timeouts, resets, junk
    other 4xx (400, 413...)  client        nothing           the client's fault: no retry

How long "come back later" is, from each provider's own headers or body, is
``llmproxy.resets.reset_after`` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProviderError, ProviderHTTPError
from .providers.base import ProviderConfig
from .resets import reset_after
from .runtime import RoutingSettings

__all__ = ["Outcome", "classify", "reset_after"]


@dataclass(frozen=True, slots=True)
class Outcome:
    reason: str  # rate_limited | auth | not_found | error | client
    scope: str | None  # "pair" (credential + model), "credential", or None: no cooldown
    retry: bool  # move on to the next candidate
    base: float = 0.0
    fixed: float | None = None
    cap: float = 0.0
    refresh: bool = False

    @property
    def rate_limited(self) -> bool:
        return self.reason == "rate_limited"


def classify(err: ProviderError, provider: ProviderConfig, settings: RoutingSettings) -> Outcome:
    status = err.upstream_status if isinstance(err, ProviderHTTPError) else None
    cap = settings.max_cooldown
    if status == 429:
        return Outcome("rate_limited", "pair", True, provider.cooldown, err.retry_after, max(cap, provider.cooldown))
    if status in (401, 402, 403):
        return Outcome("auth", "credential", True, settings.auth_cooldown, None, max(cap, settings.auth_cooldown),
                       refresh=True)  # fmt: skip
    if status == 404:
        return Outcome("not_found", "pair", True, fixed=settings.not_found_cooldown)
    if status is None or status in (408, 409) or status >= 500:
        return Outcome("error", "pair", True, settings.error_cooldown, err.retry_after, cap)
    return Outcome("client", None, False)
