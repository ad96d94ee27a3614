"""Kiro accounts in the shell: ``manage.py login kiro`` (each method, imports) and the beat job's refresh."""

from __future__ import annotations

import io
import json
import stat
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core.management import CommandError, call_command

from proxy.jobs import token_refresh
from proxy.models import Credential, HealthState, HealthStatus, Provider
from tests.fakes.kiro_auth import PROFILE_ARN, SSO_PROFILE_ARN, FakeKiroAuth

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("auth_dir")]


def kiro_provider(fake: FakeKiroAuth) -> Provider:
    return Provider.objects.create(name="kiro", type="kiro", auth_type="device_flow",
                                   options={"oidc_url": fake.url, "auth_url": fake.url, "profiles_url": fake.url})  # fmt: skip


def test_it_logs_in_to_kiro_with_builder_id_by_default(kiro: FakeKiroAuth, auth_dir: Path) -> None:
    kiro_provider(kiro)
    kiro.auto_approve = 2
    out = io.StringIO()
    try:
        call_command("login", "kiro", "--name", "me", stdout=out)
    finally:
        kiro.auto_approve = None
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"open {kiro.url}/device and enter ")
    assert lines[-1] == "credential kiro/me ready"
    cred = Credential.objects.get(provider__name="kiro", name="me")
    assert kiro.access.valid(cred.access_token) and kiro.refresh.valid(cred.refresh_token)
    assert cred.extra["auth_method"] == "builder-id" and cred.extra["profile_arn"] == SSO_PROFILE_ARN
    assert HealthStatus.objects.get(credential=cred).state == HealthState.HEALTHY
    path = auth_dir / "kiro-me.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert (data["type"], data["provider"], data["auth_method"]) == ("kiro", "kiro", "builder-id")
    assert data["client_id"] in kiro.clients and data["client_secret"] == kiro.clients[data["client_id"]]
    assert data["refresh_token"] == cred.refresh_token and data["region"] == "us-east-1"


def test_a_denied_kiro_login_fails_with_the_reason(kiro: FakeKiroAuth) -> None:
    kiro_provider(kiro)

    def deny_soon() -> None:
        time.sleep(0.2)
        kiro.deny()

    threading.Thread(target=deny_soon, daemon=True).start()
    with pytest.raises(CommandError, match="login of kiro/default failed: access denied") as info:
        call_command("login", "kiro", stdout=io.StringIO())
    assert info.value.returncode == 1
    assert not Credential.objects.exists()


def test_an_idc_login_without_a_start_url_says_so(kiro: FakeKiroAuth) -> None:
    kiro_provider(kiro)
    with pytest.raises(CommandError, match="--method idc needs --start-url"):
        call_command("login", "kiro", "--method", "idc", stdout=io.StringIO())


def test_an_idc_login_with_a_start_url(kiro: FakeKiroAuth) -> None:
    kiro_provider(kiro)
    kiro.auto_approve = 1
    out = io.StringIO()
    try:
        call_command("login", "kiro", "--method", "idc", "--start-url", "https://acme.awsapps.com/start",
                     "--name", "work", stdout=out)  # fmt: skip
    finally:
        kiro.auto_approve = None
    assert out.getvalue().splitlines()[-1] == "credential kiro/work ready"
    assert Credential.objects.get(name="work").extra["auth_method"] == "idc"
    assert kiro.to("/device_authorization")[-1].body["startUrl"] == "https://acme.awsapps.com/start"


class PasteCallback(io.StringIO):
    """A user who opens the printed URL, approves, and pastes the address the browser ended on."""

    def __init__(self, out: io.StringIO, fake: FakeKiroAuth) -> None:
        super().__init__()
        self.out, self.fake = out, fake

    def readline(self, *args: Any) -> str:
        q = dict(parse_qsl(urlsplit(self.out.getvalue().split()[1]).query))
        code = self.fake.issue_code(q["code_challenge"], q["redirect_uri"])
        return f"{q['redirect_uri']}?code={code}&state={q['state']}\n"


def test_a_social_login_with_a_pasted_callback(kiro: FakeKiroAuth, auth_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    kiro_provider(kiro)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdin", PasteCallback(out, kiro))
    call_command("login", "kiro", "--method", "social", "--no-browser", stdout=out)
    assert out.getvalue().splitlines()[-1] == "credential kiro/default ready"
    data = json.loads((auth_dir / "kiro-default.json").read_text())
    assert (data["auth_method"], data["profile_arn"]) == ("social", PROFILE_ARN)
    assert "client_secret" not in data


def test_it_imports_kiro_ides_token_file_and_creates_the_provider(tmp_path: Path, auth_dir: Path) -> None:
    ide = tmp_path / "sso-cache"
    ide.mkdir()
    (ide / "abc123.json").write_text(json.dumps({"clientId": "cid", "clientSecret": "cs"}))
    token = ide / "kiro-auth-token.json"
    token.write_text(json.dumps({"accessToken": "aoa", "refreshToken": "aor", "expiresAt": "2030-01-01T00:00:00Z",
                                 "authMethod": "IdC", "provider": "BuilderId", "clientIdHash": "abc123",
                                 "region": "us-east-1"}))  # fmt: skip
    out = io.StringIO()
    call_command("login", "kiro", "--import", str(token), "--name", "ide", stdout=out)
    assert out.getvalue().strip() == "credential kiro/ide ready"
    cred = Credential.objects.get(name="ide")
    assert (cred.provider.type, cred.provider.auth_type) == ("kiro", "device_flow")
    assert (cred.access_token, cred.refresh_token) == ("aoa", "aor")
    assert cred.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert cred.extra == {"auth_method": "builder-id", "client_id": "cid", "client_secret": "cs", "region": "us-east-1"}
    assert json.loads((auth_dir / "kiro-ide.json").read_text())["client_secret"] == "cs"


def test_a_bad_kiro_import_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "kiro-x.json"
    bad.write_text(json.dumps({"type": "kiro", "refresh_token": "r", "auth_method": "sso"}))
    with pytest.raises(CommandError, match=r"kiro-x.json: auth_method: is 'sso'; one of builder-id, idc or social"):
        call_command("login", "kiro", "--import", str(bad), stdout=io.StringIO())


def test_the_beat_job_refreshes_kiro_credentials_due_within_ten_minutes(kiro: FakeKiroAuth, auth_dir: Path) -> None:
    p = kiro_provider(kiro)
    run = uuid.uuid4().hex[:8]  # names of their own: tokens a shared Redis kept from an earlier run outlive the rows
    client_id, secret = kiro.register()
    access, refresh = kiro.grant(client_id)
    soon = datetime.now(UTC) + timedelta(minutes=9)
    sso = Credential.objects.create(provider=p, name=f"sso-{run}", access_token=access, refresh_token=refresh,
                                    expires_at=soon, file="kiro-sso.json",
                                    extra={"auth_method": "builder-id", "client_id": client_id,
                                           "client_secret": secret})  # fmt: skip
    s_access, s_refresh = kiro.grant("")
    social = Credential.objects.create(provider=p, name=f"social-{run}", access_token=s_access, refresh_token=s_refresh,
                                       expires_at=soon, extra={"auth_method": "social"})  # fmt: skip
    later = Credential.objects.create(provider=p, name=f"later-{run}", access_token="aoa-later", refresh_token="aor-x",
                                      expires_at=datetime.now(UTC) + timedelta(minutes=11),
                                      extra={"auth_method": "social"})  # fmt: skip
    dead = Credential.objects.create(provider=p, name=f"dead-{run}", access_token="x", refresh_token="revoked",
                                     expires_at=soon, extra={"auth_method": "builder-id", "client_id": client_id,
                                                             "client_secret": secret})  # fmt: skip
    summary = token_refresh.refresh_due_credentials()
    assert summary.as_dict() == {"due": 3, "refreshed": 2, "failed": 1}
    sso.refresh_from_db()
    assert sso.access_token != access and kiro.access.valid(sso.access_token)
    assert sso.refresh_token == refresh  # SSO-OIDC sent none back: the old one is kept
    assert sso.expires_at is not None and sso.expires_at > datetime.now(UTC) + timedelta(minutes=55)
    assert json.loads((auth_dir / "kiro-sso.json").read_text())["access_token"] == sso.access_token
    social.refresh_from_db()
    assert social.refresh_token != s_refresh and kiro.refresh.valid(social.refresh_token)  # rotated and kept
    assert social.extra["profile_arn"] == PROFILE_ARN
    later.refresh_from_db()
    assert later.access_token == "aoa-later"  # 11 minutes left: not due
    health = HealthStatus.objects.get(credential=dead)
    assert health.state == HealthState.UNHEALTHY and "invalid_grant" in health.error
    assert "Invalid refresh token provided" in health.error
    assert HealthStatus.objects.get(credential=sso).state == HealthState.HEALTHY


def test_the_admin_shows_a_login_whose_runner_went_away_as_failed(client: Any) -> None:
    from django.utils import timezone

    from proxy.models import LoginSession
    from tests import factories

    client.force_login(factories.user("root", staff=True))
    LoginSession.objects.create(id="abc", provider_type="kiro", name="gone", state="waiting",
                                prompt={"message": "open x and enter AB-CD", "verification_uri": "x",
                                        "user_code": "AB-CD", "authorize_url": "", "needs_paste": False})  # fmt: skip
    page = client.get("/admin/proxy/credential/login/?session=abc").content.decode()
    assert "AB-CD" in page and "waiting for the login to finish" in page  # another process runs it: shown
    LoginSession.objects.filter(pk="abc").update(alive_at=timezone.now() - timedelta(minutes=1))
    page = client.get("/admin/proxy/credential/login/?session=abc").content.decode()
    assert "the process running it stopped; start it again" in page
    assert LoginSession.objects.get(pk="abc").state == "failed"


def test_the_admin_offers_kiro_and_its_methods(client: Any) -> None:
    from tests import factories

    client.force_login(factories.user("root", staff=True))
    page = client.get("/admin/proxy/credential/login/").content.decode()
    assert '<option value="kiro">kiro</option>' in page
    assert all(f'<option value="{m}">{m}</option>' in page for m in ("builder-id", "idc", "social"))
