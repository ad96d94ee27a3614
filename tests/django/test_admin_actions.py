"""The admin's actions: import and export config.yaml (errors on their lines), revoke a key, login links."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from llmproxy.config import ConfigIssue
from proxy.configsync.lines import issue_lines
from proxy.models import ConfigImport, Credential, Provider
from tests import factories

pytestmark = pytest.mark.django_db

CONFIG = """\
providers:
  imported:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    priority: 3
    credentials:
      - {name: main, api_key: sk-imported-secret-1}
    models:
      - {name: gpt-4.1, upstream: gpt-imp-2025, input_price: 1.5, output_price: 6}
"""


@pytest.fixture
def client() -> Client:
    c = Client()
    c.force_login(factories.user("sam", staff=True))
    return c


def test_issue_lines_point_at_the_line_of_each_path() -> None:
    issues = [ConfigIssue("providers.imported.priority", "must be an integer"),
              ConfigIssue("providers.imported.models[0].gpt", "?"),
              ConfigIssue("providers.imported.credentials[0].api_key", "bad"),
              ConfigIssue("line 4", "key 'x' is given twice"),
              ConfigIssue("providers.imported.weight", "required"),
              ConfigIssue("server.port", "from LLMPROXY_SERVER_PORT")]  # fmt: skip
    got = {(i.path, i.line) for i in issue_lines(CONFIG, issues)}
    assert ("providers.imported.priority", 5) in got
    assert ("providers.imported.models[0].gpt", 9) in got  # the item: it has no key "gpt"
    assert ("providers.imported.credentials[0].api_key", 7) in got
    assert ("line 4", 4) in got
    assert ("providers.imported.weight", 2) in got  # missing: the mapping that lacks it
    assert ("server.port", None) in got  # not in the text at all


def test_a_key_with_dots_is_found_whole() -> None:
    text = "providers:\n  p:\n    headers:\n      x.y.z: 1\n"
    (issue,) = issue_lines(text, [ConfigIssue("providers.p.headers.x.y.z", "bad header")])
    assert issue.line == 4


def test_check_shows_each_error_on_its_line_and_changes_nothing(client: Client) -> None:
    bad = CONFIG.replace("openai-compatible", "no-such-type").replace("priority: 3", "priority: high")
    page = client.post(reverse("admin:proxy_configimport_import"), {"text": bad, "import": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "2 errors; nothing was changed" in html
    assert 'class="why" data-line="3">line 3: <code>providers.imported.type</code>' in html
    assert 'class="why" data-line="5">line 5: <code>providers.imported.priority</code>' in html
    assert not Provider.objects.filter(name="imported").exists()
    rejected = ConfigImport.objects.get()
    assert rejected.ok is False and rejected.source == "admin:sam"


def test_a_syntax_error_is_shown_on_its_line(client: Client) -> None:
    page = client.post(reverse("admin:proxy_configimport_import"), {"text": "providers:\n  a: [1,\n", "check": "1"})
    html = page.content.decode()
    assert "YAML syntax error" in html and 'id="line-3" class="bad"' in html
    assert not ConfigImport.objects.exists()  # a check records nothing


def test_check_of_a_valid_file_changes_nothing(client: Client) -> None:
    page = client.post(reverse("admin:proxy_configimport_import"), {"text": CONFIG, "check": "1"})
    assert "The file is valid" in page.content.decode()
    assert not Provider.objects.exists() and not ConfigImport.objects.exists()


def test_import_applies_the_file_and_says_what_changed(client: Client) -> None:
    page = client.post(reverse("admin:proxy_configimport_import"), {"text": CONFIG, "import": "1"}, follow=True)
    assert "Imported: 3 created, 0 updated, 0 deleted" in page.content.decode()
    assert Credential.objects.get(provider__name="imported").api_key == "sk-imported-secret-1"
    assert ConfigImport.objects.get().ok is True


def test_an_uploaded_file_is_imported(client: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("config.yaml", CONFIG.encode(), content_type="application/yaml")
    client.post(reverse("admin:proxy_configimport_import"), {"file": upload, "import": "1"})
    assert Provider.objects.filter(name="imported", from_config=True).exists()


def test_a_file_that_is_not_text_is_refused(client: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("config.yaml", b"\xff\xfe\x00bad", content_type="application/yaml")
    page = client.post(reverse("admin:proxy_configimport_import"), {"file": upload, "import": "1"})
    assert page.status_code == 200 and "not UTF-8" in page.content.decode()


def test_export_downloads_the_config_without_secrets_and_round_trips(client: Client) -> None:
    client.post(reverse("admin:proxy_configimport_import"), {"text": CONFIG, "import": "1"})
    resp = client.get(reverse("admin:proxy_configimport_export"))
    assert resp.status_code == 200 and resp["Content-Disposition"] == 'attachment; filename="config.yaml"'
    text = resp.content.decode()
    assert "sk-imported-secret-1" not in text
    assert yaml.safe_load(text)["providers"]["imported"]["priority"] == 3
    form = client.get(reverse("admin:proxy_configimport_import")).content.decode()
    assert "imported:" in form and "sk-imported-secret-1" not in form  # prefilled with the export
    client.post(reverse("admin:proxy_configimport_import"), {"text": text, "import": "1"})
    assert Credential.objects.get(provider__name="imported").api_key == "sk-imported-secret-1"  # kept


def test_members_cannot_import_or_export() -> None:
    c = Client()
    c.force_login(factories.user("mia"))
    for name in ("admin:proxy_configimport_import", "admin:proxy_configimport_export"):
        assert c.get(reverse(name)).status_code == 302  # to the admin's login
    assert c.post(reverse("admin:proxy_configimport_import"), {"text": CONFIG, "import": "1"}).status_code == 302
    assert not Provider.objects.exists()


def test_the_revoke_button_revokes_the_key(client: Client) -> None:
    key, _ = factories.api_key(factories.user("mia"))
    page = client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()
    assert 'id="llp-revoke"' in page
    url = reverse("admin:accounts_apikey_revoke", args=[key.pk])
    assert client.get(url).status_code == 405
    done = client.post(url, follow=True)
    assert "revoked" in done.content.decode()
    assert ApiKey.objects.get(pk=key.pk).revoked is True
    assert 'id="llp-revoke"' not in done.content.decode()


def test_staff_cannot_revoke_a_superusers_key(client: Client) -> None:
    root = factories.user("root", staff=True)
    root.is_superuser = True
    root.save()
    key, _ = factories.api_key(root)
    assert client.post(reverse("admin:accounts_apikey_revoke", args=[key.pk])).status_code == 403
    assert ApiKey.objects.get(pk=key.pk).revoked is False


def test_login_is_linked_from_the_pages_that_need_it(client: Client, settings: Any) -> None:
    login = reverse("admin:proxy_credential_login")
    copilot = Provider.objects.create(name="gh", type="copilot", auth_type="device_flow")
    cred = Credential.objects.create(provider=copilot, name="team")
    plain = factories.provider("plain", "http://127.0.0.1:9/v1")
    assert f'{login}?type=copilot&amp;provider=gh"' in client.get(
        reverse("admin:proxy_provider_change", args=[copilot.pk])).content.decode()  # fmt: skip
    assert f'{login}?type=copilot&amp;provider=gh"' in client.get(
        reverse("admin:proxy_credential_change", args=[cred.pk])).content.decode()  # fmt: skip
    assert login not in client.get(reverse("admin:proxy_provider_change", args=[plain.pk])).content.decode()
    assert f'href="{login}"' in client.get(reverse("admin:proxy_credential_changelist")).content.decode()
    index = client.get(reverse("admin:index")).content.decode()
    assert f'href="{login}"' in index and reverse("admin:proxy_configimport_import") in index
    form = client.get(login + "?type=copilot&provider=gh").content.decode()
    assert '<option value="copilot" selected>' in form and 'name="provider" value="gh"' in form
