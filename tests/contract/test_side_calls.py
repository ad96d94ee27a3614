"""Embeddings and token counting through the live app."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from proxy.models import UsageRecord
from tests import factories
from tests.fakes import FakeUpstream, Reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_passes_embeddings_through_to_openai_compatible_upstreams(live: Any, fake: FakeUpstream) -> None:
    factories.provider("up", fake.url + "/v1", models=[{"name": "emb", "upstream": "text-embedding-3-small",
                                                        "input_price": "0.02", "output_price": "0"}])  # fmt: skip
    _, key = factories.api_key(factories.user())
    live.reload()
    fake.queue("/v1/embeddings", Reply({"object": "list", "model": "text-embedding-3-small",
                                        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                                        "usage": {"prompt_tokens": 4, "total_tokens": 4}}))  # fmt: skip
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)
    out = client.embeddings.create(model="emb", input="hello there", encoding_format="float")
    assert out.data[0].embedding == [0.1, 0.2] and out.model == "emb"
    assert fake.last().body["model"] == "text-embedding-3-small"
    live.flush_usage()
    rec = UsageRecord.objects.get()
    assert rec.prompt_tokens == 4 and rec.provider == "up"


def test_it_translates_embeddings_for_gemini_upstreams(live: Any, fake: FakeUpstream) -> None:
    factories.provider("g", fake.url, type="gemini", models=[{"name": "gemb", "upstream": "text-embedding-004"}])
    _, key = factories.api_key(factories.user())
    live.reload()
    fake.queue("/v1beta/models/text-embedding-004:batchEmbedContents",
               Reply({"embeddings": [{"values": [1.0, 2.0]}, {"values": [3.0]}]}))  # fmt: skip
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)
    out = client.embeddings.create(model="gemb", input=["a", "b"], encoding_format="float")
    assert [d.embedding for d in out.data] == [[1.0, 2.0], [3.0]]
    sent = fake.last()
    assert sent.headers["x-goog-api-key"] == "sk-upstream-secret"
    assert [r["content"]["parts"][0]["text"] for r in sent.body["requests"]] == ["a", "b"]


def test_it_counts_tokens_offline_when_the_upstream_has_no_count_endpoint(live: Any, fake: FakeUpstream) -> None:
    factories.provider("up", fake.url + "/v1")
    _, key = factories.api_key(factories.user())
    live.reload()
    client = anthropic.Anthropic(base_url=live.url, api_key=key, max_retries=0, _strict_response_validation=True)
    short = client.messages.count_tokens(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    long = client.messages.count_tokens(model="gpt-test", messages=[{"role": "user", "content": "hello world " * 50}])
    assert 0 < short.input_tokens < long.input_tokens
    assert fake.requests == []


def test_it_asks_anthropic_upstreams_to_count(live: Any, fake: FakeUpstream) -> None:
    factories.provider("c", fake.url, type="claude", models=[{"name": "claude-x", "upstream": "claude-up"}])
    _, key = factories.api_key(factories.user())
    live.reload()
    fake.queue("/v1/messages/count_tokens", Reply({"input_tokens": 1234}))
    client = anthropic.Anthropic(base_url=live.url, api_key=key, max_retries=0, _strict_response_validation=True)
    out = client.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "hi"}])
    assert out.input_tokens == 1234
    assert fake.last().body["model"] == "claude-up" and "max_tokens" not in fake.last().body
