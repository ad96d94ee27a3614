"""Provider accounts in the shell: logins (command), token files in the auth dir, the beat job's refresh."""

from __future__ import annotations

import io
import json
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core.management import CommandError, call_command

from proxy.configsync import accounts, watch
from proxy.jobs import token_refresh
from proxy.models import Credential, HealthState, HealthStatus, Provider
from tests import factories
from tests.fakes.claude_oauth import FakeClaude
from tests.fakes.github import FakeGitHub

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("auth_dir")]


def test_it_logs_in_to_copilot_with_the_device_flow(github: FakeGitHub, auth_dir: Path) -> None:
    Provider.objects.create(name="copilot", type="copilot", auth_type="device_flow",
                            options={"github_url": github.url, "github_api_url": github.url})  # fmt: skip
    github.auto_approve = 2
    out = io.StringIO()
    call_command("login", "copilot", "--name", "me", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"open {github.url}/login/device and enter ")
    assert lines[-1] == "credential copilot/me ready"
    cred = Credential.objects.get(provider__name="copilot", name="me")
    assert cred.refresh_token in github.github_tokens and github.copilot.valid(cred.access_token)
    assert HealthStatus.objects.get(credential=cred).state == HealthState.HEALTHY
    path = auth_dir / "copilot-me.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert (data["type"], data["provider"], data["github_token"]) == ("copilot", "copilot", cred.refresh_token)


def test_a_denied_device_login_fails_with_the_reason(github: FakeGitHub) -> None:
    Provider.objects.create(name="copilot", type="copilot", options={"github_url": github.url})
    github.auto_approve = None

    def deny_soon() -> None:
        time.sleep(0.2)
        github.deny()

    import threading

    threading.Thread(target=deny_soon, daemon=True).start()
    with pytest.raises(CommandError, match="login of copilot/default failed: access denied"):
        call_command("login", "copilot", stdout=io.StringIO())
    assert not Credential.objects.exists()


class PasteFromPrompt(io.StringIO):
    """A user who opens the printed URL, approves, and pastes CODE#STATE."""

    def __init__(self, out: io.StringIO, fake: FakeClaude) -> None:
        super().__init__()
        self.out, self.fake = out, fake

    def readline(self, *args: Any) -> str:
        url = self.out.getvalue().split()[1]
        q = dict(parse_qsl(urlsplit(url).query))
        return f"{self.fake.issue_code(q['code_challenge'])}#{q['state']}\n"


def test_it_logs_in_to_claude_with_a_pasted_code_and_creates_the_provider(
    claude: FakeClaude, auth_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmproxy.auth import DEFAULT_ENDPOINTS

    monkeypatch.setitem(DEFAULT_ENDPOINTS, "claude", {"oauth_url": claude.url})  # the only provider: none yet
    out = io.StringIO()
    monkeypatch.setattr("sys.stdin", PasteFromPrompt(out, claude))
    call_command("login", "claude", "--no-browser", stdout=out)
    assert out.getvalue().splitlines()[-1] == "credential claude/default ready"
    p = Provider.objects.get(name="claude")
    assert (p.type, p.auth_type) == ("claude", "oauth")
    cred = p.credentials.get()
    assert claude.access.valid(cred.access_token) and cred.extra["email"] == "me@example.com"
    assert json.loads((auth_dir / "claude-default.json").read_text())["refresh_token"] == cred.refresh_token


def test_it_imports_gemini_clis_token_file(tmp_path: Path) -> None:
    creds = tmp_path / "oauth_creds.json"
    creds.write_text(json.dumps({"access_token": "ya29.a", "refresh_token": "1//r", "expiry_date": 1893456000000}))
    out = io.StringIO()
    call_command("login", "gemini", "--import", str(creds), "--name", "me", stdout=out)
    assert out.getvalue().strip() == "credential gemini/me ready"
    cred = Credential.objects.get(name="me")
    assert (cred.access_token, cred.refresh_token) == ("ya29.a", "1//r")
    assert cred.expires_at == datetime(2030, 1, 1, tzinfo=UTC)


def test_a_bad_import_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"type": "gemini", "expires_at": "soon", "refresh_token": "r"}))
    with pytest.raises(CommandError, match=r"x.json: expires_at: is neither ISO 8601"):
        call_command("login", "gemini", "--import", str(bad), stdout=io.StringIO())


def test_token_files_in_the_auth_dir_appear_change_and_disappear(auth_dir: Path) -> None:
    Provider.objects.create(name="claude-max", type="claude", auth_type="oauth")
    path = auth_dir / "claude-work.json"
    path.write_text(json.dumps({"type": "claude", "access_token": "sk-ant-oat01-a", "refresh_token": "r1"}))
    assert accounts.sync_account_file(path) == "credential claude-max/work from claude-work.json"
    cred = Credential.objects.get(provider__name="claude-max", name="work")
    path.write_text(json.dumps({"type": "claude", "access_token": "sk-ant-oat01-b", "refresh_token": "r2"}))
    accounts.sync_account_file(path)
    cred.refresh_from_db()
    assert (cred.access_token, cred.refresh_token) == ("sk-ant-oat01-b", "r2")
    path.write_text("{broken")
    assert accounts.sync_account_file(path).startswith("rejected: ")  # type: ignore[union-attr]
    health = HealthStatus.objects.get(credential=cred)
    assert health.state == HealthState.UNHEALTHY and "claude-work.json" in health.error and "JSON" in health.error
    cred.refresh_from_db()
    assert cred.access_token == "sk-ant-oat01-b"  # nothing else changed
    path.unlink()
    assert accounts.remove_account_file(path) == ["claude-max/work"]
    assert not Credential.objects.exists()


def test_a_token_file_with_several_providers_of_its_type_is_ignored(auth_dir: Path) -> None:
    Provider.objects.create(name="c1", type="claude")
    Provider.objects.create(name="c2", type="claude")
    path = auth_dir / "claude-x.json"
    path.write_text(json.dumps({"type": "claude", "access_token": "a"}))
    assert "several claude providers (c1, c2)" in (accounts.sync_account_file(path) or "")
    path.write_text(json.dumps({"type": "claude", "access_token": "a", "provider": "c2"}))
    accounts.sync_account_file(path)
    assert Credential.objects.get().provider.name == "c2"


def test_the_watcher_applies_a_new_token_file(auth_dir: Path, tmp_path: Path) -> None:
    svc = watch.WatchService(None, str(auth_dir), lease=watch.FileLease(tmp_path / "lock"), debounce_ms=50,
                             retry_seconds=0.05).start()  # fmt: skip
    try:
        time.sleep(0.3)
        (auth_dir / "gemini-me.json").write_text(json.dumps({"type": "gemini", "refresh_token": "1//r",
                                                             "project_id": "p1"}))  # fmt: skip
        deadline = time.monotonic() + 2.0
        while not Credential.objects.filter(name="me").exists():
            assert time.monotonic() < deadline, "the token file was not applied within 2 s"
            time.sleep(0.05)
        cred = Credential.objects.get(name="me")
        assert cred.provider.name == "gemini" and cred.extra["project_id"] == "p1"
    finally:
        svc.stop()


def test_the_beat_job_refreshes_claude_keeps_the_rotated_token_and_writes_the_file(
    claude: FakeClaude, auth_dir: Path
) -> None:
    p = Provider.objects.create(name="claude-max", type="claude", auth_type="oauth", options={"oauth_url": claude.url})
    access, refresh = claude.grant()
    soon = datetime.now(UTC) + timedelta(minutes=5)
    # a name of its own: tokens published in a shared Redis by an earlier run outlive the database's rows
    cred = Credential.objects.create(provider=p, name=f"me-{uuid.uuid4().hex[:8]}", access_token=access,
                                     refresh_token=refresh, expires_at=soon, file="claude-me.json")  # fmt: skip
    dead = Credential.objects.create(
        provider=p, name="dead", access_token="x", refresh_token="revoked", expires_at=soon
    )
    summary = token_refresh.refresh_due_credentials()
    assert summary.as_dict() == {"due": 2, "refreshed": 1, "failed": 1}
    cred.refresh_from_db()
    assert cred.refresh_token != refresh and claude.refresh.valid(cred.refresh_token)
    assert cred.expires_at is not None and cred.expires_at > datetime.now(UTC) + timedelta(hours=7)
    assert json.loads((auth_dir / "claude-me.json").read_text())["access_token"] == cred.access_token
    health = HealthStatus.objects.get(credential=dead)
    assert health.state == HealthState.UNHEALTHY and "invalid_grant" in health.error
    assert HealthStatus.objects.get(credential=cred).state == HealthState.HEALTHY


def test_the_admin_runs_a_device_login_until_the_credential_is_healthy(github: FakeGitHub, client: Any) -> None:

    client.force_login(factories.user("root", staff=True))
    Provider.objects.create(name="copilot", type="copilot", auth_type="device_flow",
                            options={"github_url": github.url, "github_api_url": github.url})  # fmt: skip
    github.auto_approve = 3
    started = client.post("/admin/proxy/credential/login/", {"type": "copilot", "name": "team"})
    assert started.status_code == 302
    page = ""
    deadline = time.monotonic() + 10
    while "credential copilot/team ready — healthy" not in page:  # the page refreshes itself until then
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
        page = client.get(started["Location"]).content.decode()
    assert Credential.objects.get(name="team").provider.name == "copilot"


def test_the_admin_refuses_an_unknown_account_type(client: Any) -> None:

    client.force_login(factories.user("root", staff=True))
    page = client.post("/admin/proxy/credential/login/", {"type": "nope"}).content.decode()
    assert "no login for type &#x27;nope&#x27;" in page
