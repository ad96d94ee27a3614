"""The LLM routes: exact paths and the Gemini ``models/{model}:{action}`` pattern (``/v1beta/`` or ``/v1/``).

A dict lookup instead of regex routing: this runs on every request.
"""

from __future__ import annotations

from typing import Any

from .consumers import LLMConsumer, ModelsConsumer, StoredResponsesConsumer

Route = tuple[type[LLMConsumer], dict[str, Any]]

EXACT: dict[tuple[str, str], Route] = {
    ("POST", "/v1/chat/completions"): (LLMConsumer, {"ingress": "openai_chat", "endpoint": "chat"}),
    ("POST", "/v1/completions"): (LLMConsumer, {"ingress": "openai_completions", "endpoint": "chat"}),
    ("POST", "/v1/responses"): (LLMConsumer, {"ingress": "openai_responses", "endpoint": "chat"}),
    ("POST", "/v1/responses/input_tokens"): (LLMConsumer, {"ingress": "openai_responses", "endpoint": "count_tokens"}),
    ("POST", "/v1/messages"): (LLMConsumer, {"ingress": "anthropic", "endpoint": "chat"}),
    ("POST", "/v1/messages/count_tokens"): (LLMConsumer, {"ingress": "anthropic", "endpoint": "count_tokens"}),
    ("POST", "/v1/embeddings"): (LLMConsumer, {"ingress": "openai_chat", "endpoint": "embeddings"}),
    ("GET", "/v1/models"): (ModelsConsumer, {"ingress": "openai_chat"}),
    ("GET", "/v1beta/models"): (ModelsConsumer, {"ingress": "gemini"}),
}

GEMINI_ACTIONS: dict[str, dict[str, Any]] = {
    "generateContent": {"consumer": LLMConsumer, "ingress": "gemini", "endpoint": "chat", "stream": False},
    "streamGenerateContent": {"consumer": LLMConsumer, "ingress": "gemini", "endpoint": "chat", "stream": True},
    "countTokens": {"consumer": LLMConsumer, "ingress": "gemini", "endpoint": "count_tokens"},
}

GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")

#: ``/v1/responses/{id}[/{sub}]``: (method, sub) -> the stored-response action.
STORED_RESPONSE_ACTIONS = {("GET", ""): "get", ("DELETE", ""): "delete", ("GET", "input_items"): "input_items"}

_apps: dict[tuple[str, str], Any] = {}


def _app(consumer: type[LLMConsumer], kwargs: dict[str, Any]) -> Any:
    return consumer.as_asgi(**kwargs)


def resolve(method: str, path: str) -> Any | None:
    """The ASGI app for an LLM route, or None (then Django answers).

    Exact routes are built once and then found with one dict lookup. Gemini's model-in-path
    routes get a fresh app per request: caching them by model would let any client grow
    this process's memory with made-up model names.
    """
    key = (method, path.rstrip("/") if len(path) > 1 else path)
    app = _apps.get(key)
    if app is not None:
        return app
    hit = EXACT.get(key)
    if hit is not None:
        app = _apps[key] = _app(*hit)
        return app
    prefix = _gemini_prefix(path) if method == "POST" and ":" in path else ""
    if prefix:
        model, _, action = path[len(prefix) :].rpartition(":")
        spec = GEMINI_ACTIONS.get(action)
        if spec is not None and model:
            consumer, kwargs = spec["consumer"], {k: v for k, v in spec.items() if k != "consumer"}
            return _app(consumer, {**kwargs, "model": model})
    if method in ("GET", "DELETE") and path.startswith("/v1/responses/"):
        response_id, _, sub = path[len("/v1/responses/") :].rstrip("/").partition("/")
        stored = STORED_RESPONSE_ACTIONS.get((method, sub))
        if response_id and stored is not None:
            return _app(StoredResponsesConsumer, {"action": stored, "response_id": response_id})
    return None


def _gemini_prefix(path: str) -> str:
    """Gemini's model actions answer under ``/v1beta/`` and ``/v1/`` (google-genai's default since 3.x)."""
    for prefix in GEMINI_PREFIXES:
        if path.startswith(prefix):
            return prefix
    return ""


def is_llm_path(path: str) -> bool:
    return path.startswith("/v1/") or path.startswith("/v1beta/")
