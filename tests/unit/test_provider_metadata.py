"""Anthropic-only block fields ride ``provider_metadata`` on images, tool results and tools,
back to an Anthropic upstream and to the OpenAI Chat routes that carry ``cache_control``."""

from __future__ import annotations

from llmproxy.formats import anthropic as A
from llmproxy.formats import gemini as G
from llmproxy.formats import openai_chat as C
from llmproxy.model import ImagePart, Tool, ToolResultPart

CACHE = {"type": "ephemeral"}
PNG = "iVBORw0KGgo="


def body() -> dict[str, object]:
    return {
        "model": "claude-x", "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": CACHE}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}, "cache_control": CACHE}],
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                       "data": PNG}, "cache_control": CACHE}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok",
                                          "cache_control": CACHE}]},
        ],
    }  # fmt: skip


def test_the_canonical_model_keeps_cache_control_on_images_tool_results_and_tools() -> None:
    req = A.decode_request(body())
    image = req.messages[1].parts[0]
    result = req.messages[3].parts[0]
    assert isinstance(image, ImagePart) and image.provider_metadata == {"anthropic": {"cache_control": CACHE}}
    assert isinstance(result, ToolResultPart) and result.provider_metadata == {"anthropic": {"cache_control": CACHE}}
    assert isinstance(req.tools[0], Tool) and req.tools[0].provider_metadata == {"anthropic": {"cache_control": CACHE}}


def test_an_anthropic_encoder_sends_them_back_where_they_were() -> None:
    out = A.encode_request(A.decode_request(body()))
    assert out["tools"][0]["cache_control"] == CACHE
    assert out["system"][0]["cache_control"] == CACHE
    assert out["messages"][0]["content"][0]["cache_control"] == CACHE
    assert out["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok",
                                                "cache_control": CACHE}  # fmt: skip


def test_openai_chat_carries_them_on_content_parts_only_when_asked() -> None:
    req = A.decode_request(body())
    carried = C.encode_request(req, cache_control=True)
    system, user, _, tool = carried["messages"]
    assert system["content"] == [{"type": "text", "text": "Be brief.", "cache_control": CACHE}]
    assert user["content"][0]["cache_control"] == CACHE and user["content"][0]["type"] == "image_url"
    assert tool["content"] == [{"type": "text", "text": "ok", "cache_control": CACHE}]
    assert "cache_control" not in str(carried["tools"])
    plain = C.encode_request(req)
    assert "cache_control" not in str(plain) and plain["messages"][3]["content"] == "ok"


def test_gemini_drops_them() -> None:
    assert "cache_control" not in str(G.encode_request(A.decode_request(body())))


def test_an_openrouter_style_chat_client_keeps_its_cache_control_to_an_anthropic_upstream() -> None:
    req = C.decode_request({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long rules.", "cache_control": CACHE}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"},
                                      "cache_control": CACHE}]},
    ]})  # fmt: skip
    out = A.encode_request(req)
    assert out["system"] == [{"type": "text", "text": "Long rules.", "cache_control": CACHE}]
    assert [b.get("cache_control") for b in out["messages"][0]["content"]] == [None, CACHE]
    assert "cache_control" not in str(G.encode_request(req))
