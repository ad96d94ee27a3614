"""Health probes: one cheap request per credential, to tell routing who is alive.

The probe is the provider's models list where it has one (a GET, no tokens spent), else
a one-token completion of the cheapest route's model. An executor may offer its own
``health_request(credential)``. What counts as healthy is "reachable, and the credential
is accepted": a 429 is healthy (the cooldowns deal with limits), a 401 or a 5xx is not.

``probe_completion`` is the stricter check an operator asks for ("does this credential
work?"): one real one-token completion that must succeed. Both answer a ``ProbeResult``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import upstream
from .errors import LLMProxyError, ProviderError, ProviderHTTPError
from .http import HTTPClient, Timeouts, UpstreamRequest
from .providers.base import Credential, Executor

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status: str  # healthy | unhealthy
    latency_ms: int
    error: str = ""
    http_status: int | None = None
    model: str = ""  # the model a completion probe used

    @property
    def healthy(self) -> bool:
        return self.status == HEALTHY


def _verdict(status: int) -> tuple[str, str]:
    if status < 400 or status == 429:
        return HEALTHY, "" if status < 400 else "rate limited (reachable)"
    if status in (400, 422):  # the upstream read the request: reachable and authenticated
        return HEALTHY, f"HTTP {status} to the probe (reachable)"
    return UNHEALTHY, f"HTTP {status}"


def models_request(executor: Executor, credential: Credential, model: str) -> UpstreamRequest | None:
    return executor.models_probe(credential, model)


def completion_request(executor: Executor, credential: Credential, model: str) -> UpstreamRequest:
    return executor.completion_probe(credential, model)


async def _send(http: HTTPClient, req: UpstreamRequest, timeout: float) -> int:
    status, _ = await upstream.fetch(http, req, timeouts=Timeouts(connect=timeout, first_byte=timeout, read=timeout))
    return status


async def probe(
    executor: Executor, credential: Credential, http: HTTPClient, *, model: str = "", timeout: float = 10.0
) -> ProbeResult:
    """Probe one credential; never raises for the upstream's faults."""
    started = time.monotonic()
    try:
        req = models_request(executor, credential, model)
        status = await _send(http, req, timeout) if req is not None else None
        if (status is None or status in (404, 405)) and model:
            status = await _send(http, completion_request(executor, credential, model), timeout)
        if status is None:
            return ProbeResult(HEALTHY, 0, "no cheap probe for this provider: not checked")
    except ProviderError as err:
        return ProbeResult(UNHEALTHY, int((time.monotonic() - started) * 1000), err.message)
    verdict, error = _verdict(status)
    return ProbeResult(verdict, int((time.monotonic() - started) * 1000), error, status)


async def probe_completion(
    executor: Executor, credential: Credential, http: HTTPClient, *, model: str, timeout: float = 20.0
) -> ProbeResult:
    """One one-token completion with ``credential``: healthy only if it succeeds.

    Any error status fails it, with the executor's own reading of the upstream's error;
    never raises for the upstream's faults (the caller scrubs secrets from ``error``).
    """
    started = time.monotonic()
    timeouts = Timeouts(connect=min(timeout, 10.0), first_byte=timeout, read=timeout)
    try:
        reply = await upstream.send(http, executor, completion_request(executor, credential, model), timeouts=timeouts)
        await reply.read()
    except LLMProxyError as err:  # the upstream's refusal, or a request the codec could not build
        status = err.upstream_status if isinstance(err, ProviderHTTPError) else None
        return ProbeResult(UNHEALTHY, int((time.monotonic() - started) * 1000), err.message, status, model)
    return ProbeResult(HEALTHY, int((time.monotonic() - started) * 1000), "", reply.status, model)
