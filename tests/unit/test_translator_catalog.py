"""Every provider type has a translator, and ``max_tokens`` comes from the model catalog."""

from __future__ import annotations

import pytest

from llmproxy import pricing, providers, translator


@pytest.mark.parametrize("provider_type", sorted(providers.EXECUTORS))
def test_every_provider_type_has_a_translator(provider_type: str) -> None:
    t = translator.get(provider_type)
    assert t.name == provider_type
    body = t.translate_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert body  # the codec encoded a real request for that dialect
    assert t.supports_streaming and t.supports_functions


def test_copilot_and_demo_speak_openai_chat() -> None:
    assert translator.get("copilot").dialect == "openai_chat"
    assert translator.get("demo").dialect == "openai_chat"


def test_max_tokens_is_the_catalog_cap_of_the_model() -> None:
    entry = pricing.lookup("gpt-4o")
    assert entry is not None and entry.max_output == 16384
    assert translator.get("openai", model="gpt-4o").max_tokens == 16384
    assert translator.get("claude", model="claude-3-5-haiku-20241022").max_tokens == 8192
    # An unlisted model, or none: the dialect's default.
    assert translator.get("openai", model="my-local-model").max_tokens == translator.MAX_TOKENS["openai_chat"]
    assert translator.get("claude").max_tokens == translator.MAX_TOKENS["anthropic"]


def test_a_registered_factory_gets_the_model_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translator, "_factories", {})  # keep the registry as it was for other tests
    translator.register("test-catalog-dialect", lambda: translator.Translator("test-catalog-dialect", "openai_chat"))
    assert translator.get("test-catalog-dialect", model="gpt-4.1").max_tokens == 32768
