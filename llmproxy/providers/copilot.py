"""GitHub Copilot's chat API (``api.githubcopilot.com``): OpenAI Chat, or Responses per model.

The credential's access token is a Copilot token from the exchange (``llmproxy.auth.
copilot``; the gateway's ``TokenKeeper`` keeps it fresh), its extra ``api_url`` the API
the exchange named (``base_url`` wins when set). Every call carries the editor headers
Copilot requires, ``X-Initiator`` (``agent`` when the last message is the assistant's
or a tool result: an agent's follow-up, not a new user prompt, which Copilot bills
differently) and ``Copilot-Vision-Request`` when an image is attached. Models that
Copilot serves only through ``/responses`` (extra ``responses_models``, learnt at the
exchange, or ``options.responses_models``) are spoken to in the Responses API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from ..http import UpstreamRequest
from ._copilot_wire import API_URL, editor_headers
from .base import Credential, Executor

_PATHS = {"chat": "/chat/completions", "responses": "/responses", "models": "/models", "embeddings": "/embeddings"}


class CopilotExecutor(Executor):
    dialect = "openai_chat"
    type_name: ClassVar[str] = "copilot"
    default_base_url: ClassVar[str] = API_URL

    def api_url(self, credential: Credential) -> str:
        api = credential.extra.get("api_url")
        return (self.provider.base_url or (api if isinstance(api, str) and api else "") or API_URL).rstrip("/")

    def uses_responses(self, model: str, credential: Credential) -> bool:
        listed = credential.extra.get("responses_models") or self.provider.options.get("responses_models") or ()
        return model in listed

    def carries_cache_control(self, model: str) -> bool:
        """Copilot's Chat API takes ``cache_control`` content parts for its Claude models."""
        return "claude" in model.lower()

    def dialect_for(self, model: str, credential: Credential) -> str:
        """The wire dialect for this model: Responses for the models that only speak it."""
        return "openai_responses" if self.uses_responses(model, credential) else self.dialect

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
        responses = endpoint == "chat" and self.uses_responses(model, credential)
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            **editor_headers(self.provider),
            "openai-intent": "conversation-panel",
            "x-request-id": str(uuid.uuid4()),
            "x-initiator": initiator(body),
        }
        if has_image(body):
            headers["copilot-vision-request"] = "true"
        headers.update(self.extra_headers(client_headers))
        if credential.access_token:
            headers["authorization"] = f"Bearer {credential.access_token}"
        body["model"] = model
        if stream and endpoint == "chat" and not responses:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        path = _PATHS["responses" if responses else endpoint]
        return self.upstream_request(self.api_url(credential) + path, headers, body, stream)


def initiator(body: Mapping[str, Any]) -> str:
    """``agent`` when the conversation's last turn is the assistant's or a tool's, else ``user``."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        return "agent" if isinstance(last, dict) and last.get("role") in ("assistant", "tool") else "user"
    items = body.get("input")
    if isinstance(items, list) and items:
        last = items[-1]
        if isinstance(last, dict) and (last.get("role") == "assistant" or
                                       str(last.get("type", "")).endswith("_output")):  # fmt: skip
            return "agent"
    return "user"


def has_image(body: Mapping[str, Any]) -> bool:
    for key in ("messages", "input"):
        value = body.get(key)
        if isinstance(value, list) and ('"image_url"' in (text := json.dumps(value)) or '"input_image"' in text):
            return True
    return False
