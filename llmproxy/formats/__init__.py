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
from typing import Any, cast

from ._common import PLAIN, Traits

__all__ = ["CODECS", "Traits", "get", "register", "traits"]

CODECS: dict[str, str] = {
    "openai_chat": "llmproxy.formats.openai_chat",
    "openai_responses": "llmproxy.formats.openai_responses",
    "openai_completions": "llmproxy.formats.openai_completions",
    "anthropic": "llmproxy.formats.anthropic",
    "gemini": "llmproxy.formats.gemini",
    "codewhisperer": "llmproxy.formats.codewhisperer",
}


#: Codecs registered as objects (``register``), by dialect name.
_REGISTERED: dict[str, Any] = {}


def register(name: str, codec: Any) -> None:
    """Make a custom dialect codec known by ``name``: a module, a ``"dotted.module"`` path, or
    any object offering the codec functions above (``encode_request``, ``decode_response``,
    ``StreamDecoder``; ``decode_request``/``encode_response``/``StreamEncoder``/``error_body``
    for an ingress dialect). A provider then speaks it through ``translator: name``."""
    if isinstance(codec, str):
        CODECS[name] = codec
        _REGISTERED.pop(name, None)
    else:
        _REGISTERED[name] = codec


def get(name: str) -> ModuleType:
    """The codec for a dialect name (a built-in module is imported on first use)."""
    found = _REGISTERED.get(name)
    if found is not None:
        return cast(ModuleType, found)
    try:
        return importlib.import_module(CODECS[name])
    except KeyError:
        known = sorted(set(CODECS) | set(_REGISTERED))
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(known)}") from None


def traits(codec: ModuleType) -> Traits:
    """A codec's ``TRAITS``, or the plain ones when it declares none."""
    found = getattr(codec, "TRAITS", PLAIN)
    return found if isinstance(found, Traits) else PLAIN
