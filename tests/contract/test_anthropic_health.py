"""A health check of a Claude credential without a model makes a real, cheap call.

An API key: ``GET /v1/models`` (no tokens); an OAuth subscription token: a 1-token
message, the call the fake (like the real service) accepts a Bearer token for.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmproxy import providers
from llmproxy.errors import ProviderHTTPError
from llmproxy.providers import Credential, ProviderConfig
from llmproxy.providers.anthropic import HEALTH_MODEL
from tests.fakes import FakeUpstream, Reply
from tests.fakes import anthropic as fa
from tests.fakes.claude_oauth import MESSAGES, FakeClaude


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def _ex(url: str) -> providers.Executor:
    return providers.get("claude")(ProviderConfig(name="c", type="claude", base_url=url))


async def test_an_api_key_is_checked_on_the_models_list(upstream: FakeUpstream) -> None:
    upstream.reset()
    upstream.queue("/v1/models", Reply({"data": [], "has_more": False}))
    await _ex(upstream.url).health_check(Credential("k", "claude", api_key="sk-ant-api03-health"))
    rec = upstream.last()
    assert (rec.method, rec.path) == ("GET", "/v1/models") and rec.headers["x-api-key"] == "sk-ant-api03-health"


async def test_a_refused_api_key_fails_the_check_without_a_model(upstream: FakeUpstream) -> None:
    upstream.reset()
    upstream.queue("/v1/models", fa.error(401, "invalid x-api-key"))
    with pytest.raises(ProviderHTTPError) as exc:
        await _ex(upstream.url).health_check(Credential("k", "claude", api_key="sk-ant-api03-bad"))
    assert exc.value.upstream_status == 401


async def test_an_oauth_token_is_checked_with_a_one_token_message(claude: FakeClaude) -> None:
    access, _ = claude.grant()
    await _ex(claude.url).health_check(Credential("k", "claude", access_token=access))
    rec = claude.to(MESSAGES)[-1]
    assert rec.method == "POST" and rec.body["max_tokens"] == 1 and rec.body["model"] == HEALTH_MODEL
    assert rec.headers["authorization"] == f"Bearer {access}"


async def test_an_expired_oauth_token_fails_the_check(claude: FakeClaude) -> None:
    with pytest.raises(ProviderHTTPError) as exc:
        await _ex(claude.url).health_check(Credential("k", "claude", access_token="sk-ant-oat01-unknown"))
    assert exc.value.upstream_status == 401
