"""The canonical, provider-neutral model every dialect decodes into and encodes from.

One codec per wire dialect translates between its JSON and these types, so N dialects
need N codecs rather than N x N translators. Invariants:

* ``Message.role`` is one of ``system``, ``user``, ``assistant``, ``tool``. System prompts
  stay where the client put them (first message or mid-history); encoders hoist them when
  their dialect has only a top-level system field.
* A ``tool`` message holds only ``ToolResultPart``s; an ``assistant`` message may hold
  text, thinking and tool calls, in the order the model produced them.
* ``ToolCallPart.arguments`` is always JSON *text* (dialects that use objects parse and
  dump at their boundary).
* ``ThinkingPart.signature`` is only meaningful to the dialect named in
  ``ThinkingPart.source``; an encoder for another dialect must not send it.
* ``Usage.input_tokens`` includes cached tokens; ``Usage.output_tokens`` includes
  reasoning tokens (OpenAI's convention).
* ``provider_metadata`` carries opaque data that must be sent back untouched (Gemini
  thought signatures, Anthropic ``cache_control``), keyed by dialect name. Text, images,
  tool calls, tool results, thinking and tools have one; an encoder sends what its dialect
  can carry and drops the rest (docs/providers.md says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
Metadata = dict[str, Any]


@dataclass(slots=True)
class TextPart:
    text: str
    provider_metadata: Metadata | None = None


@dataclass(slots=True)
class ImagePart:
    """An image, either by URL (``url``) or inline (``data`` base64 + ``media_type``)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None
    provider_metadata: Metadata | None = None


@dataclass(slots=True)
class ToolCallPart:
    id: str
    name: str
    arguments: str = "{}"
    provider_metadata: Metadata | None = None


@dataclass(slots=True)
class ToolResultPart:
    tool_call_id: str
    content: list[TextPart | ImagePart] = field(default_factory=list)
    is_error: bool = False
    name: str | None = None
    provider_metadata: Metadata | None = None


@dataclass(slots=True)
class ThinkingPart:
    """Model reasoning. ``redacted`` blocks carry their opaque payload in ``signature``."""

    text: str = ""
    signature: str | None = None
    source: str | None = None
    redacted: bool = False
    provider_metadata: Metadata | None = None


Part = TextPart | ImagePart | ToolCallPart | ToolResultPart | ThinkingPart


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)
    name: str | None = None

    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    provider_metadata: Metadata | None = None


@dataclass(slots=True)
class ToolChoice:
    """``mode`` is auto | none | required | tool (``name`` set for tool)."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None


@dataclass(slots=True)
class Reasoning:
    """What the client asked for: an effort level, a token budget, or both."""

    effort: Effort | None = None
    budget_tokens: int | None = None
    include_thoughts: bool | None = None
    summary: str | None = None


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Request:
    model: str
    messages: list[Message] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    reasoning: Reasoning | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Dialect-specific fields with no canonical home, kept for same-dialect egress.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    """Token counts of one reply. ``input_tokens`` is the whole prompt, cache reads and writes included.

    ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written to Anthropic's
    1-hour cache, which is priced apart from the 5-minute writes; 0 when the upstream does
    not report the split.

    ``estimated``: some of these counts are the gateway's own (``llmproxy.tokens``), because
    the upstream reported none: Kiro's output tokens always, a prompt the upstream gave no
    count for, a stream that ended without usage. Cost and TPM are charged on them all the same.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class Response:
    id: str
    model: str
    parts: list[Part] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    stop_sequence: str | None = None
    created: int = 0

    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


# --- stream events -------------------------------------------------------------------
# A stream is: StreamStart, then any of the deltas, then exactly one StreamEnd.
# UsageUpdate may come at any point; the last one (or StreamEnd.usage) is final.


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    created: int = 0
    usage: Usage | None = None


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    text: str = ""
    signature: str | None = None
    source: str | None = None
    redacted: bool = False
    provider_metadata: Metadata | None = None


@dataclass(slots=True)
class ToolCallStart:
    """A new tool call. ``index`` counts tool calls from 0 within one response."""

    index: int
    id: str
    name: str
    provider_metadata: Metadata | None = None


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str


@dataclass(slots=True)
class UsageUpdate:
    usage: Usage


@dataclass(slots=True)
class StreamEnd:
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    stop_sequence: str | None = None


StreamEvent = StreamStart | TextDelta | ThinkingDelta | ToolCallStart | ToolCallDelta | UsageUpdate | StreamEnd
