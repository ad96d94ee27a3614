"""Executors of account providers: Copilot's headers and wire choice, Gemini through Code Assist."""

from __future__ import annotations

import json

from llmproxy import providers
from llmproxy.providers._code_assist import StreamUnwrapper, unwrap
from llmproxy.providers.base import Credential, ProviderConfig

COPILOT = ProviderConfig(name="copilot", type="copilot")
TOKEN = Credential("me", "copilot", access_token="tid=1;exp=9", refresh_token="ghu_x",
                   extra={"api_url": "https://api.example.test", "responses_models": ["gpt-5-codex"]})  # fmt: skip


def build(body: dict[str, object], model: str = "gpt-4.1", stream: bool = False,
          cred: Credential = TOKEN) -> tuple[str, dict[str, str], dict[str, object]]:  # fmt: skip
    req = providers.get("copilot")(COPILOT).build(cred, body, model=model, stream=stream)
    assert req.body is not None
    return req.url, req.headers, json.loads(req.body)


def test_copilot_sends_the_copilot_token_and_editor_headers() -> None:
    url, headers, body = build({"messages": [{"role": "user", "content": "hi"}]})
    assert url == "https://api.example.test/chat/completions"
    assert headers["authorization"] == "Bearer tid=1;exp=9"
    assert headers["editor-version"].startswith("llmproxy/")
    assert headers["editor-plugin-version"].startswith("llmproxy/")
    assert headers["copilot-integration-id"] == "vscode-chat"
    assert headers["user-agent"].startswith("llmproxy/")
    assert headers["x-initiator"] == "user"
    assert "copilot-vision-request" not in headers
    assert body["model"] == "gpt-4.1"


def test_copilot_initiator_follows_the_last_message() -> None:
    tool_turn = {"messages": [{"role": "user", "content": "hi"},
                              {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                                   "function": {"name": "f", "arguments": "{}"}}]},
                              {"role": "tool", "tool_call_id": "c", "content": "42"}]}  # fmt: skip
    assert build(tool_turn)[1]["x-initiator"] == "agent"
    again = {"messages": [*tool_turn["messages"], {"role": "user", "content": "thanks"}]}  # type: ignore[list-item]
    assert build(again)[1]["x-initiator"] == "user"
    responses = {"input": [{"type": "function_call_output", "call_id": "c", "output": "42"}]}
    assert build(responses, model="gpt-5-codex")[1]["x-initiator"] == "agent"


def test_copilot_marks_image_requests_for_vision() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]}
    assert build(body)[1]["copilot-vision-request"] == "true"


def test_copilot_speaks_responses_to_models_that_only_list_it() -> None:
    ex = providers.get("copilot")(COPILOT)
    assert ex.dialect_for("gpt-5-codex", TOKEN) == "openai_responses"  # type: ignore[attr-defined]
    assert ex.dialect_for("gpt-4.1", TOKEN) == "openai_chat"  # type: ignore[attr-defined]
    url, _, body = build({"input": "hi", "stream": True}, model="gpt-5-codex", stream=True)
    assert url == "https://api.example.test/responses"
    assert "stream_options" not in body
    _, _, chat = build({"messages": [], "stream": True}, stream=True)
    assert chat["stream_options"] == {"include_usage": True}


def test_copilot_base_url_wins_over_the_exchanged_endpoint() -> None:
    ex = providers.get("copilot")(ProviderConfig(name="c", type="copilot", base_url="http://mirror.test/"))
    assert ex.build(TOKEN, {"messages": []}, model="m", stream=False).url == "http://mirror.test/chat/completions"


GEMINI_OAUTH = ProviderConfig(name="g", type="gemini", options={"auth_type": "oauth"})
GOOGLE = Credential("me", "g", access_token="ya29.x", refresh_token="1//r", extra={"project_id": "proud-lamp"})


def test_gemini_oauth_goes_through_code_assist_in_its_wrapper() -> None:
    ex = providers.get("gemini")(GEMINI_OAUTH)
    req = ex.build(GOOGLE, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, model="models/gemini-2.5-pro",
                   stream=True)  # fmt: skip
    assert req.url == "https://cloudcode-pa.googleapis.com/v1internal:streamGenerateContent?alt=sse"
    assert req.headers["authorization"] == "Bearer ya29.x"
    assert "x-goog-user-project" not in req.headers
    assert req.body is not None
    body = json.loads(req.body)
    assert body["model"] == "gemini-2.5-pro" and body["project"] == "proud-lamp"
    assert body["request"] == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_gemini_with_a_key_is_unchanged() -> None:
    ex = providers.get("gemini")(ProviderConfig(name="g", type="gemini"))
    req = ex.build(Credential("k", "g", api_key="AIza"), {"contents": []}, model="gemini-2.5-pro", stream=False)
    assert req.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"
    assert ex.unwrap_body(b'{"response": {"a": 1}}') == b'{"response": {"a": 1}}'  # type: ignore[attr-defined]


def test_code_assist_replies_unwrap_whole_and_streamed() -> None:
    assert json.loads(unwrap(b'{"response": {"candidates": []}, "traceId": "t1"}')) == {"candidates": [],
                                                                                        "responseId": "t1"}  # fmt: skip
    u = StreamUnwrapper()
    stream = b'data: {"response": {"n": 1}, "traceId": "t"}\r\n\r\ndata: {"response": {"n": 2}}\n\n'
    out = b"".join(u.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) + u.close()
    assert out == b'data: {"n":1}\r\n\r\ndata: {"n":2}\n\n'
