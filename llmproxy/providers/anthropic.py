"""Anthropic's Messages API (``api.anthropic.com``) and servers that mimic it.

API keys go in ``x-api-key``. OAuth access tokens (Claude Pro/Max accounts, prefix
``sk-ant-oat``) go in ``Authorization: Bearer`` and only work with the
``oauth-2025-04-20`` beta, merged with whatever betas the client asked for. A 429 says
when to come back in ``retry-after`` or, per limit, in RFC 3339
``anthropic-ratelimit-*-reset`` headers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from .._json import loads
from .._version import USER_AGENT
from ..errors import ProviderError, ProviderHTTPError
from ..http import UpstreamRequest
from .base import Credential, Executor, retry_after

DEFAULT_VERSION = "2023-06-01"
OAUTH_BETA = "oauth-2025-04-20"
_PATHS = {"chat": "/v1/messages", "count_tokens": "/v1/messages/count_tokens", "models": "/v1/models"}
#: The model a health check without one asks for a 1-token reply (an OAuth subscription token):
#: a long-served model of the shipped price catalog.
HEALTH_MODEL = "claude-haiku-4-5-20251001"
_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


class AnthropicExecutor(Executor):
    dialect = "anthropic"
    type_name: ClassVar[str] = "claude"
    model_prefixes: ClassVar[tuple[str, ...]] = ("claude",)
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    forward_headers: ClassVar[tuple[str, ...]] = ("anthropic-beta", "anthropic-version")

    def url(self, endpoint: str = "chat") -> str:
        if endpoint not in _PATHS:
            raise ValueError(f"Anthropic has no {endpoint!r} endpoint")
        return self.base_url.removesuffix("/v1") + _PATHS[endpoint]

    def build(
        self,
        credential: Credential,
        body: dict[str, Any],
        *,
        model: str,
        stream: bool,
        client_headers: Mapping[str, str] | None = None,
        endpoint: str = "chat",
    ) -> UpstreamRequest:
        streaming = stream and endpoint == "chat"
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if streaming else "application/json",
            "anthropic-version": DEFAULT_VERSION,
            "user-agent": USER_AGENT,
        }
        betas = _betas(self.provider.headers.get("anthropic-beta"), (client_headers or {}).get("anthropic-beta"))
        headers.update(self.extra_headers(client_headers))
        oauth = credential.access_token or (credential.api_key if _is_oauth(credential.api_key) else None)
        if oauth:
            headers["authorization"] = f"Bearer {oauth}"
            betas = _betas(",".join(betas), OAUTH_BETA)
        elif credential.api_key:
            headers["x-api-key"] = credential.api_key
            betas = [b for b in betas if b != OAUTH_BETA]  # a subscription client's beta means nothing to a key
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        body["model"] = model
        if streaming:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return self.upstream_request(self.url(endpoint), headers, body, streaming)

    def models_probe(self, credential: Credential, model: str = "") -> UpstreamRequest | None:
        """An API key: ``GET /v1/models`` (no tokens). An OAuth subscription token: a 1-token
        message (to ``model``, else ``HEALTH_MODEL``), the one call it is known to be accepted for."""
        if credential.access_token or _is_oauth(credential.api_key):
            return self.completion_probe(credential, model or HEALTH_MODEL)
        return super().models_probe(credential, model)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        err = _error(body)
        kind, message = err.get("type"), str(err.get("message") or f"upstream answered HTTP {status}")
        upstream = status
        if status == 400 and "credit balance" in message.lower():
            upstream = 402  # the account's fault, not the request's: try another credential
        wait = retry_after(headers)
        if wait is None and status == 429:
            wait = ratelimit_reset(headers, time.time())
        return ProviderHTTPError(
            f"{self.provider.name}: {kind + ': ' if isinstance(kind, str) else ''}{message}",
            upstream_status=upstream,
            provider=self.provider.name,
            retry_after=wait,
        )


def _is_oauth(key: str | None) -> bool:
    return bool(key and key.startswith("sk-ant-oat"))


def _betas(*values: str | None) -> list[str]:
    """Comma-separated beta lists merged in order, without duplicates."""
    out: list[str] = []
    for value in values:
        for beta in (value or "").split(","):
            beta = beta.strip()
            if beta and beta not in out:
                out.append(beta)
    return out


def ratelimit_reset(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until an exhausted limit resets (the longest), else the soonest reset."""
    resets: list[tuple[float, bool]] = []
    for kind in _LIMITS:
        raw = headers.get(f"anthropic-ratelimit-{kind}-reset")
        if not raw:
            continue
        try:
            when = datetime.fromisoformat(raw.strip())
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        done = (headers.get(f"anthropic-ratelimit-{kind}-remaining") or "").strip() == "0"
        resets.append((max(0.0, when.timestamp() - now), done))
    exhausted = [s for s, done in resets if done]
    if exhausted:
        return max(exhausted)
    return min((s for s, _ in resets), default=None)


def _error(body: bytes) -> dict[str, Any]:
    """The ``error`` object of ``{"type":"error","error":{"type","message"}}``."""
    try:
        data = loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        return {"message": text} if text else {}
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return err
    if isinstance(err, str):
        return {"message": err}
    return {}
