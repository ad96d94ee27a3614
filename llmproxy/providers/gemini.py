"""Google's Gemini API (``generativelanguage.googleapis.com``) and servers that mimic it.

The model goes in the path and the API version after the base URL, as google-genai
builds it. Errors carry a gRPC ``status`` and, for 429s, a ``RetryInfo`` detail whose
``retryDelay`` is the wait Google asks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from .._json import loads
from .._version import USER_AGENT
from ..errors import ProviderError, ProviderHTTPError
from ..http import UpstreamRequest
from . import _code_assist
from .base import Credential, Executor, retry_after

_ACTIONS = {"count_tokens": "countTokens", "embeddings": "batchEmbedContents", "embed": "embedContent"}
_VERSIONED = re.compile(r"/v\d+(?:alpha|beta)?\d*$")


class GeminiExecutor(Executor):
    """The Gemini API with a key; with ``auth_type: oauth`` (a Google account), Code Assist."""

    dialect = "gemini"
    type_name: ClassVar[str] = "gemini"
    model_prefixes: ClassVar[tuple[str, ...]] = ("gemini", "gemma", "learnlm")
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com"

    @property
    def code_assist(self) -> bool:
        return self.provider.options.get("auth_type") == "oauth" or bool(self.provider.options.get("code_assist"))

    @property
    def base_url(self) -> str:
        if self.code_assist:
            return (self.provider.base_url or _code_assist.CODE_ASSIST_URL).rstrip("/")
        return super().base_url

    def unwrap_body(self, raw: bytes) -> bytes:
        """The plain Gemini body of a reply (Code Assist wraps it)."""
        return _code_assist.unwrap(raw) if self.code_assist else raw

    def stream_unwrapper(self) -> _code_assist.StreamUnwrapper | None:
        return _code_assist.StreamUnwrapper() if self.code_assist else None

    @property
    def api_version(self) -> str:
        return str(self.provider.options.get("api_version") or "v1beta")

    def url(self, model: str, *, stream: bool, endpoint: str = "chat") -> str:
        if endpoint == "chat":
            action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        elif endpoint in _ACTIONS:
            action = _ACTIONS[endpoint]
        else:
            raise ValueError(f"Gemini has no {endpoint!r} endpoint")
        base = self.base_url
        if not _VERSIONED.search(base):
            base = f"{base}/{self.api_version}"
        return f"{base}/models/{quote(model.removeprefix('models/'), safe='-._~@')}:{action}"

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
            "user-agent": USER_AGENT,
        }
        headers.update(self.extra_headers(client_headers))
        if credential.access_token:
            headers["authorization"] = f"Bearer {credential.access_token}"
            project = credential.extra.get("project_id")
            if isinstance(project, str) and project:
                headers["x-goog-user-project"] = project
        elif credential.api_key:
            headers["x-goog-api-key"] = credential.api_key
        if self.code_assist:
            headers.pop("x-goog-user-project", None)  # the project travels in the wrapper
            project = credential.extra.get("project_id")
            wrapped = _code_assist.wrap(body, model=model, project=project if isinstance(project, str) else None,
                                        endpoint=endpoint)  # fmt: skip
            target = _code_assist.url(self.base_url, stream=stream, endpoint=endpoint)
            return self.upstream_request(target, headers, wrapped, streaming)
        body.pop("model", None)  # the model is in the path
        return self.upstream_request(self.url(model, stream=stream, endpoint=endpoint), headers, body, streaming)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        err = _error(body)
        message = str(err.get("message") or f"upstream answered HTTP {status}")
        kind = err.get("status")
        details = [d for d in err.get("details") or [] if isinstance(d, dict)]
        upstream = status
        if status == 400 and any(d.get("reason") == "API_KEY_INVALID" for d in details):
            upstream = 401  # Gemini says 400 for a bad key; it is the credential's fault
        return ProviderHTTPError(
            f"{self.provider.name}: {kind + ': ' if isinstance(kind, str) else ''}{message}",
            upstream_status=upstream,
            provider=self.provider.name,
            retry_after=retry_after(headers) if headers.get("retry-after") else _retry_delay(details),
        )


def _error(body: bytes) -> dict[str, Any]:
    """The ``error`` object of a Gemini error body (a one-element array when streamed)."""
    try:
        data = loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        return {"message": text} if text else {}
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for d in details:
        delay = d.get("retryDelay")
        if str(d.get("@type", "")).endswith("google.rpc.RetryInfo") and isinstance(delay, str):
            try:
                return max(0.0, float(delay.strip().removesuffix("s")))
            except ValueError:
                return None
    return None
