"""Logins and refreshers of the built-in account types against the fakes of their services."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from llmproxy.auth import AuthError, LoginOptions, begin_login, refresher_for
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential, ProviderConfig
from tests.fakes.claude_oauth import FakeClaude
from tests.fakes.github import FakeGitHub
from tests.fakes.google_oauth import PROJECT, FakeGoogle


def copilot_provider(fake: FakeGitHub) -> ProviderConfig:
    return ProviderConfig(name="copilot", type="copilot", options={"github_url": fake.url, "github_api_url": fake.url})


async def browser(url: str, fake: FakeClaude | FakeGoogle) -> None:
    """The user approving in a browser: the service redirects to the loopback with a code."""
    q = dict(parse_qsl(urlsplit(url).query))
    code = fake.issue_code(q["code_challenge"])
    async with aiohttp.ClientSession() as s, s.get(q["redirect_uri"], params={"code": code, "state": q["state"]}) as r:
        assert r.status == 200


# -- copilot ---------------------------------------------------------------------------
async def test_copilot_login_runs_the_device_flow_and_exchanges(github: FakeGitHub, http: HTTPClient) -> None:
    github.slow_down_once = False
    flow = await begin_login(copilot_provider(github), http, LoginOptions(name="me"))
    assert flow.prompt.message == f"open {github.url}/login/device and enter {flow.prompt.user_code}"
    task = asyncio.create_task(flow.complete())
    await asyncio.sleep(0.05)
    assert not task.done()  # pending until the user enters the code
    github.approve(flow.prompt.user_code)
    token = await task
    assert token.type == "copilot" and token.refresh_token in github.github_tokens
    assert github.copilot.valid(token.access_token)
    exchange = github.to("/copilot_internal/v2/token")[-1]
    assert exchange.headers["authorization"].startswith("token ghu_")
    assert exchange.headers["user-agent"].startswith("llmproxy/")


async def test_copilot_login_stops_when_denied(github: FakeGitHub, http: HTTPClient) -> None:
    flow = await begin_login(copilot_provider(github), http, LoginOptions())
    github.deny(flow.prompt.user_code)
    with pytest.raises(AuthError, match="access denied") as info:
        await flow.complete()
    assert info.value.permanent


async def test_copilot_login_stops_when_the_code_expires(http: HTTPClient) -> None:
    fake = FakeGitHub(expires_in=0).start()
    try:
        flow = await begin_login(copilot_provider(fake), http, LoginOptions())  # type: ignore[arg-type]
        with pytest.raises(AuthError, match="expired"):
            await flow.complete()
    finally:
        fake.stop()


async def test_copilot_refresh_exchanges_the_github_token(github: FakeGitHub, http: HTTPClient) -> None:
    gh = github.add_github_token()
    refresher = refresher_for("copilot")
    assert refresher is not None and refresher.margin == 300
    tokens = await refresher.refresh(copilot_provider(github), Credential("me", "copilot", refresh_token=gh), http)
    assert github.copilot.valid(tokens.access_token)
    assert tokens.expires_at is not None and tokens.expires_at > time.time() + 1700
    assert tokens.extra["api_url"] == f"{github.url}/copilot"
    assert tokens.extra["responses_models"] == ["gpt-5-codex"]


async def test_copilot_refresh_with_a_bad_github_token_is_permanent(github: FakeGitHub, http: HTTPClient) -> None:
    refresher = refresher_for("copilot")
    assert refresher is not None
    with pytest.raises(AuthError, match="HTTP 401") as info:
        await refresher.refresh(copilot_provider(github), Credential("me", "copilot", refresh_token="ghu_bad"), http)
    assert info.value.permanent


# -- claude ----------------------------------------------------------------------------
def claude_provider(fake: FakeClaude) -> ProviderConfig:
    return ProviderConfig(name="claude-max", type="claude", options={"oauth_url": fake.url,
                          "authorize_url": f"{fake.url}/oauth/authorize"})  # fmt: skip


async def test_claude_login_through_the_loopback_callback(claude: FakeClaude, http: HTTPClient) -> None:
    flow = await begin_login(claude_provider(claude), http, LoginOptions())
    try:
        assert "code_challenge_method=S256" in flow.prompt.authorize_url
        await browser(flow.prompt.authorize_url, claude)
        token = await flow.complete()
    finally:
        await flow.close()
    assert claude.access.valid(token.access_token) and claude.refresh.valid(token.refresh_token)
    assert token.extra == {"email": "me@example.com"}


async def test_claude_login_with_a_pasted_code(claude: FakeClaude, http: HTTPClient) -> None:
    flow = await begin_login(claude_provider(claude), http, LoginOptions(no_browser=True))
    assert flow.prompt.needs_paste
    q = dict(parse_qsl(urlsplit(flow.prompt.authorize_url).query))
    assert q["redirect_uri"] == "https://platform.claude.com/oauth/code/callback"
    code = claude.issue_code(q["code_challenge"])
    token = await flow.complete(f"{code}#{q['state']}")
    assert claude.access.valid(token.access_token)


async def test_claude_login_refuses_a_wrong_verifier(claude: FakeClaude, http: HTTPClient) -> None:
    flow = await begin_login(claude_provider(claude), http, LoginOptions(no_browser=True))
    q = dict(parse_qsl(urlsplit(flow.prompt.authorize_url).query))
    code = claude.issue_code("not-the-challenge")
    with pytest.raises(AuthError, match="invalid_grant: Invalid code verifier"):
        await flow.complete(f"{code}#{q['state']}")


async def test_claude_refresh_rotates_and_a_spent_token_is_invalid_grant(claude: FakeClaude, http: HTTPClient) -> None:
    access, refresh = claude.grant()
    refresher = refresher_for("claude")
    assert refresher is not None
    cred = Credential("me", "claude-max", access_token=access, refresh_token=refresh)
    tokens = await refresher.refresh(claude_provider(claude), cred, http)
    assert tokens.refresh_token and tokens.refresh_token != refresh
    assert tokens.expires_at is not None and tokens.expires_at > time.time() + 28000
    with pytest.raises(AuthError, match="invalid_grant") as info:
        await refresher.refresh(claude_provider(claude), cred, http)  # the old, rotated-away refresh token
    assert info.value.permanent


# -- gemini ----------------------------------------------------------------------------
def google_provider(fake: FakeGoogle) -> ProviderConfig:
    return ProviderConfig(name="gemini-google", type="gemini", base_url=fake.url,
                          options={"oauth_url": fake.url, "authorize_url": f"{fake.url}/auth"})  # fmt: skip


async def test_gemini_login_discovers_the_project_by_onboarding(http: HTTPClient) -> None:
    fake = FakeGoogle(onboarded=False).start()
    try:
        provider = google_provider(fake)  # type: ignore[arg-type]
        flow = await begin_login(provider, http, LoginOptions())
        try:
            await browser(flow.prompt.authorize_url, fake)  # type: ignore[arg-type]
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr("llmproxy.auth.google.asyncio.sleep", _no_sleep)
                token = await flow.complete()
        finally:
            await flow.close()
    finally:
        fake.stop()
    assert token.extra == {"project_id": PROJECT}
    assert fake.onboard_calls == 2


async def _no_sleep(seconds: float) -> None:
    return None


async def test_gemini_refresh_keeps_the_refresh_token(google: FakeGoogle, http: HTTPClient) -> None:
    access, refresh = google.grant()
    refresher = refresher_for("gemini")
    assert refresher is not None
    cred = Credential("me", "gemini-google", access_token=access, refresh_token=refresh, extra={"project_id": PROJECT})
    tokens = await refresher.refresh(google_provider(google), cred, http)
    assert google.access.valid(tokens.access_token) and tokens.refresh_token is None
    google.refresh.revoke(refresh)
    with pytest.raises(AuthError, match="Token has been expired or revoked") as info:
        await refresher.refresh(google_provider(google), cred, http)
    assert info.value.permanent
