"""The gateway serving a Kiro account: a refused bearer token is refreshed once and the call retried.

The refresher here is a stand-in minting tokens the fake CodeWhisperer accepts (the real
SSO-OIDC and social refreshers are ``llmproxy.auth.kiro``'s, tested against their own
fake); what is under test is the executor's side: which answers count as a refused
token, and that the retry carries the new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llmproxy.auth import TokenSet, _registry
from llmproxy.gateway import Gateway, Reply, StreamReply
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import Route
from tests.fakes import codewhisperer as cw
from tests.unit.gateway_calls import account_gateway, chat, text_of

ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/TEST"


@pytest.fixture(scope="module")
def kiro() -> Iterator[cw.FakeCodeWhisperer]:
    fake = cw.FakeCodeWhisperer(profile_arn=ARN).start()
    yield fake  # type: ignore[misc]
    fake.stop()


class StandIn:
    """Mints a token the fake accepts, counting refreshes."""

    margin = 60.0
    fake: cw.FakeCodeWhisperer | None = None
    calls = 0

    async def refresh(self, provider: ProviderConfig, cred: Credential, http: HTTPClient) -> TokenSet:
        assert StandIn.fake is not None
        StandIn.calls += 1
        return TokenSet(StandIn.fake.tokens.mint(3600), None, cred.refresh_token, {})


@pytest.fixture
def refresher(kiro: cw.FakeCodeWhisperer, monkeypatch: pytest.MonkeyPatch) -> type[StandIn]:
    monkeypatch.setitem(_registry.REFRESHERS, "kiro", f"{__name__}:StandIn")
    monkeypatch.setattr(_registry, "_instances", {})
    StandIn.fake, StandIn.calls = kiro, 0
    kiro.reset_replies()
    return StandIn


def gateway(kiro: cw.FakeCodeWhisperer, token: str, http: HTTPClient) -> Gateway:
    provider = ProviderConfig(name="kiro", type="kiro", base_url=kiro.url, options={"auth_type": "device_flow"})
    cred = Credential("me", "kiro", access_token=token, refresh_token="aorX", expires_at=None,
                      extra={"auth_method": "social", "profile_arn": ARN})  # fmt: skip
    return account_gateway([Route("claude", "claude-sonnet-4-5", provider, (cred,))], http)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_live_token_is_served_with_its_profile(
    kiro: cw.FakeCodeWhisperer, refresher: type[StandIn], http: HTTPClient, stream: bool
) -> None:
    gw = gateway(kiro, kiro.add_token("aoaLIVE"), http)
    assert await text_of(await gw.handle(chat(stream=stream))) == "Hello from Kiro"
    (rec,) = kiro.to(cw.PATH)
    assert rec.body["profileArn"] == ARN and refresher.calls == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_an_invalid_bearer_token_is_refreshed_once_and_the_call_retried(
    kiro: cw.FakeCodeWhisperer, refresher: type[StandIn], http: HTTPClient, stream: bool
) -> None:
    gw = gateway(kiro, "aoaREVOKED", http)
    assert await text_of(await gw.handle(chat(stream=stream))) == "Hello from Kiro"
    first, second = kiro.to(cw.PATH)
    assert first.headers["authorization"] == "Bearer aoaREVOKED"
    assert second.headers["authorization"] != first.headers["authorization"] and refresher.calls == 1


async def test_a_403_that_is_not_about_the_token_is_not_refreshed(
    kiro: cw.FakeCodeWhisperer, refresher: type[StandIn], http: HTTPClient
) -> None:
    kiro.then(cw.PATH, cw.error(403, "User is not authorized to make this call."))
    gw = gateway(kiro, kiro.add_token("aoaLIVE2"), http)
    result = await gw.handle(chat(stream=False))
    assert isinstance(result, Reply) and result.status in (502, 503)  # the credential cools: nothing left
    assert refresher.calls == 0 and len(kiro.to(cw.PATH)) == 1


async def test_the_health_check_proves_the_token_without_a_completion(
    kiro: cw.FakeCodeWhisperer, http: HTTPClient
) -> None:
    from llmproxy.errors import ProviderHTTPError
    from llmproxy.providers.kiro import KiroExecutor

    kiro.reset_replies()
    ex = KiroExecutor(ProviderConfig(name="kiro", type="kiro", base_url=kiro.url))
    await ex.health_check(Credential("me", "kiro", access_token=kiro.add_token("aoaHEALTH")), http=http)
    with pytest.raises(ProviderHTTPError) as exc:
        await ex.health_check(Credential("me", "kiro", access_token="aoaDEAD"), http=http)
    assert exc.value.upstream_status == 403 and ex.token_refused(exc.value)
    assert {r.path for r in kiro.requests} == {cw.USAGE_PATH}


@pytest.mark.parametrize("method", ["builder-id", "social"])
async def test_kiro_requests_keep_working_across_token_expiry(http: HTTPClient, method: str) -> None:
    """The real refreshers against the fake auth service, whose tokens the fake CodeWhisperer checks."""
    from tests.fakes.kiro_auth import FakeKiroAuth

    auth = FakeKiroAuth(token_ttl=61.0).start()  # due a minute early: renewed every second
    api = cw.FakeCodeWhisperer(tokens=auth.access).start()
    try:
        client_id, secret = auth.register() if method == "builder-id" else ("", "")
        access, refresh = auth.grant(client_id)
        extra: dict[str, Any] = {"auth_method": method, "profile_arn": ARN}
        if client_id:
            extra.update(client_id=client_id, client_secret=secret)
        provider = ProviderConfig(name="kiro", type="kiro", base_url=api.url,
                                  options={"auth_type": "device_flow", "oidc_url": auth.url, "auth_url": auth.url})  # fmt: skip
        cred = Credential("me", "kiro", access_token=access, refresh_token=refresh,
                          expires_at=auth.access.expiry[access], extra=extra)  # fmt: skip
        gw = account_gateway([Route("claude", "claude-sonnet-4-5", provider, (cred,))], http)
        results: list[Reply | StreamReply] = []
        deadline = time.time() + 2.5
        while time.time() < deadline:  # concurrent bursts, streamed and not
            results += await asyncio.gather(*(gw.handle(chat(stream=i % 2 == 1)) for i in range(4)))
            await asyncio.sleep(0.1)
        assert {await text_of(r) for r in results} == {"Hello from Kiro"}
        tokens = {r.headers["authorization"] for r in api.to(cw.PATH)}
        assert len(tokens) >= 2  # refreshed on the way, and every request was served
        path = "/token" if method == "builder-id" else "/refreshToken"
        assert len(auth.to(path)) == len(tokens) - 1  # one shared refresh each time
    finally:
        api.stop()
        auth.stop()
