"""One real upstream call with one credential: does it work, and how fast.

The call is the engine's own check (``llmproxy.health.probe_completion``: the provider's
executor, the codec of the dialect it speaks, the shared HTTP client type and the one
send-and-classify helper), on the rows converted as the snapshot converts them, so a
passing probe means the gateway can use the credential. The secret never appears in
the result: upstream error messages that echo it are scrubbed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from llmproxy import providers
from llmproxy.health import UNHEALTHY, ProbeResult, probe_completion
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential as EngineCredential
from proxy.configsync.engine_config import engine_credential, provider_config
from proxy.crypto import mask
from proxy.models import Credential, Provider

T = TypeVar("T")


def as_api(result: ProbeResult) -> dict[str, Any]:
    """The management API's shape of a credential test: ok, HTTP status, latency, error, model."""
    return {"ok": result.healthy, "status": result.http_status, "latency_ms": result.latency_ms,
            "error": result.error, "model": result.model}  # fmt: skip


def probe_credential(credential: Credential, *, model: str | None = None, timeout: float = 20.0) -> ProbeResult:
    """Send a one-token request with ``credential`` (to ``model`` or the provider's first route)."""
    upstream = model or _first_model(credential.provider)
    if not upstream:
        return ProbeResult(UNHEALTHY, 0, "the provider has no enabled model to test with")
    cred = engine_credential(credential)
    started = time.monotonic()
    try:
        result = _run(_send(credential.provider, cred, upstream, timeout))
    except KeyError as err:  # no executor for this provider type
        return ProbeResult(UNHEALTHY, _ms(started), _scrub(str(err.args[0] if err.args else err), cred), None, upstream)
    return dataclasses.replace(result, error=_scrub(result.error, cred))


def _first_model(provider: Provider) -> str:
    route = provider.routes.filter(enabled=True).order_by("name").first()
    return route.upstream_name if route is not None else ""


async def _send(provider: Provider, cred: EngineCredential, model: str, timeout: float) -> ProbeResult:
    executor = providers.create(provider_config(provider))
    http = HTTPClient()
    try:
        return await probe_completion(executor, cred, http, model=model, timeout=timeout)
    finally:
        await http.close()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _scrub(text: str, cred: EngineCredential) -> str:
    for secret in (cred.api_key, cred.access_token, cred.refresh_token):
        if secret:
            text = text.replace(secret, mask(secret))
    return text
