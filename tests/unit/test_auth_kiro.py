"""Kiro accounts against the fake SSO-OIDC and Kiro auth services: token files, imports, logins, refreshes."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from llmproxy.auth import (
    AuthError,
    LoginOptions,
    TokenFileError,
    begin_login,
    import_token_file,
    parse_token_data,
    poll_device_code,
    refresher_for,
)
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential, ProviderConfig
from tests.fakes.kiro_auth import PROFILE_ARN, SSO_PROFILE_ARN, FakeKiroAuth


def provider(fake: FakeKiroAuth) -> ProviderConfig:
    return ProviderConfig(name="kiro", type="kiro",
                          options={"oidc_url": fake.url, "auth_url": fake.url, "profiles_url": fake.url})  # fmt: skip


# -- token files -------------------------------------------------------------------------
def test_a_kiro_token_file_keeps_its_fields_in_extra() -> None:
    token = parse_token_data({"type": "kiro", "access_token": "aoa", "refresh_token": "aor", "auth_method": "idc",
                              "client_id": "c", "client_secret": "s", "region": "eu-west-1",
                              "profile_arn": "arn:aws:codewhisperer:eu-west-1:1:profile/X",
                              "expires_at": "2030-01-01T00:00:00Z"})  # fmt: skip
    assert token.extra == {"auth_method": "idc", "client_id": "c", "client_secret": "s", "region": "eu-west-1",
                           "profile_arn": "arn:aws:codewhisperer:eu-west-1:1:profile/X"}  # fmt: skip
    assert token.to_json()["auth_method"] == "idc"


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"refresh_token": "r"}, "auth_method", "is required (builder-id, idc or social)"),
        ({"refresh_token": "r", "auth_method": "IdC"}, "auth_method", "one of builder-id, idc or social"),
        ({"refresh_token": "r", "auth_method": "builder-id", "client_secret": "s"}, "client_id", "is required"),
        ({"refresh_token": "r", "auth_method": "idc", "client_id": "c"}, "client_secret", "SSO-OIDC client"),
        ({"refresh_token": "r", "auth_method": "social", "region": "evil.com/x"}, "region", "not an AWS region"),
        ({"refresh_token": "r", "auth_method": "social", "profile_arn": "p"}, "profile_arn", "must be an ARN"),
        ({"auth_method": "social", "client_id": 7, "access_token": "a"}, "client_id", "must be a string"),
    ],
)
def test_a_bad_kiro_token_file_names_the_file_and_the_field(data: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(TokenFileError) as info:
        parse_token_data({"type": "kiro", **data}, "/auths/kiro-me.json")
    assert info.value.field == field and reason in info.value.reason
    assert str(info.value).startswith(f"/auths/kiro-me.json: {field}: ")


def test_kiro_ides_social_token_file_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "kiro-auth-token.json"
    path.write_text(json.dumps({"accessToken": "aoa1", "refreshToken": "aor1", "expiresAt": "2030-01-01T00:00:00.000Z",
                                "authMethod": "social", "provider": "Google", "profileArn": PROFILE_ARN}))  # fmt: skip
    token = import_token_file(path, "kiro")
    assert (token.access_token, token.refresh_token, token.expires_at) == ("aoa1", "aor1", 1893456000.0)
    assert token.provider is None  # Kiro's "provider" is the identity provider, not ours
    assert token.extra == {"auth_method": "social", "profile_arn": PROFILE_ARN}


def test_kiro_ides_builder_id_file_takes_the_client_from_the_file_beside_it(tmp_path: Path) -> None:
    (tmp_path / "e87895ae36d9.json").write_text(json.dumps({"clientId": "cid", "clientSecret": "csecret",
                                                            "expiresAt": "2030-01-01T00:00:00Z"}))  # fmt: skip
    path = tmp_path / "kiro-auth-token.json"
    path.write_text(json.dumps({"accessToken": "aoa", "refreshToken": "aor", "expiresAt": "2030-01-01T00:00:00Z",
                                "authMethod": "IdC", "provider": "BuilderId", "clientIdHash": "e87895ae36d9",
                                "region": "us-east-1"}))  # fmt: skip
    token = import_token_file(path, "kiro")
    assert token.extra == {"auth_method": "builder-id", "client_id": "cid", "client_secret": "csecret",
                           "region": "us-east-1"}  # fmt: skip


def test_kiro_ides_idc_file_without_its_client_file_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "kiro-auth-token.json"
    path.write_text(json.dumps({"accessToken": "aoa", "refreshToken": "aor", "authMethod": "IdC",
                                "provider": "Enterprise", "clientIdHash": "nothere"}))  # fmt: skip
    with pytest.raises(TokenFileError, match=r"kiro-auth-token.json: client_id: is required for idc"):
        import_token_file(path, "kiro")


# -- builder id / idc device flow ------------------------------------------------------
async def test_builder_id_login_registers_a_client_and_runs_the_device_flow(kiro: FakeKiroAuth,
                                                                            http: HTTPClient) -> None:  # fmt: skip
    kiro.reset_replies()
    kiro.slow_down_once = False
    flow = await begin_login(provider(kiro), http, LoginOptions(name="me"))
    assert flow.prompt.message == f"open {kiro.url}/device and enter {flow.prompt.user_code}"
    task = asyncio.create_task(flow.complete())
    await asyncio.sleep(0.05)
    assert not task.done()  # authorization_pending until the user enters the code
    kiro.approve(flow.prompt.user_code)
    token = await task
    assert token.type == "kiro" and kiro.access.valid(token.access_token) and kiro.refresh.valid(token.refresh_token)
    assert token.extra["auth_method"] == "builder-id" and token.extra["client_id"] in kiro.clients
    assert token.extra["client_secret"] == kiro.clients[token.extra["client_id"]]
    assert token.extra["region"] == "us-east-1" and token.extra["profile_arn"] == SSO_PROFILE_ARN
    register = kiro.to("/client/register")[-1]
    assert register.body["clientName"] == "llmproxy" and register.body["clientType"] == "public"
    assert kiro.to("/device_authorization")[-1].body["startUrl"] == "https://view.awsapps.com/start"
    for rec in kiro.requests:
        assert rec.headers["user-agent"].startswith("llmproxy/") and "KiroIDE" not in json.dumps(rec.headers)
    assert len(kiro.to("/token")) >= 2


async def test_idc_login_uses_the_start_url_and_needs_one(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    with pytest.raises(AuthError, match="--method idc needs --start-url"):
        await begin_login(provider(kiro), http, LoginOptions(method="idc"))
    kiro.auto_approve = 1
    try:
        flow = await begin_login(
            provider(kiro), http, LoginOptions(method="idc", start_url="https://acme.awsapps.com/start")
        )
        token = await flow.complete()
    finally:
        kiro.auto_approve = None
    assert token.extra["auth_method"] == "idc"
    assert kiro.to("/device_authorization")[-1].body["startUrl"] == "https://acme.awsapps.com/start"


async def test_the_device_login_honours_slow_down(kiro: FakeKiroAuth, http: HTTPClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("llmproxy.auth.kiro.poll_device_code", functools.partial(poll_device_code, sleep=sleep))
    kiro.slow_down_once, kiro.auto_approve = True, 2
    try:
        flow = await begin_login(provider(kiro), http, LoginOptions())
        await flow.complete()
    finally:
        kiro.slow_down_once, kiro.auto_approve = False, None
    assert waits[:2] == [0.0, 5.0]  # the interval the fake sent, then 5 s more after slow_down


async def test_the_device_login_stops_when_denied(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    flow = await begin_login(provider(kiro), http, LoginOptions())
    kiro.deny(flow.prompt.user_code)
    with pytest.raises(AuthError, match="access denied") as info:
        await flow.complete()
    assert info.value.permanent


async def test_the_device_login_stops_when_the_code_expires(http: HTTPClient) -> None:
    fake = FakeKiroAuth(expires_in=0).start()
    try:
        flow = await begin_login(provider(fake), http, LoginOptions())  # type: ignore[arg-type]
        with pytest.raises(AuthError, match="expired"):
            await flow.complete()
    finally:
        fake.stop()


async def test_the_fake_refuses_an_unregistered_client(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    refresher = refresher_for("kiro")
    assert refresher is not None
    cred = Credential("me", "kiro", access_token="a", refresh_token=kiro.grant("nobody")[1],
                      extra={"auth_method": "builder-id", "client_id": "nobody", "client_secret": "x"})  # fmt: skip
    with pytest.raises(AuthError, match=r"HTTP 401\): invalid_client: Invalid client provided") as info:
        await refresher.refresh(provider(kiro), cred, http)
    assert info.value.permanent


# -- refresh ---------------------------------------------------------------------------
def sso_credential(fake: FakeKiroAuth, **extra: str) -> Credential:
    client_id, secret = fake.register()
    access, refresh = fake.grant(client_id)
    return Credential("me", "kiro", access_token=access, refresh_token=refresh, expires_at=time.time() + 30,
                      extra={"auth_method": "builder-id", "client_id": client_id, "client_secret": secret, **extra})  # fmt: skip


async def test_sso_refresh_keeps_the_refresh_token_when_none_comes_back(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    refresher = refresher_for("kiro")
    assert refresher is not None and refresher.margin == 60
    cred = sso_credential(kiro)
    tokens = await refresher.refresh(provider(kiro), cred, http)
    assert kiro.access.valid(tokens.access_token) and tokens.access_token != cred.access_token
    assert tokens.refresh_token is None and tokens.apply(cred).refresh_token == cred.refresh_token
    assert tokens.expires_at is not None and tokens.expires_at > time.time() + 3500
    sent = kiro.to("/token")[-1]
    assert sent.body["grantType"] == "refresh_token" and sent.body["clientSecret"] == cred.extra["client_secret"]
    assert sent.headers["user-agent"].startswith("llmproxy/")


async def test_sso_refresh_takes_a_rotated_refresh_token(http: HTTPClient) -> None:
    fake = FakeKiroAuth(rotate=True).start()
    try:
        cred = sso_credential(fake)  # type: ignore[arg-type]
        refresher = refresher_for("kiro")
        assert refresher is not None
        tokens = await refresher.refresh(provider(fake), cred, http)  # type: ignore[arg-type]
        assert tokens.refresh_token and tokens.refresh_token != cred.refresh_token
    finally:
        fake.stop()


async def test_a_dead_sso_refresh_token_is_permanent_with_the_reason(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    cred = sso_credential(kiro)
    assert cred.refresh_token is not None
    kiro.refresh.revoke(cred.refresh_token)
    refresher = refresher_for("kiro")
    assert refresher is not None
    with pytest.raises(AuthError, match="invalid_grant: Invalid refresh token provided; log in again") as info:
        await refresher.refresh(provider(kiro), cred, http)
    assert info.value.permanent and info.value.code == "invalid_grant"


async def test_the_credentials_region_picks_the_default_endpoint(http: HTTPClient) -> None:
    refresher = refresher_for("kiro")
    assert refresher is not None
    sent: list[str] = []

    class Recording(HTTPClient):
        async def send(self, req, **kw):  # type: ignore[no-untyped-def]
            sent.append(req.url)
            raise AuthError("stop here")

    cred = Credential("me", "kiro", refresh_token="r",
                      extra={"auth_method": "idc", "client_id": "c", "client_secret": "s", "region": "eu-west-1"})  # fmt: skip
    with pytest.raises(AuthError):
        await refresher.refresh(ProviderConfig(name="kiro", type="kiro"), cred, Recording())
    social = Credential("me", "kiro", refresh_token="r", extra={"auth_method": "social"})
    with pytest.raises(AuthError):
        await refresher.refresh(ProviderConfig(name="kiro", type="kiro", options={"region": "ap-southeast-1"}),
                                social, Recording())  # fmt: skip
    assert sent == ["https://oidc.eu-west-1.amazonaws.com/token",
                    "https://prod.ap-southeast-1.auth.desktop.kiro.dev/refreshToken"]  # fmt: skip


async def test_social_refresh_rotates_and_brings_the_profile(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    access, refresh = kiro.grant("")
    cred = Credential("me", "kiro", access_token=access, refresh_token=refresh, extra={"auth_method": "social"})
    refresher = refresher_for("kiro")
    assert refresher is not None
    tokens = await refresher.refresh(provider(kiro), cred, http)
    assert tokens.refresh_token and tokens.refresh_token != refresh and kiro.refresh.valid(tokens.refresh_token)
    assert tokens.extra == {"profile_arn": PROFILE_ARN}
    assert kiro.to("/refreshToken")[-1].body == {"refreshToken": refresh}
    with pytest.raises(AuthError, match="invalid_grant") as info:
        await refresher.refresh(provider(kiro), cred, http)  # the rotated-away one
    assert info.value.permanent


async def test_a_refresh_without_a_refresh_token_asks_for_a_login(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    refresher = refresher_for("kiro")
    assert refresher is not None
    with pytest.raises(AuthError, match="log in again") as info:
        await refresher.refresh(provider(kiro), Credential("me", "kiro", access_token="a", expires_at=1.0), http)
    assert info.value.permanent


# -- social login (PKCE) ---------------------------------------------------------------
async def browser(url: str, fake: FakeKiroAuth) -> None:
    """The user approving on Kiro's page: it redirects to the loopback with a code."""
    q = dict(parse_qsl(urlsplit(url).query))
    code = fake.issue_code(q["code_challenge"], q["redirect_uri"])
    async with aiohttp.ClientSession() as s, s.get(q["redirect_uri"], params={"code": code, "state": q["state"]}) as r:
        assert r.status == 200


async def test_social_login_through_the_loopback_callback(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    flow = await begin_login(provider(kiro), http, LoginOptions(method="social"))
    try:
        url = urlsplit(flow.prompt.authorize_url)
        q = dict(parse_qsl(url.query))
        assert url.path == "/login" and q["idp"] == "Google" and q["code_challenge_method"] == "S256"
        assert q["redirect_uri"].startswith("http://localhost:") and q["redirect_uri"].endswith("/oauth/callback")
        await browser(flow.prompt.authorize_url, kiro)
        token = await flow.complete()
    finally:
        await flow.close()
    assert kiro.access.valid(token.access_token) and kiro.refresh.valid(token.refresh_token)
    assert token.extra == {"auth_method": "social", "region": "us-east-1", "profile_arn": PROFILE_ARN}


async def test_social_login_with_a_pasted_callback_url(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    flow = await begin_login(provider(kiro), http, LoginOptions(method="social", no_browser=True))
    assert flow.prompt.needs_paste
    q = dict(parse_qsl(urlsplit(flow.prompt.authorize_url).query))
    assert q["redirect_uri"] == "http://localhost:9876/oauth/callback"
    code = kiro.issue_code(q["code_challenge"], q["redirect_uri"])
    token = await flow.complete(f"{q['redirect_uri']}?code={code}&state={q['state']}")
    assert kiro.access.valid(token.access_token)


async def test_social_login_refuses_a_wrong_verifier_and_a_foreign_state(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    flow = await begin_login(provider(kiro), http, LoginOptions(method="social", no_browser=True))
    q = dict(parse_qsl(urlsplit(flow.prompt.authorize_url).query))
    with pytest.raises(AuthError, match="another login"):
        await flow.complete(f"{q['redirect_uri']}?code=x&state=other")
    code = kiro.issue_code("not-the-challenge", q["redirect_uri"])
    with pytest.raises(AuthError, match="invalid_grant: Invalid code verifier"):
        await flow.complete(f"{q['redirect_uri']}?code={code}&state={q['state']}")


async def test_an_unknown_login_method_is_refused(kiro: FakeKiroAuth, http: HTTPClient) -> None:
    with pytest.raises(AuthError, match="unknown kiro login method 'sso'"):
        await begin_login(provider(kiro), http, LoginOptions(method="sso"))
