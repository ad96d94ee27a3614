"""The admin's actions in a real browser: config import with errors on their lines, a provider
login watched until it finishes, a key revoked, and the usage list at laptop width."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import ApiKey
from proxy.models import Credential, Provider, UsageRecord
from tests import factories
from tests.browser.conftest import no_horizontal_scroll, sign_in
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = """\
providers:
  imported:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    priority: high
    models:
      - {name: gpt-imp}
"""


def admin(page: Page, url: str, next_path: str = "/admin/", shoot: Any = None) -> None:
    factories.user("root", staff=True)
    page.goto(f"{url}/admin/login/?next={next_path}")
    if shoot is not None:
        shoot(page, "admin-sign-in")
    sign_in(page, f"{url}/admin/login/?next={next_path}", "root", "pw-root")


def test_a_config_import_shows_errors_on_their_lines_then_applies(live: Any, page: Page, shoot: Any) -> None:
    admin(page, live.url, shoot=shoot)
    page.get_by_role("link", name="Import config.yaml").first.click()
    page.fill("#id_text", CONFIG)
    page.get_by_role("button", name="Import").click()
    why = page.locator(".why[data-line='5']")
    expect(why).to_contain_text("providers.imported.priority")
    expect(page.locator("#line-5")).to_have_class("bad")
    shoot(page, "admin-config-import-errors")
    assert not Provider.objects.filter(name="imported").exists()
    page.fill("#id_text", CONFIG.replace("priority: high", "priority: 3"))
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#llp-config-ok")).to_be_visible()
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".messagelist")).to_contain_text("Imported: 2 created")
    assert Provider.objects.get(name="imported").priority == 3
    page.goto(live.url + "/admin/proxy/configimport/import/")
    with page.expect_download() as info:
        page.locator("#llp-export").click()
    exported = yaml.safe_load(Path(info.value.path()).read_text())
    assert exported["providers"]["imported"]["priority"] == 3


def test_an_admin_starts_a_provider_login_and_watches_it_finish(live: Any, page: Page, github: FakeGitHub,
                                                                 shoot: Any, tmp_path: Any, settings: Any) -> None:  # fmt: skip
    settings.LLMPROXY["AUTH_DIR"] = str(tmp_path)
    p = Provider.objects.create(name="gh", type="copilot", auth_type="device_flow",
                                options={"github_url": github.url, "github_api_url": github.url})  # fmt: skip
    github.auto_approve = 4
    admin(page, live.url, f"/admin/proxy/provider/{p.pk}/change/")
    page.get_by_role("link", name="Log in an account").click()
    expect(page.locator("select[name=type]")).to_have_value("copilot")
    page.fill("input[name=name]", "team")
    page.get_by_role("button", name="Start login").click()
    expect(page.locator("#user-code")).to_be_visible()
    shoot(page, "admin-login-waiting")
    expect(page.locator("#login-state")).to_contain_text("credential gh/team ready", timeout=15_000)
    shoot(page, "admin-login-done")
    assert Credential.objects.filter(provider=p, name="team").exists()


def test_an_admin_revokes_a_key_from_its_page(live: Any, page: Page, shoot: Any) -> None:
    key, _ = factories.api_key(factories.user("mia"), name="laptop")
    admin(page, live.url, f"/admin/accounts/apikey/{key.pk}/change/")
    shoot(page, "admin-key")
    page.locator("#llp-revoke").click()
    expect(page.locator(".messagelist")).to_contain_text("revoked")
    assert ApiKey.objects.get(pk=key.pk).revoked


def test_the_usage_list_fits_a_laptop_screen(live: Any, page: Page, shoot: Any) -> None:
    user = factories.user("a-rather-long-user-name-for-the-list")
    key, _ = factories.api_key(user)
    for i in range(30):
        UsageRecord.objects.create(request_id=uuid.uuid4().hex, created_at=timezone.now(), user=user, key=key,
                                   key_prefix=key.prefix, ingress="anthropic_messages",
                                   model="claude-sonnet-4-5-20250929-with-a-long-name", provider="anthropic-main",
                                   status_code=200 if i % 5 else 529, error_type="" if i % 5 else "overloaded",
                                   prompt_tokens=123456, completion_tokens=65432, cost_usd=Decimal("1.23456789"),
                                   latency_ms=12345)  # fmt: skip
    admin(page, live.url, "/admin/proxy/usagerecord/")
    expect(page.locator("#result_list")).to_be_visible()
    shoot(page, "admin-usage-list")
    assert no_horizontal_scroll(page) == 0
    # The table fits its box too (Django's results box scrolls sideways when it does not).
    assert page.evaluate("(() => { const r = document.querySelector('#changelist .results');"
                         " return r.scrollWidth - r.clientWidth; })()") <= 0  # fmt: skip
    right = page.evaluate("(() => { const th = document.querySelectorAll('#result_list thead th');"
                          " return th[th.length - 1].getBoundingClientRect().right; })()")  # fmt: skip
    assert 0 < right <= 1280  # the last column (latency) is on screen
