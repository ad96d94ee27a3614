"""Kiro (AWS CodeWhisperer): ``POST {base_url}/generateAssistantResponse``, an event stream back.

The credential's access token (a Builder ID / IdC / social login, kept fresh by the
``kiro`` refresher) goes in ``Authorization: Bearer``; a Kiro API key (``ksk_...``) the
same way, with ``tokentype: API_KEY``. The body is the ``codewhisperer`` codec's
``conversationState`` plus the credential's ``profileArn`` (extra ``profile_arn``; IdC
tokens are refused without theirs). ``base_url`` defaults to the region's
``https://q.{region}.amazonaws.com``; a legacy ``codewhisperer.*`` base URL is spoken
to in its own dialect (``x-amz-json-1.0`` and ``X-Amz-Target``). llmproxy says who it is
in ``user-agent`` and ``x-amz-user-agent``; it does not pose as Kiro IDE.

Errors before the stream are ``{"message", "reason"}``: a 401, or a 403 saying the
bearer token is invalid, is a refused token (one refresh, one retry); 402 is the
account's monthly quota (the credential cools for an hour, others serve); 400s are the
request's. Exceptions inside the 200 stream are the codec's business.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlencode

from .._json import dumps, loads
from .._version import USER_AGENT
from ..errors import ProviderError, ProviderHTTPError
from ..eventstream import FrameDecoder
from ..formats._codewhisperer_wire import frame_json
from ..http import UpstreamRequest
from .base import Credential, Executor, retry_after

DEFAULT_REGION = "us-east-1"
_TARGET = "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"
#: How long a credential whose monthly quota is spent (402) stays out of rotation.
QUOTA_COOLDOWN = 3600.0


class KiroExecutor(Executor):
    dialect = "codewhisperer"
    type_name: ClassVar[str] = "kiro"
    model_prefixes: ClassVar[tuple[str, ...]] = ("claude", "kiro", "amazonq", "auto")

    def region(self, credential: Credential | None = None) -> str:
        own = credential.extra.get("region") if credential is not None else None
        value = own or self.provider.options.get("region") or DEFAULT_REGION
        return str(value)

    def api_url(self, credential: Credential | None = None) -> str:
        return (self.provider.base_url or f"https://q.{self.region(credential)}.amazonaws.com").rstrip("/")

    @property
    def base_url(self) -> str:
        return self.api_url()

    def _headers(self, credential: Credential, legacy: bool) -> dict[str, str]:
        headers = {
            "content-type": "application/x-amz-json-1.0" if legacy else "application/json",
            "accept": "*/*",
            "amz-sdk-invocation-id": str(uuid.uuid4()),
            "amz-sdk-request": "attempt=1; max=1",
            "user-agent": USER_AGENT,
            "x-amz-user-agent": USER_AGENT,
        }
        if legacy:
            headers["x-amz-target"] = _TARGET
        else:
            headers["x-amzn-codewhisperer-optout"] = "true"
            headers["x-amzn-kiro-agent-mode"] = "vibe"
        headers.update(self.extra_headers(None))
        token = credential.access_token or credential.api_key
        if token:
            headers["authorization"] = f"Bearer {token}"
        if not credential.access_token and credential.api_key:
            headers["tokentype"] = "API_KEY"
        return headers

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
        if endpoint != "chat":
            raise ValueError(f"Kiro has no {endpoint!r} endpoint")
        base = self.api_url(credential)
        legacy = "//codewhisperer." in base
        arn = credential.extra.get("profile_arn")
        out = dict(body)
        out.pop("model", None)
        if isinstance(arn, str) and arn:
            out["profileArn"] = arn
        return self.upstream_request(
            base + "/generateAssistantResponse", self._headers(credential, legacy), out, stream
        )

    def health_request(self, credential: Credential) -> UpstreamRequest | None:
        """``GET /getUsageLimits``: proves the token without spending a request of the quota."""
        query: dict[str, str] = {"origin": "AI_EDITOR", "resourceType": "AGENTIC_REQUEST"}
        arn = credential.extra.get("profile_arn")
        if isinstance(arn, str) and arn:
            query["profileArn"] = arn
        headers = {k: v for k, v in self._headers(credential, False).items() if k != "content-type"}
        url = f"{self.api_url(credential)}/getUsageLimits?{urlencode(query)}"
        return replace(self.upstream_request(url, headers, {}, False, method="GET"), body=None)

    def unwrap_body(self, raw: bytes) -> bytes:
        """The event stream of a non-streaming call -> its frames as JSON (the codec collects them)."""
        frames = FrameDecoder()
        out = [frame_json(m) for m in frames.feed(raw)]
        frames.close()
        return dumps({"frames": out})

    def token_refused(self, err: ProviderHTTPError) -> bool:
        if err.upstream_status == 401:
            return True
        return err.upstream_status == 403 and "bearer token" in err.message.lower()

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        data = _error(body)
        message = str(data.get("message") or data.get("Message") or f"upstream answered HTTP {status}")
        reason = data.get("reason")
        text = f"{self.provider.name}: {message}" + (f" ({reason})" if isinstance(reason, str) and reason else "")
        wait = retry_after(headers)
        if status == 402:
            return ProviderHTTPError(text, upstream_status=402, provider=self.provider.name, retryable=True,
                                     retry_after=wait if wait is not None else QUOTA_COOLDOWN)  # fmt: skip
        code = "context_length_exceeded" if reason == "CONTENT_LENGTH_EXCEEDS_THRESHOLD" else None
        return ProviderHTTPError(text, upstream_status=status, provider=self.provider.name, retry_after=wait, code=code)


def _error(body: bytes) -> dict[str, Any]:
    try:
        data = loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        return {"message": text} if text else {}
    return data if isinstance(data, dict) else {}
