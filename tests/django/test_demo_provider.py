"""The demo provider as rows: added once, removable, labelled in the admin, usable from config."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from llmproxy.config import loads as load_config
from proxy.configsync.demo import add_demo_provider, remove_demo_provider
from proxy.management.commands.bootstrap import curl_line
from proxy.models import Credential, ModelRoute, Provider
from tests import factories
from tests.fakes import openai as up

pytestmark = pytest.mark.django_db


def test_it_adds_one_demo_provider_priced_at_zero() -> None:
    p = add_demo_provider()
    assert p is not None and (p.name, p.type) == ("demo", "demo")
    route = ModelRoute.objects.get(provider=p)
    assert (route.name, route.input_price, route.output_price) == ("demo", 0, 0)
    assert Credential.objects.filter(provider=p).count() == 1
    assert add_demo_provider() is None
    assert remove_demo_provider() == 1 and not Provider.objects.filter(type="demo").exists()
    assert remove_demo_provider() == 0


def test_it_picks_another_name_when_demo_is_taken() -> None:
    factories.provider("demo", "https://example.invalid/v1")
    p = add_demo_provider()
    assert p is not None and p.name == "demo-offline" and p.type == "demo"


def test_the_admin_labels_it_as_demo() -> None:
    add_demo_provider()
    c = Client()
    c.force_login(factories.user("sam", staff=True))
    page = c.get("/admin/proxy/provider/").content.decode()
    assert 'class="llp-state llp-demo">demo</span>' in page


def test_bootstrap_adds_it_and_prints_a_curl_line(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("bootstrap")
    out = capsys.readouterr().out
    assert Provider.objects.filter(type="demo").count() == 1
    assert "curl http://127.0.0.1:8000/v1/chat/completions -H 'Authorization: Bearer sk-llmp-" in out
    call_command("bootstrap")
    assert "nothing to bootstrap" in capsys.readouterr().out and Provider.objects.count() == 1


def test_curl_line_quotes_what_the_shell_would_split() -> None:
    line = curl_line("http://h:1", "sk-a'b")
    assert "'Authorization: Bearer sk-a'\"'\"'b'" in line and '"model":"demo"' in line


def test_config_yaml_accepts_the_demo_type() -> None:
    config = load_config("providers:\n  d:\n    type: demo\n    credentials: [{name: offline, api_key: unused}]\n"
                         "    models: [{name: demo, input_price: 0, output_price: 0}]\n")  # fmt: skip
    assert [p.type for p in config.providers.values()] == ["demo"]


def test_the_admin_tests_a_credential_for_real(fake: Any) -> None:
    demo = add_demo_provider()
    assert demo is not None
    fake.queue("/v1/chat/completions", up.error(401, "bad key"))
    broken = factories.provider("up", fake.url + "/v1")
    c = Client()
    c.force_login(factories.user("root", staff=True))
    ids = [str(cr.pk) for cr in Credential.objects.filter(provider__in=[demo, broken])]
    resp = c.post("/admin/proxy/credential/", {"action": "test_selected", "_selected_action": ids}, follow=True)
    texts = [str(m) for m in resp.context["messages"]]
    assert any(t.startswith("demo/offline: works (HTTP 200") and "model demo" in t for t in texts), texts
    assert any(t.startswith("up/key-1: failed (HTTP 401") for t in texts), texts


def test_the_test_button_probes_one_credential_and_says_how_it_went() -> None:
    demo = add_demo_provider()
    assert demo is not None
    cred = Credential.objects.get(provider=demo)
    c = Client()
    c.force_login(factories.user("root", staff=True))
    board = c.get("/admin/").content.decode()
    assert (
        'id="llp-test"' in board and f'form="llp-test" class="llp-button" name="credential" value="{cred.pk}"' in board
    )
    assert 'id="llp-test-this"' in c.get(f"/admin/proxy/credential/{cred.pk}/change/").content.decode()
    url = reverse("admin:proxy_credential_test")
    resp = c.post(url, {"credential": str(cred.pk), "next": "/admin/"}, follow=True)
    assert resp.redirect_chain == [("/admin/", 302)]
    texts = [str(m) for m in resp.context["messages"]]
    assert len(texts) == 1 and texts[0].startswith("demo/offline: works (HTTP 200, ") and " ms, model demo)" in texts[0]
    missing = c.post(url, {"credential": "999999", "next": "https://elsewhere.example/"}, follow=True)
    assert missing.redirect_chain[-1][0] == reverse("admin:proxy_credential_changelist")  # never off-site
    assert [str(m) for m in missing.context["messages"]] == ["No such credential to test."]
    assert c.get(url).status_code == 405
