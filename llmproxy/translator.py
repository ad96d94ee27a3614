"""The Translator facade: OpenAI Chat in, a provider's dialect out, and back.

A translator is two codecs composed through the canonical model, so adding a dialect
adds one codec, not a translator per pair::

    t = translator.get("claude")
    body = t.translate_request(openai_chat_request)      # -> Anthropic Messages body
    reply = t.translate_response(anthropic_reply)        # -> OpenAI Chat completion
    async for chunk in t.translate_stream(anthropic_sse_bytes): ...   # -> chunk dicts

Every provider type in ``llmproxy.providers.EXECUTORS`` has one (copilot and demo speak
OpenAI Chat; kiro speaks CodeWhisperer: a ``conversationState`` in, an AWS event stream
out). What a translator reports about its target: ``max_tokens`` is the model's
output cap from the shipped model catalog (``llmproxy.pricing``, ``max_output``) when the
translator was made for a listed model (``get("claude", model="claude-sonnet-4-5")``),
else the dialect's default below. The catalog records no streaming or tool facts, and
every codec here encodes and decodes both, so ``supports_streaming`` and
``supports_functions`` are the codec's (true for all shipped dialects).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from . import formats, pricing
from ._json import loads
from .model import StreamEvent
from .sse import SSEParser

#: Provider type or dialect name -> dialect codec.
ALIASES: dict[str, str] = {
    "claude": "anthropic",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "openai": "openai_chat",
    "openai_chat": "openai_chat",
    "openrouter": "openai_chat",
    "together": "openai_chat",
    "fireworks": "openai_chat",
    "openai-compatible": "openai_chat",
    "copilot": "openai_chat",
    "kiro": "codewhisperer",
    "codewhisperer": "codewhisperer",
    "demo": "openai_chat",
    "openai-responses": "openai_responses",
    "openai_responses": "openai_responses",
}

#: Max output tokens a provider accepts by default (Anthropic requires a value).
MAX_TOKENS: dict[str, int] = {
    "anthropic": 64000,
    "codewhisperer": 64000,
    "gemini": 65536,
    "openai_chat": 128000,
    "openai_responses": 128000,
}


class Translator:
    """OpenAI Chat <-> one provider dialect."""

    def __init__(self, name: str, dialect: str, *, source: str = "openai_chat", model: str | None = None) -> None:
        self.name = name
        self.dialect = dialect
        self.source = source
        #: The upstream model this translator describes (``max_tokens``); None: the dialect.
        self.model = model
        self._in = formats.get(source)
        self._out = formats.get(dialect)

    @property
    def supports_streaming(self) -> bool:
        return True

    @property
    def supports_functions(self) -> bool:
        return True

    @property
    def max_tokens(self) -> int:
        """The model's output cap from the catalog if listed, else the dialect's default."""
        entry = pricing.lookup(self.model) if self.model else None
        if entry is not None and entry.max_output:
            return entry.max_output
        return MAX_TOKENS.get(self.dialect, 4096)

    def translate_request(self, request: dict[str, Any], *, model: str | None = None) -> dict[str, Any]:
        """A client request (OpenAI Chat) -> the provider's request body."""
        req = self._in.decode_request(request)
        if model:
            req = dataclasses.replace(req, model=model)
        body: dict[str, Any] = self._out.encode_request(req)
        if formats.traits(self._out).model_in_path:
            body.setdefault("model", req.model)  # the URL carries it upstream; keep it for the caller
        return body

    def translate_response(self, response: dict[str, Any]) -> dict[str, Any]:
        """The provider's reply -> an OpenAI Chat completion."""
        out: dict[str, Any] = self._in.encode_response(self._out.decode_response(response))
        return out

    async def translate_events(self, stream: AsyncIterable[bytes]) -> AsyncIterator[StreamEvent]:
        decoder = self._out.StreamDecoder()
        async for chunk in stream:
            for event in decoder.feed(chunk):
                yield event
        for event in decoder.close():
            yield event

    async def translate_stream(self, stream: AsyncIterable[bytes], *, model: str = "") -> AsyncIterator[dict[str, Any]]:
        """The provider's streamed bytes -> OpenAI chunk dicts (with the final usage chunk)."""
        encoder = self._in.StreamEncoder(model=model, include_usage=True)
        parser = SSEParser()
        async for event in self.translate_events(stream):
            for sse in parser.feed(encoder.encode(event)):
                if sse.data and sse.data != "[DONE]":
                    yield loads(sse.data)


_factories: dict[str, Callable[[], Translator]] = {}


def register(name: str, factory: Callable[[], Translator] | str | Any) -> None:
    """Register a custom translator by name: a factory (returning a ``Translator``), the name
    of a codec dialect, or a codec itself (an object with ``encode_request`` and
    ``decode_response``, registered as dialect ``name`` with ``formats.register``).

    A provider in config.yaml then names it as ``translator: name``: its requests and
    replies are translated through that translator's dialect."""
    if isinstance(factory, str):
        dialect = factory
        _factories[name] = lambda: Translator(name, dialect)
    elif hasattr(factory, "encode_request") and hasattr(factory, "decode_response"):
        formats.register(name, factory)
        _factories[name] = lambda: Translator(name, name)
    else:
        _factories[name] = factory


def dialect_of(name: str) -> str:
    """The dialect a provider's ``translator: name`` speaks (raises ``KeyError`` for an unknown name)."""
    return get(name).dialect


def get(name: str, *, model: str | None = None) -> Translator:
    """The translator for a provider type or dialect; ``model`` picks the catalog facts it reports."""
    if name in _factories:
        made = _factories[name]()
        if model is not None:
            made.model = model
        return made
    dialect = ALIASES.get(name)
    if dialect is None:
        known = sorted(set(ALIASES) | set(_factories))
        raise KeyError(f"no translator {name!r}; known: {', '.join(known)}")
    return Translator(name, dialect, model=model)


def names() -> list[str]:
    return sorted(set(ALIASES) | set(_factories))
