"""The offline ``demo`` provider: a scripted model that answers without any network.

It exists so that a fresh install can answer a request at once (``make run`` configures
it), and so tests and demos have a provider that needs no key. It speaks OpenAI Chat;
the gateway translates to and from every other dialect as it does for a real upstream.
The script is deterministic:

* no tools offered: an echo of the last user message;
* tools offered (and ``tool_choice`` not ``none``): a labelled line of text, then one call of
  the first tool (or the one ``tool_choice`` names), with arguments made from the tool's JSON
  schema;
* the last message a tool result: a final answer quoting that result.

Every reply carries text starting with :data:`LABEL` (a tool call too: text and a call is
what real models send as well), so nobody mistakes it for a model's answer.
Usage carries real token counts (the offline tokenizer); a demo route has no price.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from .._json import dumps, dumps_str, loads
from ..formats import openai_chat
from ..http import UpstreamReply, UpstreamRequest
from ..model import (
    Request,
    Response,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    Usage,
)
from ..tokens import count_request, count_text
from .base import Credential, Executor

#: The type name in config.yaml and the one model a demo provider serves.
DEMO = "demo"
LABEL = "[llmproxy demo provider]"
BASE_URL = "demo://offline"
#: Reply texts are cut to this many characters of the client's own text.
ECHO_CHARS = 2000
EMBEDDING_DIMENSIONS = 8


def script(req: Request) -> Response:
    """The scripted reply to a canonical request (the heart of the demo provider)."""
    rid = "chatcmpl-demo-" + _digest(req)[:24]
    last = req.messages[-1] if req.messages else None
    results = [p for p in last.parts if isinstance(p, ToolResultPart)] if last is not None else []
    tool = _chosen_tool(req)
    if results:
        quoted = "; ".join(_result_text(r) for r in results)
        text = f"{LABEL} The tool answered: {quoted[:ECHO_CHARS]}. That is the end of the scripted tool demo."
        parts: list[Any] = [TextPart(text)]
        finish: Any = "stop"
    elif tool is not None:
        args = dumps_str(sample_arguments(tool.parameters, _last_user_text(req)))
        note = f"{LABEL} A scripted call of the tool {tool.name!r}; send its result back for the final answer."
        parts = [TextPart(note), ToolCallPart(id="call_demo_" + _digest(req)[:16], name=tool.name, arguments=args)]
        finish = "tool_calls"
    else:
        said = _last_user_text(req)[:ECHO_CHARS]
        text = f'{LABEL} You said: "{said}". This is an offline echo; add a real provider to talk to a model.'
        parts = [TextPart(text)]
        finish = "stop"
    out = sum(count_text(p.text) if isinstance(p, TextPart) else count_text(p.name) + count_text(p.arguments)
              for p in parts)  # fmt: skip
    usage = Usage(input_tokens=count_request(req), output_tokens=out)
    return Response(id=rid, model=req.model, parts=parts, finish_reason=finish, usage=usage, created=0)


def stream_events(resp: Response) -> list[StreamEvent]:
    """The same reply as stream events: text word by word, a tool call's arguments in two pieces."""
    events: list[StreamEvent] = [StreamStart(id=resp.id, model=resp.model, created=resp.created)]
    index = 0
    for part in resp.parts:
        if isinstance(part, TextPart):
            words = part.text.split(" ")
            events.extend(TextDelta(w if i == 0 else " " + w) for i, w in enumerate(words))
        elif isinstance(part, ToolCallPart):
            events.append(ToolCallStart(index=index, id=part.id, name=part.name))
            half = len(part.arguments) // 2
            events.extend(
                ToolCallDelta(index=index, arguments=a) for a in (part.arguments[:half], part.arguments[half:])
            )
            index += 1
    events.append(StreamEnd(finish_reason=resp.finish_reason, usage=resp.usage))
    return events


def sample_arguments(schema: Mapping[str, Any], text: str) -> dict[str, Any]:
    """Arguments that satisfy a simple JSON schema: every required property (all, if none
    are marked required) gets a value of its type; strings get the user's text."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping):
        return {}
    required = schema.get("required")
    names = [n for n in props if not isinstance(required, list) or n in required]
    return {name: _sample(props[name], text) for name in names}


def _sample(schema: Any, text: str) -> Any:
    if not isinstance(schema, Mapping):
        return text
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return [_sample(schema.get("items"), text)]
    if kind == "object":
        return sample_arguments(schema, text)
    return text or "demo"


def _chosen_tool(req: Request) -> Tool | None:
    if not req.tools or (req.tool_choice is not None and req.tool_choice.mode == "none"):
        return None
    if req.tool_choice is not None and req.tool_choice.mode == "tool" and req.tool_choice.name:
        return next((t for t in req.tools if t.name == req.tool_choice.name), req.tools[0])
    return req.tools[0]


def _last_user_text(req: Request) -> str:
    for m in reversed(req.messages):
        if m.role == "user" and m.text():
            return m.text()
    return ""


def _result_text(result: ToolResultPart) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextPart)) or "(no text)"


def _digest(req: Request) -> str:
    seen = [(m.role, m.text()) for m in req.messages]
    return hashlib.sha256(dumps_str(seen).encode()).hexdigest()


def _embeddings(body: Mapping[str, Any]) -> dict[str, Any]:
    """Deterministic unit-free vectors (a hash of each input), OpenAI's embeddings shape."""
    raw = body.get("input", "")
    inputs = raw if isinstance(raw, list) else [raw]
    asked = body.get("dimensions")
    dims = asked if isinstance(asked, int) and 0 < asked <= 4096 else EMBEDDING_DIMENSIONS
    data, tokens = [], 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else dumps_str(item)
        tokens += count_text(text)
        h = hashlib.sha256(text.encode()).digest()
        vector = [round((h[j % len(h)] - 127.5) / 127.5, 6) for j in range(dims)]
        data.append({"object": "embedding", "index": i, "embedding": vector})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body.get("model", DEMO), "usage": usage}


class DemoExecutor(Executor):
    """Answers in-process: the request it builds carries its own answer (``local``)."""

    dialect = "openai_chat"
    type_name: ClassVar[str] = "demo"
    model_prefixes: ClassVar[tuple[str, ...]] = ("demo",)
    default_base_url: ClassVar[str] = BASE_URL

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
        body["model"] = model
        headers = {"content-type": "application/json"}
        return UpstreamRequest("POST", f"{BASE_URL}/{endpoint}", headers, dumps(body), stream, local=answer)

    def health_request(self, credential: Credential) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{BASE_URL}/models", {}, None, False, local=answer)


def answer(req: UpstreamRequest) -> UpstreamReply:
    """The in-process reply to a request the demo executor built (no I/O)."""
    endpoint = req.url.rsplit("/", 1)[-1]
    if endpoint == "models":
        return _json(200, {"object": "list", "data": [{"id": DEMO, "object": "model", "owned_by": "llmproxy-demo"}]})
    body = loads(req.body or b"{}")
    if endpoint == "embeddings":
        return _json(200, _embeddings(body))
    if endpoint != "chat":
        return _json(404, {"error": {"message": f"the demo provider has no {endpoint!r} endpoint",
                                     "type": "invalid_request_error"}})  # fmt: skip
    creq = openai_chat.decode_request(body)
    resp = script(creq)
    if not creq.stream:
        return _json(200, openai_chat.encode_response(resp))
    # The encoder puts "chatcmpl-" in front itself: the same id as the non-streamed reply's.
    rid = resp.id.removeprefix("chatcmpl-")
    enc = openai_chat.StreamEncoder(model=resp.model, include_usage=creq.include_usage, request_id=rid)
    chunks = [enc.encode(e) for e in stream_events(resp)]
    return LocalReply(200, {"content-type": "text/event-stream"}, [c for c in chunks if c])


def _json(status: int, data: dict[str, Any]) -> UpstreamReply:
    return LocalReply(status, {"content-type": "application/json"}, [dumps(data)])


class LocalReply(UpstreamReply):
    """A reply made in memory: the body as the chunks a stream would bring."""

    __slots__ = ("chunks",)

    def __init__(self, status: int, headers: Mapping[str, str], chunks: list[bytes]) -> None:
        super().__init__(status, headers)
        self.chunks = chunks

    async def read(self) -> bytes:
        return b"".join(self.chunks)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
