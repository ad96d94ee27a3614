"""The seed's Executor interface, for every provider type: a test a reader can copy from.

ex = providers.get("claude")(ProviderConfig(name="c", type="claude", base_url=...))
ex.name; ex.supports_model("claude-sonnet-4-5")
await ex.health_check(credential)                       # raises when unhealthy
async for raw in ex.execute_stream(credential, preq):   # the provider's own stream bytes
async for chunk in t.translate_stream(ex.execute_stream(credential, preq)):  # composes
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llmproxy import providers, translator
from llmproxy.errors import ProviderHTTPError
from llmproxy.providers import Credential, ProviderConfig
from tests.fakes import FakeUpstream, Reply
from tests.fakes import anthropic as fa
from tests.fakes import openai as fo

CLAUDE_KEY = Credential("k1", "claude", api_key="sk-ant-api03-interface")
OPENAI_KEY = Credential("k1", "openai", api_key="sk-interface-test")


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def up(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


@pytest.mark.parametrize("type_name", sorted(providers.EXECUTORS))
def test_every_type_makes_an_executor_with_its_defaults(type_name: str) -> None:
    ex = providers.get(type_name)()
    assert ex.name
    assert ex.base_url.startswith("https://") or type_name == "demo"
    assert callable(ex.execute) and callable(ex.execute_stream) and callable(ex.health_check)


@pytest.mark.parametrize(
    ("type_name", "model", "served"),
    [
        ("claude", "claude-sonnet-4-5", True),
        ("claude", "gpt-4o", False),
        ("gemini", "gemini-2.5-pro", True),
        ("gemini", "claude-sonnet-4-5", False),
        ("openai", "gpt-4o", True),
        ("openai-compatible", "llama3.1", True),
        ("demo", "demo", True),
        ("demo", "gpt-4o", False),
        ("openai", "", False),
    ],
)
def test_supports_model_follows_the_type_families(type_name: str, model: str, served: bool) -> None:
    assert providers.get(type_name)().supports_model(model) is served


def test_executor_takes_its_provider_settings() -> None:
    ex = providers.get("claude")(ProviderConfig(name="mine", type="claude", base_url="http://127.0.0.1:9/"))
    assert ex.name == "mine" and ex.base_url == "http://127.0.0.1:9"
    assert providers.get("claude")().name == "claude"


async def test_execute_stream_composes_with_translate_stream(up: FakeUpstream) -> None:
    up.queue("/v1/messages", fa.stream("Hello from Claude"))
    t = translator.get("claude")
    preq = t.translate_request({"model": "claude-sonnet-4-5", "stream": True,
                                "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    ex = providers.get("claude")(ProviderConfig(name="c", type="claude", base_url=up.url))
    chunks: list[dict[str, Any]] = [c async for c in t.translate_stream(ex.execute_stream(CLAUDE_KEY, preq))]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == "Hello from Claude"
    sent = up.last()
    assert sent.body["stream"] is True
    assert sent.headers["x-api-key"] == "sk-ant-api03-interface"


async def test_execute_stream_yields_the_providers_raw_bytes(up: FakeUpstream) -> None:
    up.queue("/v1/chat/completions", fo.stream(["a", "b"]))
    ex = providers.get("openai")(ProviderConfig(name="o", type="openai", base_url=f"{up.url}/v1"))
    raw = b"".join(
        [c async for c in ex.execute_stream(OPENAI_KEY, {"model": "gpt-4o", "stream": True, "messages": []})]
    )
    assert raw.startswith(b"data: ") and raw.rstrip().endswith(b"data: [DONE]")


async def test_execute_stream_raises_the_providers_error_before_any_byte(up: FakeUpstream) -> None:
    up.queue("/v1/chat/completions", fo.error(429, "slow down", {"retry-after": "7"}))
    ex = providers.get("openai")(ProviderConfig(name="o", type="openai", base_url=f"{up.url}/v1"))
    with pytest.raises(ProviderHTTPError) as exc:
        async for _ in ex.execute_stream(OPENAI_KEY, {"model": "gpt-4o", "stream": True, "messages": []}):
            pass
    assert exc.value.upstream_status == 429 and exc.value.retry_after == 7


async def test_health_check_passes_a_working_credential(up: FakeUpstream) -> None:
    up.queue("/v1/models", Reply({"object": "list", "data": []}))
    ex = providers.get("openai")(ProviderConfig(name="o", type="openai", base_url=f"{up.url}/v1"))
    await ex.health_check(OPENAI_KEY)
    assert up.last().method == "GET" and up.last().path == "/v1/models"


async def test_health_check_raises_for_a_refused_credential(up: FakeUpstream) -> None:
    up.queue("/v1/models", fo.error(401, "bad key"))
    ex = providers.get("openai")(ProviderConfig(name="o", type="openai", base_url=f"{up.url}/v1"))
    with pytest.raises(ProviderHTTPError) as exc:
        await ex.health_check(OPENAI_KEY)
    assert exc.value.upstream_status == 401


async def test_health_check_counts_a_rate_limit_as_reachable(up: FakeUpstream) -> None:
    up.queue("/v1/models", fo.error(429, "busy"))
    ex = providers.get("openai")(ProviderConfig(name="o", type="openai", base_url=f"{up.url}/v1"))
    await ex.health_check(OPENAI_KEY)
