"""A provider's outbound proxy through the shell: config import/export, the API, the snapshot."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from proxy.configsync import apply
from proxy.models import Provider
from proxy.serving.snapshot import build_runtime

from .helpers import send

pytestmark = pytest.mark.django_db

PROXY = "http://me:pr0xy-pass@proxy.corp.example:3128"
CONFIG = f"""
providers:
  oai:
    type: openai
    proxy: {PROXY}
    credentials: [{{name: k, api_key: sk-oai-secret}}]
    models: [gpt-x]
"""


def test_a_configured_proxy_reaches_the_engine_and_exports_without_its_password(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    record = apply.import_config_file(path)
    assert record.ok, record.errors
    assert Provider.objects.get(name="oai").proxy == PROXY
    with connection.cursor() as cur:  # encrypted at rest: the password is not in the row
        cur.execute("SELECT proxy FROM proxy_provider WHERE name = 'oai'")
        assert "pr0xy-pass" not in cur.fetchone()[0]
    assert build_runtime().executors["oai"].provider.proxy == PROXY

    text = apply.export_config()
    assert "pr0xy-pass" not in text and "proxy: http://me:<redacted>@proxy.corp.example:3128" in text
    again = apply.import_config_text(text, "export")  # the redacted password keeps the stored one
    assert again.ok and again.changes["updated"] == []
    assert Provider.objects.get(name="oai").proxy == PROXY
    assert PROXY in apply.export_config(with_secrets=True)


def test_the_api_masks_a_providers_proxy_and_validates_it(admin_client: Client) -> None:
    resp = send(admin_client, "post", "/providers", {"name": "oai", "type": "openai", "proxy": PROXY})
    assert resp.status_code == 201, resp.content
    created = resp.json()
    assert created["proxy"] == "http://me:****@proxy.corp.example:3128"
    pid = created["id"]
    # A GET -> PATCH round trip of the masked value keeps the stored password.
    resp = send(admin_client, "patch", f"/providers/{pid}", {"proxy": created["proxy"], "priority": 2})
    assert resp.status_code == 200 and b"pr0xy-pass" not in resp.content
    assert Provider.objects.get(pk=pid).proxy == PROXY
    resp = send(admin_client, "patch", f"/providers/{pid}", {"proxy": "socks5://h:1080"})
    assert resp.status_code == 422
    assert [e["loc"][-1] for e in resp.json()["detail"]] == ["proxy"]
    assert send(admin_client, "patch", f"/providers/{pid}", {"proxy": ""}).json()["proxy"] == ""
    assert Provider.objects.get(pk=pid).proxy == ""
