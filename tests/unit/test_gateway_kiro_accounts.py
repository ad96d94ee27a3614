"""Kiro accounts' token lifecycle end to end: the real refreshers against the fake SSO-OIDC and Kiro
auth services, the kiro executor against the fake CodeWhisperer, both sharing one set of live tokens.

Done when requests keep working across token expiry with not one failed request: the
auth fake mints tokens living about a second past the refresh margin, and every request
must succeed; an expired token is renewed once for concurrent requests; a 403 "bearer
token ... invalid" leads to one refresh and one retry; a dead refresh token fails over.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from llmproxy.auth import AuthError, TokenSet
from llmproxy.gateway import Gateway, Reply, StreamReply
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import Route
from tests.fakes import codewhisperer as cw
from tests.fakes.kiro_auth import PROFILE_ARN, FakeKiroAuth
from tests.unit.gateway_calls import account_gateway, chat, text_of


class Pair:
    """The auth fake and the API fake, the API accepting exactly the tokens the auth fake minted."""

    def __init__(self, **kw: Any) -> None:
        self.auth = FakeKiroAuth(**kw)
        self.api = cw.FakeCodeWhisperer(self.auth.access)
        self.auth.start()
        self.api.start()

    def provider(self) -> ProviderConfig:
        return ProviderConfig(name="kiro", type="kiro", base_url=self.api.url,
                              options={"oidc_url": self.auth.url, "auth_url": self.auth.url,
                                       "auth_type": "device_flow"})  # fmt: skip

    def sso(self, name: str = "me", expires_in: float | None = None) -> Credential:
        client_id, secret = self.auth.register()
        access, refresh = self.auth.grant(client_id)
        expires = time.time() + (self.auth.token_ttl if expires_in is None else expires_in)
        return Credential(name, "kiro", access_token=access, refresh_token=refresh, expires_at=expires,
                          extra={"auth_method": "builder-id", "client_id": client_id, "client_secret": secret,
                                 "region": "us-east-1"})  # fmt: skip

    def social(self, name: str = "me", expires_in: float | None = None) -> Credential:
        access, refresh = self.auth.grant("")
        expires = time.time() + (self.auth.token_ttl if expires_in is None else expires_in)
        return Credential(name, "kiro", access_token=access, refresh_token=refresh, expires_at=expires,
                          extra={"auth_method": "social", "profile_arn": PROFILE_ARN})  # fmt: skip

    def gateway(self, creds: tuple[Credential, ...], http: HTTPClient, **kw: Any) -> Gateway:
        return account_gateway([Route("claude", "claude-sonnet-4-5", self.provider(), creds)], http, **kw)

    def stop(self) -> None:
        self.api.stop()
        self.auth.stop()


@pytest.mark.parametrize("kind", ["sso", "social"])
async def test_kiro_requests_keep_working_across_token_expiry(kind: str, http: HTTPClient) -> None:
    pair = Pair(token_ttl=61.0)  # due a minute early: renewed every second
    saved: list[TokenSet] = []

    async def save(p: ProviderConfig, c: Credential, t: TokenSet) -> None:
        saved.append(t)

    try:
        cred = pair.sso() if kind == "sso" else pair.social()
        gw = pair.gateway((cred,), http, on_refreshed=save)
        deadline = time.time() + 3.0
        results: list[Reply | StreamReply] = []
        while time.time() < deadline:  # concurrent bursts, streamed and not
            results += await asyncio.gather(*(gw.handle(chat(stream=i % 2 == 1)) for i in range(4)))
            await asyncio.sleep(0.1)
        assert {await text_of(r) for r in results} == {"Hello from Kiro"}
        assert len(saved) >= 2
        if kind == "sso":  # SSO-OIDC sends no refresh token back: the stored one serves every refresh
            assert {t.refresh_token for t in saved} == {None}
            assert all(r.body["refreshToken"] == cred.refresh_token for r in pair.auth.to("/token"))
        else:  # Kiro's social service rotates: each refresh spent the previous one
            assert len({t.refresh_token for t in saved}) == len(saved)
        for rec in pair.api.to(cw.PATH):
            assert rec.headers["user-agent"].startswith("llmproxy/") and "KiroIDE" not in rec.headers["user-agent"]
    finally:
        pair.stop()


async def test_concurrent_requests_with_an_expired_kiro_token_share_one_refresh(http: HTTPClient) -> None:
    pair = Pair()
    try:
        gw = pair.gateway((pair.sso(expires_in=-5),), http)
        results = await asyncio.gather(*(gw.handle(chat(stream=i % 2 == 0)) for i in range(8)))
        assert [await text_of(r) for r in results] == ["Hello from Kiro"] * 8
        assert len(pair.auth.to("/token")) == 1
        assert len(pair.api.to(cw.PATH)) == 8  # none sent with the expired token
    finally:
        pair.stop()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_kiro_403_bearer_token_invalid_refreshes_once_and_retries(stream: bool, http: HTTPClient) -> None:
    pair = Pair()
    try:
        cred = pair.sso()
        assert cred.access_token is not None
        pair.auth.access.revoke(cred.access_token)  # looks valid, the API says no
        gw = pair.gateway((cred,), http)
        assert await text_of(await gw.handle(chat(stream=stream))) == "Hello from Kiro"
        paths = [r.path for r in pair.auth.requests + pair.api.requests]
        assert sorted(paths) == sorted([cw.PATH, "/token", cw.PATH])
        first, second = pair.api.to(cw.PATH)
        assert first.headers["authorization"] == f"Bearer {cred.access_token}"
        assert second.headers["authorization"] != first.headers["authorization"]
    finally:
        pair.stop()


async def test_a_dead_kiro_refresh_token_fails_over_and_reports_the_credential(http: HTTPClient) -> None:
    pair = Pair()
    failed: list[str] = []

    async def on_failed(p: ProviderConfig, c: Credential, err: AuthError) -> None:
        failed.append(f"{p.name}/{c.name}: {err.message}")

    try:
        dead = pair.sso("dead", expires_in=-10)
        assert dead.refresh_token is not None
        pair.auth.refresh.revoke(dead.refresh_token)
        gw = pair.gateway((dead, pair.social("good")), http, on_failed=on_failed)
        assert await text_of(await gw.handle(chat(stream=True))) == "Hello from Kiro"
        assert len(failed) == 1 and failed[0].startswith("kiro/dead: AWS SSO-OIDC token refresh refused")
        assert "invalid_grant: Invalid refresh token provided" in failed[0]
    finally:
        pair.stop()
