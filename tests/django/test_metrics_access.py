"""/metrics: loopback only by default; a token opens it to anywhere, and only with the token."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-0123456789"


def test_it_serves_loopback_and_refuses_remote_clients_by_default(client: Client) -> None:
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    resp = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert resp.status_code == 403 and b"llmproxy_" not in resp.content


def test_allow_remote_opens_it(client: Client, settings: Any) -> None:
    settings.LLMPROXY = {**settings.LLMPROXY, "METRICS_ALLOW_REMOTE": True}
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_a_token_is_required_from_everyone_once_set(client: Client, settings: Any) -> None:
    settings.LLMPROXY = {**settings.LLMPROXY, "METRICS_TOKEN": TOKEN}
    assert client.get("/metrics").status_code == 401  # loopback too
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    ok = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and b"llmproxy_config_version" in ok.content
