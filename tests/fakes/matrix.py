"""The upstream side of the contract matrix: one fake per wire dialect, speaking its real protocol.

Each ``Upstream`` turns a dialect-neutral ``Turn`` (what the model says) into the reply or
stream that dialect's server sends, builds its error replies and broken streams, and reads
back what the proxy sent it (``Sent``), so a test can assert the request arrived correct in
that dialect: tool calls and results in order with matching ids or names, images, limits.
Like the real servers, the fakes send reasoning text only when the request asks to see it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from . import anthropic as fa
from . import gemini as fg
from . import responses as fr
from .server import Recorded, Reply, Script, Stream

UPSTREAM_MODEL = "up-model"
GEMINI_MODEL = "gemini-2.5-flash"
# A real Gemini thought signature is opaque base64; the proxy must hand it back on replay.
SIGNATURE = "CiQBVKhc7w=="


@dataclass
class Turn:
    """What the fake model answers, in no dialect: thinking, text, tool calls, how it stopped."""

    texts: list[str] = field(default_factory=lambda: ["Hel", "lo"])
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    finish: str = "stop"  # stop | length (tool_calls follows from calls)
    prompt: int = 31
    completion: int = 17
    reasoning_tokens: int = 0


@dataclass
class Sent:
    """What the upstream received, read in its own dialect. ``history`` holds
    ``("call", id, name, args)`` and ``("result", id, name, text)`` in wire order."""

    model: str
    stream: bool | None  # None: the request does not say (Kiro)
    history: list[tuple[str, str | None, str | None, Any]]
    images: list[tuple[str, bytes]]  # (media type, decoded data)
    max_tokens: int | None
    schema: dict[str, Any] | None
    reasoning: Any
    tools: list[str]
    system: str | None
    body: Any


def _finish_openai(turn: Turn) -> str:
    return "length" if turn.finish == "length" else "tool_calls" if turn.calls else "stop"


def _image(media_type: str, data: str, *, urlsafe: bool = False) -> tuple[str, bytes]:
    """The image's bytes: standard base64 only, unless the dialect (Gemini) takes both alphabets."""
    if urlsafe:
        data = data.replace("-", "+").replace("_", "/")
    return media_type, base64.b64decode(data, validate=True)


def _data_url(url: str) -> tuple[str, bytes]:
    header, _, data = url.partition(",")
    assert header.endswith(";base64"), header
    return _image(header[5:].split(";")[0], data)


class Upstream:
    name = ""
    type = ""
    options: dict[str, Any] = {}
    #: Account upstreams (``matrix_accounts``): the provider's auth type and the credential row's fields.
    auth_type = "api_key"
    credential: dict[str, Any] = {}
    suffix = ""
    model = UPSTREAM_MODEL
    #: Whether the request says it wants a stream (Kiro's never does: every reply is one).
    stream_on_wire = True

    def build(self, turn: Turn, stream: bool) -> Reply | Stream:
        """The reply as the model gives it."""
        raise NotImplementedError

    def reply(self, turn: Turn, stream: bool) -> Script:
        """The reply as the upstream sends it: thinking only when the request asked to see it."""

        def answer(rec: Recorded) -> Reply | Stream:
            return self.build(turn if self.shows_thinking(rec.body) else dataclasses.replace(turn, thinking=[]), stream)

        return answer

    def shows_thinking(self, body: Any) -> bool:
        raise NotImplementedError

    def usage(self, turn: Turn) -> tuple[int, int]:
        """The (input, output) tokens the proxy should record for ``turn``: the upstream's own counts."""
        return turn.prompt, turn.completion

    def error(self, status: int, retry_after: str | None = None) -> Reply:
        raise NotImplementedError

    def broken_stream(self) -> Stream:
        """Some text, then the dialect's own mid-stream error event."""
        raise NotImplementedError

    def sent(self, rec: Recorded) -> Sent:
        """The request read in this dialect; asserts the rules the real API answers 400 for
        (tool results pair with earlier calls, required fields, non-empty blocks)."""
        raise NotImplementedError


class ChatUpstream(Upstream):
    name, type, suffix = "chat", "openai-compatible", "/v1"

    def shows_thinking(self, body: Any) -> bool:
        return True  # reasoning models behind vLLM, DeepSeek, OpenRouter send reasoning text unasked

    def build(self, turn: Turn, stream: bool) -> Reply | Stream:
        return Stream(self._frames(turn)) if stream else Reply(self._body(turn))

    def _usage(self, turn: Turn) -> dict[str, Any]:
        return {"prompt_tokens": turn.prompt, "completion_tokens": turn.completion,
                "total_tokens": turn.prompt + turn.completion, "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": turn.reasoning_tokens}}  # fmt: skip

    def _body(self, turn: Turn) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(turn.texts) or None, "refusal": None}
        if turn.thinking:
            msg["reasoning_content"] = "".join(turn.thinking)
        if turn.calls:
            msg["tool_calls"] = [{"id": f"call_up{i}", "type": "function",
                                  "function": {"name": n, "arguments": json.dumps(a)}}
                                 for i, (n, a) in enumerate(turn.calls)]  # fmt: skip
        return {"id": "chatcmpl-up", "object": "chat.completion", "created": 1730000000, "model": self.model,
                "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": _finish_openai(turn)}],
                "usage": self._usage(turn)}  # fmt: skip

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
        body = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1730000000, "model": self.model,
                "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
                "usage": usage}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n".encode()

    def _frames(self, turn: Turn) -> list[bytes]:
        frames = [self._chunk({"role": "assistant", "content": ""})]
        frames += [self._chunk({"reasoning_content": t}) for t in turn.thinking]
        frames += [self._chunk({"content": t}) for t in turn.texts]
        for i, (name, args) in enumerate(turn.calls):
            head = {"index": i, "id": f"call_up{i}", "type": "function", "function": {"name": name, "arguments": ""}}
            frames.append(self._chunk({"tool_calls": [head]}))
            text = json.dumps(args)
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                frames.append(self._chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
        frames.append(self._chunk({}, _finish_openai(turn)))
        frames.append(self._chunk(None, usage=self._usage(turn)))
        return [*frames, b"data: [DONE]\n\n"]

    def error(self, status: int, retry_after: str | None = None) -> Reply:
        kind = {429: "rate_limit_error"}.get(status, "server_error")
        return Reply({"error": {"message": "upstream says no", "type": kind, "param": None, "code": None}},
                     status=status, headers={"retry-after": retry_after} if retry_after else {})  # fmt: skip

    def broken_stream(self) -> Stream:
        err = {"error": {"message": "upstream overloaded", "type": "server_error", "param": None, "code": None}}
        frames = self._frames(Turn(texts=["Hel"]))[:2]
        return Stream([*frames, f"data: {json.dumps(err)}\n\n".encode()])

    def sent(self, rec: Recorded) -> Sent:
        b = rec.body
        history: list[tuple[str, str | None, str | None, Any]] = []
        images: list[tuple[str, bytes]] = []
        system = None
        for m in b["messages"]:
            if m["role"] in ("system", "developer"):
                system = m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"])
            for c in m.get("tool_calls") or []:
                fn = c["function"]
                history.append(("call", c["id"], fn["name"], json.loads(fn["arguments"])))
            if m["role"] == "tool":  # the API's rule: a tool message answers a call made before it
                assert m["tool_call_id"] in {h[1] for h in history if h[0] == "call"}, m
                history.append(("result", m["tool_call_id"], None, m["content"]))
            if isinstance(m.get("content"), list):
                images += [_data_url(p["image_url"]["url"]) for p in m["content"] if p.get("type") == "image_url"]
        rf = b.get("response_format") or {}
        return Sent(
            model=b["model"], stream=bool(b.get("stream")), history=history, images=images,
            max_tokens=b.get("max_completion_tokens", b.get("max_tokens")),
            schema=(rf.get("json_schema") or {}).get("schema") if rf.get("type") == "json_schema" else None,
            reasoning=b.get("reasoning_effort"), tools=[t["function"]["name"] for t in b.get("tools") or []],
            system=system, body=b,
        )  # fmt: skip


class ResponsesUpstream(Upstream):
    name, type, suffix = "responses", "openai", "/v1"
    options = {"wire": "responses"}

    def shows_thinking(self, body: Any) -> bool:
        return bool((body.get("reasoning") or {}).get("summary"))  # no summary unless asked for

    def _kw(self, turn: Turn) -> dict[str, Any]:
        return {
            "calls": [fr.Call(n, a, call_id=f"call_up{i}") for i, (n, a) in enumerate(turn.calls)],
            "thought": fr.Thought(summary=["".join(turn.thinking)]) if turn.thinking else None,
            "incomplete_reason": "max_output_tokens" if turn.finish == "length" else None,
            "usage_": fr.usage(turn.prompt, turn.completion, reasoning=turn.reasoning_tokens),
            "model": self.model,
        }

    def build(self, turn: Turn, stream: bool) -> Reply | Stream:
        if stream:
            return fr.stream(turn.texts, **self._kw(turn))
        return fr.response("".join(turn.texts) or None, **self._kw(turn))

    def error(self, status: int, retry_after: str | None = None) -> Reply:
        return fr.error(status, headers={"retry-after": retry_after} if retry_after else None)

    def broken_stream(self) -> Stream:
        return fr.failed_stream("upstream overloaded", texts=["Hel"])

    def sent(self, rec: Recorded) -> Sent:
        b = rec.body
        history: list[tuple[str, str | None, str | None, Any]] = []
        images: list[tuple[str, bytes]] = []
        items = b["input"] if isinstance(b["input"], list) else []
        for item in items:
            kind = item.get("type", "message")
            if kind == "function_call":
                history.append(("call", item["call_id"], item["name"], json.loads(item["arguments"])))
            elif kind == "function_call_output":
                assert item["call_id"] in {h[1] for h in history if h[0] == "call"}, item
                history.append(("result", item["call_id"], None, item["output"]))
            elif kind == "message" and isinstance(item.get("content"), list):
                images += [_data_url(p["image_url"]) for p in item["content"] if p.get("type") == "input_image"]
        fmt = (b.get("text") or {}).get("format") or {}
        return Sent(
            model=b["model"], stream=bool(b.get("stream")), history=history, images=images,
            max_tokens=b.get("max_output_tokens"), schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
            reasoning=b.get("reasoning"), tools=[t.get("name", t["type"]) for t in b.get("tools") or []],
            system=b.get("instructions"), body=b,
        )  # fmt: skip


class GeminiUpstream(Upstream):
    name, type, suffix = "gemini", "gemini", ""
    model = GEMINI_MODEL

    def shows_thinking(self, body: Any) -> bool:
        tc = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
        return bool(tc.get("includeThoughts", tc.get("include_thoughts")))

    def _calls(self, turn: Turn) -> list[dict[str, Any]]:
        # Gemini sends no call ids; the first call of a turn carries the thought signature.
        return [fg.call_part(n, a, signature=SIGNATURE if i == 0 else None) for i, (n, a) in enumerate(turn.calls)]

    def build(self, turn: Turn, stream: bool) -> Reply | Stream:
        finish = "MAX_TOKENS" if turn.finish == "length" else "STOP"
        thoughts = ["".join(turn.thinking)] if turn.thinking else None
        candidates = turn.completion - turn.reasoning_tokens
        if stream:
            items = fg.chunks(turn.texts, model=self.model, calls=self._calls(turn), thoughts=thoughts,
                              finish=finish, prompt=turn.prompt, candidates=candidates,
                              thoughts_tokens=turn.reasoning_tokens)  # fmt: skip
            return Stream(fg.sse_frames(items))
        usage = fg.usage(turn.prompt, candidates, turn.reasoning_tokens)
        return fg.response("".join(turn.texts) or None, model=self.model, calls=self._calls(turn),
                           thoughts=thoughts, finish=finish, usage_=usage)  # fmt: skip

    def error(self, status: int, retry_after: str | None = None) -> Reply:
        return fg.error(status, headers={"retry-after": retry_after} if retry_after else None)

    def broken_stream(self) -> Stream:
        first = fg.chunks(["Hel", "lo"], model=self.model)[0]
        err = fg.error_body(503, "upstream overloaded")
        return Stream(fg.sse_frames([first, err]))

    def sent(self, rec: Recorded) -> Sent:
        b = rec.body
        history: list[tuple[str, str | None, str | None, Any]] = []
        images: list[tuple[str, bytes]] = []
        calls = 0
        for content in b["contents"]:
            kinds = [next(iter(k for k in p if k != "thoughtSignature"), "") for p in content["parts"]]
            if calls:  # the API's rule: one user turn answers every call of the model turn before it
                assert content.get("role") == "user" and kinds == ["functionResponse"] * calls, kinds
            calls = kinds.count("functionCall") if content.get("role") == "model" else 0
            for p in content["parts"]:
                if "functionCall" in p:
                    fc = p["functionCall"]
                    history.append(("call", fc.get("id"), fc["name"], fc.get("args") or {}))
                elif "functionResponse" in p:
                    fr_ = p["functionResponse"]
                    history.append(("result", fr_.get("id"), fr_["name"], fr_.get("response")))
                elif "inlineData" in p:
                    data = p["inlineData"]
                    images.append(_image(data.get("mimeType") or data.get("mime_type"), data["data"], urlsafe=True))
        gc = b.get("generationConfig") or {}
        schema = gc.get("responseJsonSchema") or gc.get("responseSchema")
        system = b.get("systemInstruction")
        model, _, action = rec.path.rpartition("/")[2].partition(":")
        declarations = [d for t in b.get("tools") or [] for d in t.get("functionDeclarations") or []]
        return Sent(
            model=model, stream=action == "streamGenerateContent" and rec.query.get("alt") == "sse",
            history=history, images=images, max_tokens=gc.get("maxOutputTokens"),
            schema=schema if gc.get("responseMimeType") == "application/json" else None,
            reasoning=gc.get("thinkingConfig"), tools=[d["name"] for d in declarations],
            system="".join(p.get("text", "") for p in system["parts"]) if system else None, body=b,
        )  # fmt: skip


class AnthropicUpstream(Upstream):
    name, type, suffix = "anthropic", "claude", ""
    model = "claude-sonnet-4-5"

    def shows_thinking(self, body: Any) -> bool:
        thinking = body.get("thinking") or {}
        return thinking.get("type") in ("enabled", "adaptive") and thinking.get("display") != "omitted"

    def _blocks(self, turn: Turn) -> list[dict[str, Any]]:
        blocks = [fa.thinking("".join(turn.thinking))] if turn.thinking else []
        if "".join(turn.texts):
            blocks.append(fa.text("".join(turn.texts)))
        return blocks + [fa.tool_use(n, a, id=f"toolu_up{i}") for i, (n, a) in enumerate(turn.calls)]

    def build(self, turn: Turn, stream: bool) -> Reply | Stream:
        kw: dict[str, Any] = {"model": self.model, "usage_": fa.usage(turn.prompt, turn.completion),
                              "stop_reason": "max_tokens" if turn.finish == "length" else None}  # fmt: skip
        return fa.stream(self._blocks(turn), **kw) if stream else fa.response(self._blocks(turn), **kw)

    def error(self, status: int, retry_after: str | None = None) -> Reply:
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return fa.error(status, kind, headers={"retry-after": retry_after} if retry_after else None)

    def broken_stream(self) -> Stream:
        frames = fa.frames("Hello", model=self.model, ping=False, end=False)
        return Stream([*frames[:3], fa.error_event()])  # message_start, block start, one delta

    def sent(self, rec: Recorded) -> Sent:
        b = rec.body
        history: list[tuple[str, str | None, str | None, Any]] = []
        images: list[tuple[str, bytes]] = []
        after_calls = False
        assert isinstance(b.get("max_tokens"), int), "max_tokens is required"
        thinking = b.get("thinking") or {}
        if thinking.get("type") == "enabled":
            assert 1024 <= thinking["budget_tokens"] < b["max_tokens"], (thinking, b["max_tokens"])
        for m in b["messages"]:
            blocks = [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str) else m["content"]
            kinds = [bl["type"] for bl in blocks]
            if after_calls:  # the API's rule: tool_result blocks come first, right after the tool_use turn
                assert m["role"] == "user" and kinds[0] == "tool_result", kinds
            after_calls = "tool_use" in kinds
            for bl in blocks:
                assert bl["type"] != "text" or bl["text"], "text content blocks must be non-empty"
                if bl["type"] == "tool_use":
                    history.append(("call", bl["id"], bl["name"], bl["input"]))
                elif bl["type"] == "tool_result":
                    content = bl.get("content")
                    text = content if isinstance(content, str) else "".join(c.get("text", "") for c in content or [])
                    history.append(("result", bl["tool_use_id"], None, text))
                elif bl["type"] == "image" and bl["source"]["type"] == "base64":
                    images.append(_image(bl["source"]["media_type"], bl["source"]["data"]))
        fmt = (b.get("output_config") or {}).get("format") or {}
        system = b.get("system")
        return Sent(
            model=b["model"], stream=bool(b.get("stream")), history=history, images=images,
            max_tokens=b.get("max_tokens"), schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
            reasoning=b.get("thinking"), tools=[t["name"] for t in b.get("tools") or []],
            system=system if isinstance(system, str) or system is None else "".join(x["text"] for x in system),
            body=b,
        )  # fmt: skip


UPSTREAMS: dict[str, Upstream] = {
    u.name: u for u in (ChatUpstream(), ResponsesUpstream(), AnthropicUpstream(), GeminiUpstream())
}
