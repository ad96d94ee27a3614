"""Wire-dialect codecs, one module per dialect, each through the canonical model.

Every codec module offers the same functions:

* ``decode_request(body) -> Request`` (raises ``InvalidRequest`` naming the field)
* ``encode_request(req) -> dict`` (the upstream body; ``req.model`` is the upstream name)
* ``decode_response(body) -> Response`` / ``encode_response(resp) -> dict``
* ``StreamDecoder().feed(bytes) -> [events]``, ``.close() -> [events]``
* ``StreamEncoder(model=..., include_usage=..., request_id=...)``: ``.encode(event) -> bytes``,
  ``.error(err) -> bytes`` (a mid-stream error event plus the dialect's terminator)
* ``error_body(err) -> (status, body)`` for errors before the first byte
"""

from __future__ import annotations

import importlib
from types import ModuleType

CODECS: dict[str, str] = {
    "openai_chat": "llmproxy.formats.openai_chat",
    "openai_responses": "llmproxy.formats.openai_responses",
    "openai_completions": "llmproxy.formats.openai_completions",
    "anthropic": "llmproxy.formats.anthropic",
    "gemini": "llmproxy.formats.gemini",
}


def get(name: str) -> ModuleType:
    """The codec module for a dialect name (imported on first use)."""
    try:
        return importlib.import_module(CODECS[name])
    except KeyError:
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(sorted(CODECS))}") from None
