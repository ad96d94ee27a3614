"""OpenAI and every OpenAI-compatible upstream, through presets.

A preset is only a default base URL and extra headers; the wire is OpenAI Chat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._version import USER_AGENT
from ..http import UpstreamRequest
from .base import Credential, Executor, ProviderConfig

PRESETS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1"},
    "openrouter": {"base_url": "https://openrouter.ai/api/v1",
                   "headers": {"HTTP-Referer": "https://github.com/llmproxy", "X-Title": "llmproxy"}},
    "together": {"base_url": "https://api.together.xyz/v1"},
    "fireworks": {"base_url": "https://api.fireworks.ai/inference/v1"},
    "openai-compatible": {"base_url": ""},
}  # fmt: skip

_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings",
          "models": "/models", "responses": "/responses",
          "responses_input_tokens": "/responses/input_tokens"}  # fmt: skip


class OpenAIExecutor(Executor):
    """OpenAI Chat by default; ``options: {wire: responses}`` talks the Responses API instead."""

    dialect = "openai_chat"
    type_name: ClassVar[str] = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    forward_headers: ClassVar[tuple[str, ...]] = ("openai-beta",)

    def __init__(self, provider: ProviderConfig | None = None) -> None:
        super().__init__(provider)
        if self.provider.options.get("wire") == "responses":
            self.dialect = "openai_responses"

    def carries_cache_control(self, model: str) -> bool:
        """OpenRouter passes ``cache_control`` on to Anthropic (and Gemini) models."""
        name = model.lower()
        return self.provider.type == "openrouter" and name.startswith(("anthropic/", "google/gemini", "claude"))

    @property
    def base_url(self) -> str:
        preset = PRESETS.get(self.provider.type, {})
        return (self.provider.base_url or preset.get("base_url") or self.default_base_url).rstrip("/")

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
        headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json",
                   "user-agent": USER_AGENT}  # fmt: skip
        headers.update(PRESETS.get(self.provider.type, {}).get("headers", {}))
        headers.update(self.extra_headers(client_headers))
        if credential.secret:
            headers["authorization"] = f"Bearer {credential.secret}"
        body["model"] = model
        if endpoint == "chat" and self.dialect == "openai_responses":
            endpoint = "responses"
        if endpoint == "count_tokens":
            endpoint = "responses_input_tokens"
        return self.upstream_request(self.base_url + _PATHS[endpoint], headers, body, stream)
