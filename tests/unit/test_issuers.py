"""Which credential issued a conversation's signatures, and what another one gets instead."""

from __future__ import annotations

from llmproxy.formats.gemini import SKIP_SIGNATURE
from llmproxy.issuers import foreign, record, strip
from llmproxy.state import MemoryStateStore


async def test_only_the_issuing_credential_gets_the_signatures_and_none_once_they_are_mixed() -> None:
    store = MemoryStateStore()
    assert not await foreign(store, "s", "gemini", "g/a")  # nothing issued yet
    await record(store, "s", "gemini", "g/a")
    assert not await foreign(store, "s", "gemini", "g/a")
    assert await foreign(store, "s", "gemini", "g/b")
    await record(store, "s", "gemini", "g/b")
    assert await foreign(store, "s", "gemini", "g/a") and await foreign(store, "s", "gemini", "g/b")
    await record(store, "s", "anthropic", "c/a")  # Anthropic signatures are good on any account
    assert not await foreign(store, "s", "anthropic", "c/b")
    assert not await foreign(store, None, "gemini", "g/b")  # no conversation, nothing known


def test_a_gemini_body_loses_its_signatures_and_keeps_the_validator_skip_on_each_first_call() -> None:
    body = {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [
            {"text": "thinking", "thought": True, "thoughtSignature": "c2ln"},
            {"text": "", "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "b", "args": {}}},
            {"text": "Done.", "thoughtSignature": "c2ln"},
        ]},
    ]}  # fmt: skip
    out = strip(body, "gemini")
    assert out["contents"][1]["parts"] == [
        {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": SKIP_SIGNATURE},
        {"functionCall": {"name": "b", "args": {}}},
        {"text": "Done."},
    ]
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == "c2ln"  # the client's body is not touched


def test_a_responses_body_loses_its_reasoning_items_and_item_ids() -> None:
    body = {"input": [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAA"},
        {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]}  # fmt: skip
    assert strip(body, "openai_responses")["input"] == [
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]
    assert strip(body, "anthropic") is body
