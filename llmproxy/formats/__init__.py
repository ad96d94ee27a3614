"""Wire-dialect codecs, one module per dialect, each through the canonical model.

Every codec module offers the same functions:

* ``decode_request(body) -> Request`` (raises ``InvalidRequest`` naming the field)
* ``encode_request(req) -> dict`` (the upstream body; ``req.model`` is the upstream name)
* ``decode_response(body) -> Response`` / ``encode_response(resp) -> dict``
* ``StreamDecoder().feed(bytes) -> [events]``, ``.close() -> [events]``
* ``StreamEncoder(model=..., include_usage=..., request_id=...)``: ``.encode(event) -> bytes``,
  ``.error(err) -> bytes`` (a mid-stream error event plus the dialect's terminator)
* ``error_body(err) -> (status, body)`` for errors before the first byte
* ``models_body(names) -> dict`` for the dialect's models list (where it has an endpoint)

and may offer ``passthrough_body(body) -> dict`` (the client's body fixed up for a
same-dialect upstream, e.g. without signatures the gateway minted), and may declare ``TRAITS`` (a ``Traits``: model in the URL, no image URLs, ...) that the
pipeline reads through ``traits(codec)`` rather than comparing dialect names. Helpers
shared by several codecs live in ``_common.py`` (all dialects) and ``_openai_wire.py``
(the OpenAI family); a big dialect is ``<d>.py`` (requests and replies), ``_<d>_stream.py``
(its stream decoder and encoder) and ``_<d>_wire.py`` (its small wire helpers), and no
codec imports a sibling codec.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._common import PLAIN, Traits

__all__ = ["CODECS", "Traits", "get", "traits"]

CODECS: dict[str, str] = {
    "openai_chat": "llmproxy.formats.openai_chat",
    "openai_responses": "llmproxy.formats.openai_responses",
    "openai_completions": "llmproxy.formats.openai_completions",
    "anthropic": "llmproxy.formats.anthropic",
    "gemini": "llmproxy.formats.gemini",
    "codewhisperer": "llmproxy.formats.codewhisperer",
}


def get(name: str) -> ModuleType:
    """The codec module for a dialect name (imported on first use)."""
    try:
        return importlib.import_module(CODECS[name])
    except KeyError:
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(sorted(CODECS))}") from None


def traits(codec: ModuleType) -> Traits:
    """A codec's ``TRAITS``, or the plain ones when it declares none."""
    found = getattr(codec, "TRAITS", PLAIN)
    return found if isinstance(found, Traits) else PLAIN
