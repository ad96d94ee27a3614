"""The contract matrix on the raw bytes: every streamed event valid for its SDK type, in order.

The SDK types do not check how events follow each other, so each client dialect's
ordering rules (wire-formats.md section 4) are checked here on what httpx read: roles and
tool fragments for Chat, sequence numbers and added/done pairs for Responses, block
nesting for Anthropic, where the finish and usage sit for Gemini.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import anthropic.types as at
import httpx
import openai.types.chat as oc
import openai.types.responses as orr
import pytest
from google.genai import types as gt
from pydantic import TypeAdapter

from tests.contract.conftest import CALLS, PAIRS, PARAMS, Pair, Result
from tests.fakes.matrix import Turn

pytestmark = pytest.mark.parametrize("pair", PAIRS, indirect=True)

Frame = tuple[str | None, str]  # (event name, data)
PROMPT = "Weather and time in Paris?"


def sse(data: bytes) -> list[Frame]:
    """SSE frames, parsed here rather than by the proxy's own parser."""
    out: list[Frame] = []
    for block in data.decode().replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln and not ln.startswith(":")]
        if not lines:
            continue
        event = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), None)
        out.append((event, "\n".join(ln[5:].lstrip() for ln in lines if ln.startswith("data:"))))
    return out


# --- requests, one per client dialect --------------------------------------------------


def raw_request(client: str, model: str, key: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A streaming request with both tools and reasoning on, as each dialect's clients send it."""
    bearer = {"authorization": f"Bearer {key}"}
    user = {"role": "user", "content": PROMPT}
    if client == "chat":
        tools: list[Any] = [{"type": "function", "function": {"name": n, "parameters": p}} for n, p in PARAMS.items()]
        body = {"model": model, "messages": [user], "tools": tools, "reasoning_effort": "low", "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        return "/v1/chat/completions", body, bearer
    if client == "responses":
        tools = [{"type": "function", "name": n, "parameters": p, "strict": False} for n, p in PARAMS.items()]
        body = {"model": model, "input": PROMPT, "tools": tools, "stream": True,
                "reasoning": {"effort": "low", "summary": "auto"}}  # fmt: skip
        return "/v1/responses", body, bearer
    if client == "anthropic":
        tools = [{"name": n, "input_schema": p} for n, p in PARAMS.items()]
        body = {"model": model, "max_tokens": 2048, "messages": [user], "tools": tools, "stream": True,
                "thinking": {"type": "enabled", "budget_tokens": 1024}}  # fmt: skip
        return "/v1/messages", body, {"x-api-key": key, "anthropic-version": "2023-06-01"}
    tools = [{"functionDeclarations": [{"name": n, "parametersJsonSchema": p} for n, p in PARAMS.items()]}]
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], "tools": tools,
            "generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}}  # fmt: skip
    return f"/v1beta/models/{model}:streamGenerateContent?alt=sse", body, {"x-goog-api-key": key}


def read_stream(pair: Pair) -> bytes:
    path, body, headers = raw_request(pair.client.name, pair.model, pair.client.key)
    with httpx.stream("POST", pair.live.url + path, json=body, headers=headers, timeout=10) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read()


# --- per-dialect checks ------------------------------------------------------------------


def check_chat(data: bytes) -> Result:
    frames = sse(data)
    assert all(event is None for event, _ in frames) and frames[-1][1] == "[DONE]"
    chunks = [oc.ChatCompletionChunk.model_validate(json.loads(d)) for _, d in frames[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    *body, last = chunks
    assert last.choices == [] and last.usage is not None and all(c.usage is None for c in body)
    finishes = [(i, c.choices[0]) for i, c in enumerate(body) if c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0][0] == len(body) - 1
    assert finishes[0][1].delta.content is None and finishes[0][1].delta.tool_calls is None
    out = Result(finish=finishes[0][1].finish_reason, usage=(last.usage.prompt_tokens, last.usage.completion_tokens))
    args: dict[int, str] = {}
    for c in body:
        delta = c.choices[0].delta
        out.text += delta.content or ""
        out.thinking += (delta.model_extra or {}).get("reasoning_content") or ""
        for tc in delta.tool_calls or []:
            fn = tc.function
            assert fn is not None
            if tc.index not in args:  # the first fragment names the call, and only it
                assert tc.index == len(args) and tc.id and tc.type == "function" and fn.name, tc
                out.call_ids.append(tc.id)
                out.calls.append((fn.name, {}))
                args[tc.index] = ""
            else:
                assert tc.id is None and fn.name is None, tc
            args[tc.index] += fn.arguments or ""
    out.calls = [(name, json.loads(args[i])) for i, (name, _) in enumerate(out.calls)]
    return out


_RESPONSE_EVENT: TypeAdapter[Any] = TypeAdapter(orr.ResponseStreamEvent)
_PAIRED = {"response.output_item", "response.content_part", "response.reasoning_summary_part"}


def check_responses(data: bytes) -> Result:
    frames = [f for f in sse(data) if f[1] != "[DONE]"]
    events = [json.loads(d) for _, d in frames]
    for (name, _), ev in zip(frames, events, strict=True):
        assert name == ev["type"]
        _RESPONSE_EVENT.validate_python(ev)
    assert [ev["sequence_number"] for ev in events] == list(range(len(events)))
    kinds = [ev["type"] for ev in events]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete")
    assert all(
        ev["response"]["usage"] is None for ev in events if ev["type"] in ("response.created", "response.in_progress")
    )
    opened: set[tuple[str, Any]] = set()
    deltas: dict[tuple[str, Any], str] = defaultdict(str)
    done: dict[int, dict[str, Any]] = {}
    for ev in events:
        kind, _, phase = ev["type"].rpartition(".")
        key = kind, (ev.get("output_index"), ev.get("content_index", ev.get("summary_index")))
        if "output_index" in ev and kind != "response.output_item":  # inside an open item only
            assert ("response.output_item", (ev["output_index"], None)) in opened, ev
        if phase == "added":
            assert key not in opened, ev
            opened.add(key)
        elif phase == "delta":
            deltas[key] += ev["delta"]
        elif phase == "done":
            if kind in _PAIRED:
                assert key in opened, ev
                opened.discard(key)
            text = ev.get("text", ev.get("arguments"))
            if isinstance(text, str):  # .done holds exactly what the deltas said
                assert deltas[key] == text, ev
            if kind == "response.output_item":
                done[ev["output_index"]] = ev["item"]
    assert not opened, opened  # every .added has its .done
    final = events[-1]["response"]
    assert final["output"] == [done[i] for i in sorted(done)] and final["usage"] is not None
    resp = orr.Response.model_validate(final)
    calls = [o for o in resp.output if o.type == "function_call"]
    return Result(
        text=resp.output_text, thinking="".join(s.text for o in resp.output if o.type == "reasoning" for s in o.summary),
        calls=[(c.name, json.loads(c.arguments)) for c in calls], call_ids=[c.call_id for c in calls],
        finish="tool_calls" if calls else "stop", usage=(resp.usage.input_tokens, resp.usage.output_tokens) if resp.usage else (0, 0),
    )  # fmt: skip


_ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(at.RawMessageStreamEvent)
_DELTAS = {"text": {"text_delta", "citations_delta"}, "thinking": {"thinking_delta", "signature_delta"},
           "tool_use": {"input_json_delta"}, "redacted_thinking": set()}  # fmt: skip


def check_anthropic(data: bytes) -> Result:
    frames = sse(data)
    assert all(name is not None for name, _ in frames)  # the SDK skips events without a name
    events = [json.loads(d) for name, d in frames if name != "ping"]
    for (name, _), ev in zip([f for f in frames if f[0] != "ping"], events, strict=True):
        assert name == ev["type"]
        _ANTHROPIC_EVENT.validate_python(ev)
    kinds = [ev["type"] for ev in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("message_delta") == 1 and kinds.count("message_start") == 1
    blocks: list[dict[str, Any]] = []
    open_block: dict[str, Any] | None = None
    for ev in events[1:-2]:
        if ev["type"] == "content_block_start":
            assert open_block is None and ev["index"] == len(blocks), ev  # strictly in sequence, never nested
            open_block = {**ev["content_block"], "deltas": []}
        else:
            assert open_block is not None and ev["index"] == len(blocks), ev
            if ev["type"] == "content_block_delta":
                assert ev["delta"]["type"] in _DELTAS[open_block["type"]], (open_block["type"], ev)
                open_block["deltas"].append(ev["delta"])
            else:
                assert ev["type"] == "content_block_stop"
                blocks.append(open_block)
                open_block = None
    assert open_block is None
    out = Result()
    for b in blocks:
        d = b["deltas"]
        if b["type"] == "thinking":
            out.thinking += "".join(x.get("thinking", "") for x in d)
            sigs = [i for i, x in enumerate(d) if x["type"] == "signature_delta"]
            assert sigs in ([], [len(d) - 1]), d  # at most one, just before the stop
        elif b["type"] == "text":
            out.text += "".join(x["text"] for x in d)
        elif b["type"] == "tool_use":
            out.calls.append((b["name"], json.loads("".join(x["partial_json"] for x in d))))
            out.call_ids.append(b["id"])
    delta = events[-2]
    out.finish = {"end_turn": "stop", "tool_use": "tool_calls"}.get(delta["delta"]["stop_reason"], "?")
    start = events[0]["message"]["usage"]
    out.usage = (delta["usage"].get("input_tokens") or start["input_tokens"], delta["usage"]["output_tokens"])
    return out


def check_gemini(data: bytes) -> Result:
    frames = sse(data)
    assert all(name is None for name, _ in frames)
    chunks = [gt.GenerateContentResponse.model_validate(json.loads(d)) for _, d in frames]
    finishes = [i for i, c in enumerate(chunks) if c.candidates and c.candidates[0].finish_reason]
    assert finishes == [len(chunks) - 1]  # on the last chunk only
    out = Result()
    for c in chunks:
        for p in c.candidates[0].content.parts or [] if c.candidates and c.candidates[0].content else []:
            if p.function_call:
                out.calls.append((p.function_call.name or "", dict(p.function_call.args or {})))
                out.call_ids.append(p.function_call.id or "")
            elif p.thought:
                out.thinking += p.text or ""
            else:
                out.text += p.text or ""
    u = chunks[-1].usage_metadata
    assert u is not None
    parts = [u.prompt_token_count, u.candidates_token_count, u.thoughts_token_count, u.tool_use_prompt_token_count]
    assert u.total_token_count == sum(x or 0 for x in parts)
    out.usage = (u.prompt_token_count or 0, (u.candidates_token_count or 0) + (u.thoughts_token_count or 0))
    out.finish = "tool_calls" if out.calls else "stop"
    return out


CHECKS: dict[str, Callable[[bytes], Result]] = {
    "chat": check_chat, "responses": check_responses, "anthropic": check_anthropic, "gemini": check_gemini,
}  # fmt: skip


# --- the tests -------------------------------------------------------------------------------


def test_it_streams_thinking_text_and_parallel_calls_by_the_clients_rules(pair: Pair) -> None:
    turn = Turn(["Checking."], thinking=["Let me ", "think."], calls=CALLS, completion=17, reasoning_tokens=5)
    pair.script(pair.upstream.reply(turn, True))
    got = CHECKS[pair.client.name](read_stream(pair))
    shown = pair.upstream.shows_thinking(pair.fake.requests[0].body)  # see test_it_streams_reasoning_with_the_answer
    assert (got.thinking, got.text, got.calls, got.finish, got.usage) == (
        "Let me think." if shown else "", "Checking.", CALLS, "tool_calls", (31, 17))  # fmt: skip
    pair.client.check_ids(got.call_ids)


def test_it_ends_a_broken_stream_with_one_error_event_and_nothing_after(pair: Pair) -> None:
    pair.script(pair.upstream.broken_stream())
    raw = sse(read_stream(pair))
    if pair.client.name == "chat" and pair.upstream.name != "chat":  # passthrough relays the upstream's bytes
        assert raw[-1] == (None, "[DONE]")
    frames = [f for f in raw if f[1] != "[DONE]" and f[0] != "ping"]
    events = [json.loads(d) for _, d in frames]
    errors = [i for i, ((name, _), ev) in enumerate(zip(frames, events, strict=True))
              if name == "error" or "error" in ev or ev.get("type") == "response.failed"]  # fmt: skip
    assert errors == [len(events) - 1], [f[0] or f[1][:60] for f in frames]
    if pair.client.name == "responses":
        assert [ev["sequence_number"] for ev in events] == list(range(len(events)))
