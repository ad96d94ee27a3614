"""Custom translators and executors, registered by name and chosen in config.yaml (INTERFACE.md section 7).

``translator.register("shout", codec)`` makes ``translator: shout`` a valid provider field,
and that provider's requests and replies then go through the codec; ``providers.register``
makes ``type: my-type`` valid, and its executor builds the upstream request. Both are run
end to end here: config file -> ``Gateway.from_config`` -> a fake upstream -> the reply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from llmproxy import Gateway, formats, providers, translator
from llmproxy.config import ConfigError, load
from llmproxy.formats import openai_chat
from llmproxy.http import UpstreamRequest
from llmproxy.model import Response, StreamEvent, TextDelta, TextPart
from llmproxy.providers.base import Credential, Executor
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class ShoutCodec:
    """OpenAI Chat on the wire, but it marks every request and shouts every reply."""

    TRAITS = openai_chat.TRAITS

    def encode_request(self, req: Any) -> dict[str, Any]:
        body = openai_chat.encode_request(req)
        body["x_shout"] = True
        return body

    def decode_response(self, body: dict[str, Any]) -> Response:
        resp = openai_chat.decode_response(body)
        resp.parts = [dataclasses.replace(p, text=p.text.upper()) if isinstance(p, TextPart) else p
                      for p in resp.parts]  # fmt: skip
        return resp

    class StreamDecoder(openai_chat.StreamDecoder):  # type: ignore[misc, name-defined]
        def feed(self, chunk: bytes) -> list[StreamEvent]:
            return [TextDelta(e.text.upper()) if isinstance(e, TextDelta) else e for e in super().feed(chunk)]


class GenerateExecutor(Executor):
    """A made-up upstream API: POST {base}/generate with its own auth header, OpenAI Chat bodies."""

    dialect = "openai_chat"
    type_name = "test-generate"

    def build(self, credential: Credential, body: dict[str, Any], *, model: str, stream: bool,
              client_headers: Mapping[str, str] | None = None, endpoint: str = "chat") -> UpstreamRequest:  # fmt: skip
        headers = {"x-generate-key": credential.secret, "content-type": "application/json"}
        return self.upstream_request(f"{self.base_url}/generate", headers, {**body, "model": model}, stream)


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream


@pytest.fixture
def registered() -> Iterator[None]:
    translator.register("test-shout", ShoutCodec())
    providers.register("test-generate", GenerateExecutor)
    yield
    providers.EXECUTORS.pop("test-generate", None)
    translator._factories.pop("test-shout", None)
    formats._REGISTERED.pop("test-shout", None)


def _config(tmp_path: Path, fake: FakeUpstream, provider: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"providers:\n  p:\n{provider}\n    base_url: {fake.url}/v1\n"
                    "    credentials: [{name: k, api_key: sk-test}]\n    models: [{name: m, upstream: up-m}]\n")  # fmt: skip
    return path


async def test_a_registered_translator_named_in_config_is_used(registered: None, fake: FakeUpstream,
                                                               tmp_path: Path) -> None:  # fmt: skip
    fake.queue("/v1/chat/completions", up.completion("quiet words"), up.stream(["soft ", "voice"]))
    gw = Gateway.from_config(_config(tmp_path, fake, "    type: openai-compatible\n    translator: test-shout"))
    reply = await gw.chat(ASK)
    assert reply["choices"][0]["message"]["content"] == "QUIET WORDS"  # decoded by the custom codec
    assert fake.requests[0].body["x_shout"] is True and fake.requests[0].body["model"] == "up-m"  # encoded by it
    chunks = [c async for c in gw.stream(ASK)]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "SOFT VOICE"
    # An Anthropic client reaches the same provider through the same codec.
    fake.queue("/v1/chat/completions", up.completion("hello"))
    msg = await gw.messages({**ASK, "max_tokens": 10})
    assert msg["content"][0]["text"] == "HELLO" and fake.requests[-1].body["x_shout"] is True
    await gw.http.close()


async def test_the_older_spelling_under_options_is_used_too(registered: None, fake: FakeUpstream,
                                                            tmp_path: Path) -> None:  # fmt: skip
    fake.queue("/v1/chat/completions", up.completion("quiet"))
    gw = Gateway.from_config(
        _config(tmp_path, fake, "    type: openai-compatible\n    options: {translator: test-shout}")
    )
    assert (await gw.chat(ASK))["choices"][0]["message"]["content"] == "QUIET"
    await gw.http.close()


def test_an_unknown_translator_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("providers:\n  p:\n    type: openai\n    translator: no-such-thing\n"
                    "    credentials: [{name: k, api_key: sk-x}]\n    models: [{name: m}]\n")  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        load(str(path))
    assert "providers.p.translator" in str(exc.value) and "no-such-thing" in str(exc.value)


def test_a_registered_translator_survives_a_dump_and_reload(registered: None, tmp_path: Path,
                                                            fake: FakeUpstream) -> None:  # fmt: skip
    from llmproxy.config import dump

    config = load(str(_config(tmp_path, fake, "    type: openai\n    translator: test-shout")))
    assert config.providers["p"].options["translator"] == "test-shout"
    text = dump(config, with_secrets=True)
    assert "translator: test-shout" in text
    again = tmp_path / "again.yaml"
    again.write_text(text)
    assert load(str(again)).providers["p"].options["translator"] == "test-shout"


async def test_a_registered_executor_named_as_type_serves_the_route(registered: None, fake: FakeUpstream,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    fake.queue("/v1/generate", up.completion("generated"))
    gw = Gateway.from_config(_config(tmp_path, fake, "    type: test-generate"))
    reply = await gw.chat(ASK)
    assert reply["choices"][0]["message"]["content"] == "generated"
    sent = fake.requests[0]
    assert sent.path == "/v1/generate" and sent.headers["x-generate-key"] == "sk-test" and sent.body["model"] == "up-m"
    await gw.http.close()


async def test_a_custom_executor_and_a_custom_translator_compose(registered: None, fake: FakeUpstream,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    fake.queue("/v1/generate", up.completion("both"))
    gw = Gateway.from_config(_config(tmp_path, fake, "    type: test-generate\n    translator: test-shout"))
    assert (await gw.chat(ASK))["choices"][0]["message"]["content"] == "BOTH"
    assert fake.requests[0].body["x_shout"] is True
    await gw.http.close()
