"""Management API: config export and import (YAML)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.test import Client

from proxy.models import ConfigImport, Credential, ModelRoute, Provider
from tests import factories

from .helpers import API

pytestmark = pytest.mark.django_db

SECRET = "sk-upstream-secret"
CONFIG = """
providers:
  imported:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    priority: 3
    credentials:
      - {name: main, api_key: sk-imported-secret-1}
    models:
      - {name: gpt-imp, upstream: gpt-imp-2025, input_price: 1.5, output_price: 6}
"""


def post_yaml(client: Client, text: str, query: str = "") -> Any:
    return client.post(API + "/config" + query, data=text, content_type="application/yaml")


def test_it_exports_the_config_without_secrets(admin_client: Client) -> None:
    factories.provider("up", "http://127.0.0.1:9/v1")
    resp = admin_client.get(API + "/config")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("application/yaml")
    assert SECRET.encode() not in resp.content
    data = yaml.safe_load(resp.content)
    assert data["providers"]["up"]["models"][0]["name"] == "gpt-test"


def test_it_exports_secrets_only_to_a_superuser(client: Client, admin_client: Client) -> None:
    factories.provider("up", "http://127.0.0.1:9/v1")
    client.force_login(factories.user("ops", staff=True))
    assert client.get(API + "/config?with_secrets=true").status_code == 403
    assert SECRET.encode() in admin_client.get(API + "/config?with_secrets=true").content


def test_it_imports_a_config(admin_client: Client, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        resp = post_yaml(admin_client, CONFIG)
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["ok"] is True and ConfigImport.objects.get(pk=body["id"]).ok
    assert callbacks, "applying must bump the config version"
    p = Provider.objects.get(name="imported")
    assert p.priority == 3 and p.from_config
    assert Credential.objects.get(provider=p).api_key == "sk-imported-secret-1"
    assert ModelRoute.objects.get(provider=p).upstream_name == "gpt-imp-2025"
    assert b"sk-imported-secret-1" not in resp.content
    again = post_yaml(admin_client, CONFIG).json()
    assert again["changes"]["created"] == [] and again["changes"]["updated"] == []


def test_it_rejects_an_invalid_config_whole_with_every_error(admin_client: Client) -> None:
    bad = CONFIG.replace("openai-compatible", "no-such-type").replace("priority: 3", "priority: high")
    resp = post_yaml(admin_client, bad)
    assert resp.status_code == 422
    locs = [e["loc"][-1] for e in resp.json()["detail"]]
    assert "providers.imported.type" in locs and "providers.imported.priority" in locs
    assert not Provider.objects.filter(name="imported").exists()
    assert ConfigImport.objects.get().ok is False


def test_it_validates_only_on_a_dry_run(admin_client: Client) -> None:
    resp = post_yaml(admin_client, CONFIG, "?dry_run=true")
    assert resp.status_code == 200 and resp.json() == {"id": None, "ok": True, "changes": {}}
    assert not Provider.objects.filter(name="imported").exists()


def test_it_round_trips_an_export_without_touching_secrets(admin_client: Client) -> None:
    factories.provider("up", "http://127.0.0.1:9/v1")
    exported = admin_client.get(API + "/config").content.decode()
    resp = post_yaml(admin_client, exported)
    assert resp.status_code == 200, resp.content
    assert Credential.objects.get(provider__name="up").api_key == SECRET


def test_it_keeps_non_staff_out_of_the_config(client: Client) -> None:
    client.force_login(factories.user("bob"))
    assert client.get(API + "/config").status_code == 403
    assert post_yaml(client, CONFIG).status_code == 403
