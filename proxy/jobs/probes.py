"""One real upstream call with one credential: does it work, and how fast.

The call goes through the engine's own pieces (the provider's executor, the codec of
the dialect it speaks, the shared HTTP client type), so a passing probe means the
gateway can use the credential. The secret never appears in the result: upstream error
messages that echo it are scrubbed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from llmproxy import formats, providers
from llmproxy.errors import LLMProxyError
from llmproxy.http import HTTPClient, Timeouts
from llmproxy.model import Message, Request, TextPart
from llmproxy.providers.base import Credential as EngineCredential
from proxy.configsync.engine_config import engine_credential, provider_config
from proxy.crypto import mask
from proxy.models import Credential, Provider

T = TypeVar("T")


@dataclass(slots=True)
class ProbeResult:
    ok: bool
    status: int | None
    latency_ms: int
    error: str = ""
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_credential(credential: Credential, *, model: str | None = None, timeout: float = 20.0) -> ProbeResult:
    """Send a one-token request with ``credential`` (to ``model`` or the provider's first route)."""
    upstream = model or _first_model(credential.provider)
    if not upstream:
        return ProbeResult(False, None, 0, "the provider has no enabled model to test with")
    cred = engine_credential(credential)
    started = time.monotonic()
    try:
        status = _run(_send(credential.provider, cred, upstream, timeout))
    except LLMProxyError as err:
        upstream_status: int | None = getattr(err, "upstream_status", None)
        return ProbeResult(False, upstream_status, _ms(started), _scrub(err.message, cred), upstream)
    except KeyError as err:  # no executor for this provider type
        return ProbeResult(False, None, _ms(started), _scrub(str(err.args[0] if err.args else err), cred), upstream)
    return ProbeResult(True, status, _ms(started), "", upstream)


def _first_model(provider: Provider) -> str:
    route = provider.routes.filter(enabled=True).order_by("name").first()
    return route.upstream_name if route is not None else ""


async def _send(provider: Provider, cred: EngineCredential, model: str, timeout: float) -> int:
    executor = providers.create(provider_config(provider))
    codec = formats.get(executor.dialect)
    ping = Request(model=model, messages=[Message("user", [TextPart("ping")])], max_tokens=1)
    req = executor.build(cred, codec.encode_request(ping), model=model, stream=False)
    http = HTTPClient(timeouts=Timeouts(connect=min(timeout, 10.0), first_byte=timeout, read=timeout))
    try:
        reply = await http.send(req)
        body = await reply.read()
        if reply.status >= 400:
            raise executor.classify(reply.status, reply.headers, body)
        return reply.status
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
