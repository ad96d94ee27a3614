"""The side endpoints through the live gateway, each with its vendor's official SDK.

Model lists in both shapes (the SDKs validate every field they require), token counting
in Anthropic's and Gemini's shape, legacy completions, whole and streamed, to every
upstream dialect, and the passthrough model rename across network chunks. Embeddings
live in test_side_calls.py.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from tests.contract.conftest import EVERY_UPSTREAM, Ask, Pair
from tests.fakes import FakeUpstream, Reply, Stream
from tests.fakes.matrix import UPSTREAMS, Turn

MODELS = [f"m-{u}" for u in EVERY_UPSTREAM]  # the matrix key serves the account routes too


@pytest.fixture
def clients(matrix_key: str, live_server_session: Any, fake: FakeUpstream, django_db_blocker: Any) -> Any:
    url = live_server_session.url
    live_server_session.engine.gateway.router.clear()
    with django_db_blocker.unblock():
        yield (
            openai.OpenAI(base_url=url + "/v1", api_key=matrix_key, max_retries=0, _strict_response_validation=True),
            anthropic.Anthropic(base_url=url, api_key=matrix_key, max_retries=0, _strict_response_validation=True),
            genai.Client(api_key=matrix_key, http_options=types.HttpOptions(
                base_url=url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1))),
        )  # fmt: skip


def test_every_sdk_lists_the_keys_models_in_its_own_shape(clients: Any) -> None:
    oa, an, ge = clients
    assert sorted(m.id for m in oa.models.list()) == sorted(MODELS)
    listed = list(an.models.list())  # strict: every field ModelInfo requires is there
    assert sorted(m.id for m in listed) == sorted(MODELS)
    assert {(m.type, m.lifecycle) for m in listed} == {("model", "active")}
    names = sorted((m.name or "").removeprefix("models/") for m in ge.models.list())
    assert names == sorted(MODELS)


@pytest.mark.parametrize("dialect", list(UPSTREAMS))
def test_gemini_count_tokens_answers_for_every_upstream(clients: Any, fake: FakeUpstream, dialect: str) -> None:
    _, _, ge = clients
    if dialect == "gemini":
        fake.queue("*", Reply({"totalTokens": 321}))
    elif dialect == "anthropic":
        fake.queue("*", Reply({"input_tokens": 123}))
    short = ge.models.count_tokens(model=f"m-{dialect}", contents="hi")
    assert short.total_tokens == {"gemini": 321, "anthropic": 123}.get(dialect, short.total_tokens)
    if dialect in ("chat", "responses"):  # no count endpoint: counted by the gateway, more text -> more tokens
        long = ge.models.count_tokens(model=f"m-{dialect}", contents="hello world " * 50)
        assert 0 < (short.total_tokens or 0) < (long.total_tokens or 0)
        assert fake.requests == []


@pytest.mark.parametrize("dialect", list(UPSTREAMS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_legacy_completions_work_to_every_upstream(
    clients: Any, fake: FakeUpstream, dialect: str, stream: bool
) -> None:
    oa, _, _ = clients
    fake.queue("*", UPSTREAMS[dialect].reply(Turn(["Once ", "upon"], prompt=7, completion=2), stream))
    if stream:
        # Like OpenAI's, the stream's chunks carry ``finish_reason: null`` until the last, which
        # the SDK's strict mode (its type says non-null) refuses for OpenAI itself too.
        oa = openai.OpenAI(base_url=str(oa.base_url), api_key=oa.api_key, max_retries=0)
        chunks = list(oa.completions.create(model=f"m-{dialect}", prompt="Tell a story", max_tokens=5, stream=True))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        assert {c.model for c in chunks} == {f"m-{dialect}"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    else:
        out = oa.completions.create(model=f"m-{dialect}", prompt="Tell a story", max_tokens=5)
        text = out.choices[0].text
        assert (out.model, out.usage.prompt_tokens if out.usage else None) == (f"m-{dialect}", 7)
    assert text == "Once upon"
    sent = UPSTREAMS[dialect].sent(fake.requests[0])
    assert (sent.stream, sent.max_tokens) == (stream, 5)


@pytest.mark.parametrize("pair", ["chat->chat", "anthropic->anthropic"], indirect=True)
def test_a_passthrough_stream_renames_a_model_split_across_two_network_chunks(pair: Pair) -> None:
    """The upstream's frames are cut inside the model name and sent apart: the client still
    sees only the public name."""
    whole = pair.upstream.build(Turn(["Hel", "lo"]), True)
    assert isinstance(whole, Stream)
    data = b"".join(whole.frames)
    at = data.index(pair.upstream.model.encode()) + 3  # inside the upstream model's name
    pair.script(Stream([data[:at], data[at:]], delay=0.05))
    got = pair.client.ask(Ask(stream=True))
    assert (got.text, got.model) == ("Hello", pair.model)
    rec = pair.record()
    assert rec.status_code == 200
