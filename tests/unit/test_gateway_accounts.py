"""The gateway serving account providers: fresh tokens before a call, one refresh and retry on a 401.

Done when requests keep working across token expiry with not one failed request: the
fakes here mint tokens living about a second, and every request must succeed.
"""

from __future__ import annotations

import asyncio
import json
import time

from llmproxy.auth import AuthError, TokenSet
from llmproxy.gateway import Call, Reply, StreamReply
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import Route
from tests.fakes import openai as fo
from tests.fakes.claude_oauth import FakeClaude
from tests.fakes.github import FakeGitHub
from tests.fakes.google_oauth import PROJECT, FakeGoogle
from tests.unit.gateway_calls import account_gateway, chat, text_of


def copilot_route(fake: FakeGitHub, model: str = "gpt-4.1", token: str | None = None) -> Route:
    provider = ProviderConfig(name="copilot", type="copilot", options={"github_api_url": fake.url})
    cred = Credential("me", "copilot", refresh_token=token or fake.add_github_token())
    return Route(model, model, provider, (cred,))


async def test_copilot_exchanges_once_for_concurrent_requests(github: FakeGitHub, http: HTTPClient) -> None:
    github.reset_replies()
    gw = account_gateway([copilot_route(github)], http)
    results = await asyncio.gather(*(gw.handle(chat("gpt-4.1")) for _ in range(8)))
    assert [await text_of(r) for r in results] == ["Hello from Copilot"] * 8
    assert len(github.to("/copilot_internal/v2/token")) == 1
    sent = github.to("/copilot/chat/completions")[-1]
    assert sent.headers["x-initiator"] == "user" and sent.headers["user-agent"].startswith("llmproxy/")
    streamed = await gw.handle(chat("gpt-4.1", stream=True))
    assert await text_of(streamed) == "Hello from Copilot"


async def test_copilot_sends_responses_only_models_to_the_responses_api(github: FakeGitHub, http: HTTPClient) -> None:
    github.reset_replies()
    gw = account_gateway([copilot_route(github, "gpt-5-codex")], http)
    assert await text_of(await gw.handle(chat("gpt-5-codex"))) == "Hello from Copilot"
    assert await text_of(await gw.handle(chat("gpt-5-codex", stream=True))) == "Hello from Copilot"
    assert len(github.to("/copilot/responses")) == 2 and not github.to("/copilot/chat/completions")


async def test_copilot_requests_keep_working_across_token_expiry(http: HTTPClient) -> None:
    fake = FakeGitHub(token_ttl=301.5).start()  # due 5 min before expiry: renewed every ~1.5 s
    try:
        gw = account_gateway([copilot_route(fake)], http)  # type: ignore[arg-type]
        deadline = time.time() + 3.5
        served = 0
        while time.time() < deadline:
            assert await text_of(await gw.handle(chat("gpt-4.1"))) == "Hello from Copilot"
            served += 1
            await asyncio.sleep(0.05)
        assert len(fake.to("/copilot_internal/v2/token")) >= 2
        assert served >= 10
    finally:
        fake.stop()


async def test_copilot_vision_and_agent_turns_get_their_headers(github: FakeGitHub, http: HTTPClient) -> None:
    github.reset_replies()
    gw = account_gateway([copilot_route(github)], http)
    image = [{"role": "user", "content": [{"type": "text", "text": "what is it"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]}]  # fmt: skip
    assert await text_of(await gw.handle(chat("gpt-4.1", messages=image))) == "Hello from Copilot"
    assert github.to("/copilot/chat/completions")[-1].headers["copilot-vision-request"] == "true"
    github.then("/copilot/chat/completions", fo.completion("done"))
    turn = [{"role": "user", "content": "run it"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                  "function": {"name": "run", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}]  # fmt: skip
    assert await text_of(await gw.handle(chat("gpt-4.1", messages=turn))) == "done"
    assert github.to("/copilot/chat/completions")[-1].headers["x-initiator"] == "agent"


def claude_route(fake: FakeClaude, name: str = "me", expires_in: float | None = None) -> Route:
    access, refresh = fake.grant()
    provider = ProviderConfig(name="claude-max", type="claude", base_url=fake.url, options={"oauth_url": fake.url})
    expires = time.time() + (expires_in if expires_in is not None else fake.token_ttl)
    cred = Credential(name, "claude-max", access_token=access, refresh_token=refresh, expires_at=expires)
    return Route("claude", "claude-sonnet-4", provider, (cred,))


async def test_claude_requests_keep_working_across_token_expiry(http: HTTPClient) -> None:
    fake = FakeClaude(token_ttl=61.0).start()  # due a minute early: renewed every second
    saved: list[TokenSet] = []

    async def save(p: ProviderConfig, c: Credential, t: TokenSet) -> None:
        saved.append(t)

    try:
        gw = account_gateway([claude_route(fake)], http, on_refreshed=save)  # type: ignore[arg-type]
        deadline = time.time() + 3.0
        results: list[Reply | StreamReply] = []
        while time.time() < deadline:  # concurrent bursts, streamed and not
            results += await asyncio.gather(*(gw.handle(chat("claude", stream=i % 2 == 1)) for i in range(4)))
            await asyncio.sleep(0.1)
        texts = [await text_of(r) for r in results]
        assert set(texts) == {"Hello from Claude"}
        assert len(saved) >= 2
        # each refresh spent the previous refresh token: only keeping rotated ones works
        assert len({t.refresh_token for t in saved}) == len(saved)
        sent = fake.to("/v1/messages")[-1]
        assert "x-api-key" not in sent.headers
        assert "oauth-2025-04-20" in sent.headers["anthropic-beta"]
    finally:
        fake.stop()


async def test_claude_401_refreshes_once_and_retries(http: HTTPClient) -> None:
    fake = FakeClaude().start()
    try:
        route = claude_route(fake)  # type: ignore[arg-type]
        assert route.credentials[0].access_token is not None
        fake.access.revoke(route.credentials[0].access_token)  # looks valid, the upstream says no
        gw = account_gateway([route], http)
        assert await text_of(await gw.handle(chat("claude"))) == "Hello from Claude"
        statuses = [r.path for r in fake.requests]
        assert statuses == ["/v1/messages", "/v1/oauth/token", "/v1/messages"]
    finally:
        fake.stop()


async def test_a_failed_refresh_fails_over_and_reports_the_credential(http: HTTPClient) -> None:
    fake = FakeClaude().start()
    failed: list[str] = []

    async def on_failed(p: ProviderConfig, c: Credential, err: AuthError) -> None:
        failed.append(f"{p.name}/{c.name}: {err.message}")

    try:
        dead = claude_route(fake, "dead", expires_in=-10)  # type: ignore[arg-type]
        assert dead.credentials[0].refresh_token is not None
        fake.refresh.revoke(dead.credentials[0].refresh_token)
        good = claude_route(fake, "good")  # type: ignore[arg-type]
        both = Route("claude", "claude-sonnet-4", dead.provider, dead.credentials + good.credentials)
        gw = account_gateway([both], http, on_failed=on_failed)
        assert await text_of(await gw.handle(chat("claude", stream=True))) == "Hello from Claude"
        assert len(failed) == 1 and failed[0].startswith("claude-max/dead: Claude token refresh refused")
        assert "invalid_grant" in failed[0]
    finally:
        fake.stop()


async def test_gemini_account_serves_through_code_assist(http: HTTPClient) -> None:
    fake = FakeGoogle(token_ttl=60.5).start()  # due a minute early: renewed every half second
    try:
        access, refresh = fake.grant()
        provider = ProviderConfig(name="gemini-google", type="gemini", base_url=fake.url,
                                  options={"oauth_url": fake.url, "auth_type": "oauth"})  # fmt: skip
        cred = Credential("me", "gemini-google", access_token=access, refresh_token=refresh,
                          expires_at=time.time() + 60.5, extra={"project_id": PROJECT})  # fmt: skip
        gw = account_gateway([Route("gemini-2.5-pro", "gemini-2.5-pro", provider, (cred,))], http)
        for _ in range(3):
            assert await text_of(await gw.handle(chat("gemini-2.5-pro"))) == "Hello from Gemini"
            assert await text_of(await gw.handle(chat("gemini-2.5-pro", stream=True))) == "Hello from Gemini"
            await asyncio.sleep(0.6)
        native = Call("gemini", json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode(),
                      model="gemini-2.5-pro", stream=False)  # fmt: skip
        reply = await gw.handle(native)
        assert isinstance(reply, Reply) and reply.status == 200
        assert json.loads(reply.body)["candidates"][0]["content"]["parts"][0]["text"] == "Hello from Gemini"
        assert len(fake.to("/token")) >= 2
    finally:
        fake.stop()
