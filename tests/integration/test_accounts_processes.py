"""Provider accounts across two real ``serve`` processes on one database.

* A refreshed token (by the beat job, or by one serving process after the upstream
  refused it) is what every serving process sends within 1 s (INTERFACE.md section 8),
  with one refresh in all: a Claude OAuth account and a Kiro Builder ID account.
* An admin login started through one process is watched and finished through the other:
  its state lives in the database, not in the process that runs it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from django.test import Client

from proxy.jobs import token_refresh
from proxy.models import Credential, LoginSession, ModelRoute, Provider
from tests import factories
from tests.fakes import codewhisperer as cw
from tests.fakes._gate import AccountServer, Tokens
from tests.fakes.claude_oauth import FakeClaude
from tests.fakes.kiro_auth import FakeKiroAuth

from .conftest import Serve, until

pytestmark = pytest.mark.django_db(transaction=True)

PROPAGATION = 1.0  # seconds: INTERFACE.md section 8, "every serving process uses them within 1 s"


@pytest.fixture(scope="module")
def codewhisperer(kiro: FakeKiroAuth) -> Iterator[cw.FakeCodeWhisperer]:
    fake = cw.FakeCodeWhisperer(kiro.access)
    fake.start()
    yield fake
    fake.stop()


@dataclass
class Upstream:
    """An account's API (``api``, answering ``path``) and the service that refreshes its tokens."""

    api: AccountServer
    path: str
    auth: AccountServer
    refresh_path: str
    access: Tokens

    def refreshes(self) -> int:
        return len(self.auth.to(self.refresh_path))


@dataclass
class Account:
    cred: Credential
    key: str
    up: Upstream


@pytest.fixture(params=["claude", "kiro"])
def account(request: pytest.FixtureRequest, servers: list[Serve], claude: FakeClaude, kiro: FakeKiroAuth,
            codewhisperer: cw.FakeCodeWhisperer) -> Account:  # fmt: skip
    """An account credential (Claude OAuth, or Kiro Builder ID) both servers serve, and an API key for them."""
    # a name of its own: the shared token store outlives the test database's rows
    name = f"me-{uuid.uuid4().hex[:8]}"
    expires = datetime.now(UTC) + timedelta(hours=8)
    if request.param == "claude":
        up = Upstream(claude, "/v1/messages", claude, "/v1/oauth/token", claude.access)
        p = Provider.objects.create(name="claude-max", type="claude", auth_type="oauth", base_url=claude.url,
                                    options={"oauth_url": claude.url})  # fmt: skip
        access, refresh = claude.grant()
        extra: dict[str, str] = {}
    else:
        up = Upstream(codewhisperer, cw.PATH, kiro, "/token", kiro.access)
        p = Provider.objects.create(name="kiro", type="kiro", auth_type="device_flow", base_url=codewhisperer.url,
                                    options={"oidc_url": kiro.url, "auth_url": kiro.url})  # fmt: skip
        client_id, secret = kiro.register()
        access, refresh = kiro.grant(client_id)
        extra = {"auth_method": "builder-id", "client_id": client_id, "client_secret": secret}
    cred = Credential.objects.create(provider=p, name=name, access_token=access, refresh_token=refresh,
                                     expires_at=expires, extra=extra)  # fmt: skip
    ModelRoute.objects.create(provider=p, name="claude-test", upstream="claude-sonnet-4-5")
    _, raw = factories.api_key(factories.user())
    for s in servers:
        until(lambda s=s: first_token(s, raw, up)[0] == 200, 10, what="the servers serve the account")
    return Account(cred, raw, up)


def first_token(server: Serve, key: str, up: Upstream) -> tuple[int, str]:
    """One request through ``server``: its status and the token of its first upstream call."""
    seen = len(up.api.requests)
    r = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                   json={"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    calls = [c for c in up.api.requests[seen:] if c.path == up.path]
    return r.status_code, calls[0].headers.get("authorization", "")[7:] if calls else ""


def serves_within(servers: list[Serve], account: Account, token: str, since: float) -> None:
    for s in servers:
        until(lambda s=s: first_token(s, account.key, account.up) == (200, token), PROPAGATION, every=0.01,
              what=f"server {s.port} sends the refreshed token")  # fmt: skip
    took = time.monotonic() - since
    assert took <= PROPAGATION, f"the refreshed token took {took:.2f} s to reach every process"


def test_a_token_the_beat_job_refreshed_is_served_by_every_process_within_a_second(
    servers: list[Serve], account: Account
) -> None:
    cred, up = account.cred, account.up
    old = cred.access_token
    refreshes = up.refreshes()
    assert token_refresh.refresh_credential(cred.pk, force=True) == "refreshed"
    saved = time.monotonic()
    cred.refresh_from_db()
    assert cred.access_token != old
    up.access.revoke(old)  # from now on only the new token works upstream
    serves_within(servers, account, cred.access_token, saved)
    assert up.refreshes() == refreshes + 1


def test_a_token_one_process_refreshed_after_a_refusal_is_served_by_the_other_within_a_second(
    servers: list[Serve], account: Account
) -> None:
    cred, up = account.cred, account.up
    refreshes = up.refreshes()
    up.access.revoke(cred.access_token)  # the upstream stops taking it (claude: 401, kiro: 403) before it expires
    status, sent = first_token(servers[0], account.key, up)
    answered = time.monotonic()
    assert (status, sent) == (200, cred.access_token)  # refused once, refreshed, retried: the client saw 200
    assert up.refreshes() == refreshes + 1
    cred.refresh_from_db()
    assert up.access.valid(cred.access_token)  # saved to the database by the serving process
    serves_within(servers[1:], account, cred.access_token, answered)
    assert up.refreshes() == refreshes + 1  # the other process did not refresh again


# -- admin logins ----------------------------------------------------------------------
class Admin:
    """A staff user's browser session, pointed at whichever server it is asked to use."""

    def __init__(self) -> None:
        client = Client()
        client.force_login(factories.user("root", staff=True))
        self.cookies = {"sessionid": client.cookies["sessionid"].value}
        self.path = "/admin/proxy/credential/login/"

    def get(self, server: Serve, query: str = "") -> str:
        r = httpx.get(server.url + self.path + query, cookies=self.cookies, timeout=10)
        assert r.status_code == 200, r.text[:500]
        if "csrftoken" in r.cookies:
            self.cookies["csrftoken"] = r.cookies["csrftoken"]
        return r.text

    def post(self, server: Serve, data: dict[str, str]) -> str:
        page = self.get(server)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None, page[:500]
        r = httpx.post(server.url + self.path, data={**data, "csrfmiddlewaretoken": token.group(1)},
                       cookies=self.cookies, timeout=10)  # fmt: skip
        assert r.status_code == 302, r.text[:500]
        return r.headers["location"]


def kiro_provider(fake: FakeKiroAuth) -> None:
    Provider.objects.create(name="kiro", type="kiro", auth_type="device_flow",
                            options={"oidc_url": fake.url, "auth_url": fake.url, "profiles_url": fake.url})  # fmt: skip


def test_an_admin_device_login_started_on_one_process_is_watched_on_the_other(
    servers: list[Serve], kiro: FakeKiroAuth
) -> None:
    kiro_provider(kiro)
    admin = Admin()
    location = admin.post(servers[0], {"type": "kiro", "name": "team", "method": "builder-id"})
    query = "?" + urlsplit(location).query
    codes: list[str] = []

    def shows_code() -> bool:
        codes[:] = re.findall(r'<strong id="user-code">([^<]+)</strong>', admin.get(servers[1], query))
        return bool(codes)

    until(shows_code, 10, every=0.1, what="the other process shows the device code")
    kiro.approve(codes[0])
    until(lambda: "credential kiro/team ready — healthy" in admin.get(servers[1], query), 15, every=0.1,
          what="the other process shows the finished login")  # fmt: skip
    assert Credential.objects.get(name="team").extra["auth_method"] == "builder-id"


def test_an_admin_login_takes_the_code_pasted_on_the_other_process(servers: list[Serve], kiro: FakeKiroAuth) -> None:
    kiro_provider(kiro)
    admin = Admin()
    location = admin.post(servers[1], {"type": "kiro", "name": "social", "method": "social"})
    query = "?" + urlsplit(location).query
    urls: list[str] = []

    def shows_url() -> bool:
        urls[:] = re.findall(r'id="authorize-url" href="([^"]+)"', admin.get(servers[0], query))
        return bool(urls)

    until(shows_url, 10, every=0.1, what="the other process shows the login page's URL")
    q = dict(parse_qsl(urlsplit(urls[0].replace("&amp;", "&")).query))
    code = kiro.issue_code(q["code_challenge"], q["redirect_uri"])
    sid = dict(parse_qsl(query[1:]))["session"]
    admin.post(servers[0], {"session": sid, "code": f"{q['redirect_uri']}?code={code}&state={q['state']}"})
    until(lambda: "credential kiro/social ready — healthy" in admin.get(servers[1], query), 15, every=0.1,
          what="the login finished with the code pasted elsewhere")  # fmt: skip
    assert LoginSession.objects.get(pk=sid).pasted == ""  # consumed, not left lying around
    assert Credential.objects.get(name="social").extra["auth_method"] == "social"
