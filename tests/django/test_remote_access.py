"""management.allow_remote: the management API and admin refuse non-loopback clients unless on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.test.client import Client

from llmproxy_site.remote_access import LocalManagementOnly, allow_remote_setting, is_loopback


def _through(path: str, addr: str) -> HttpResponse:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("reached")

    return LocalManagementOnly(view)(RequestFactory().get(path, REMOTE_ADDR=addr))


@override_settings(LLMPROXY={"MANAGEMENT_ALLOW_REMOTE": False})
def test_remote_clients_get_403_on_the_api_and_the_admin() -> None:
    api = _through("/api/v1/users", "10.1.2.3")
    assert api.status_code == 403 and api["Content-Type"] == "application/json"
    assert "allow_remote" in json.loads(api.content)["detail"]
    assert _through("/admin/", "192.168.0.9").status_code == 403
    assert _through("/admin/", "::ffff:10.0.0.1").status_code == 403
    for addr in ("127.0.0.1", "127.0.0.5", "::1", "::ffff:127.0.0.1", ""):
        assert _through("/api/v1/users", addr).content == b"reached"
    assert _through("/healthz", "10.1.2.3").content == b"reached"  # not a management path
    assert _through("/", "10.1.2.3").content == b"reached"  # the portal stays reachable


@override_settings(LLMPROXY={"MANAGEMENT_ALLOW_REMOTE": True})
def test_allow_remote_lets_other_addresses_in() -> None:
    assert _through("/api/v1/users", "10.1.2.3").content == b"reached"
    assert _through("/admin/", "203.0.113.7").content == b"reached"


@pytest.mark.django_db
def test_the_site_refuses_a_remote_api_call_before_authentication() -> None:
    response = Client(REMOTE_ADDR="10.9.9.9").get("/api/v1/users")
    assert response.status_code == 403 and "allow_remote" in response.json()["detail"]
    assert Client().get("/api/v1/users").status_code == 401  # loopback: reaches the API's own auth


def test_setting_from_config_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMPROXY_MANAGEMENT_ALLOW_REMOTE", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text("management: {allow_remote: true}\n")
    assert allow_remote_setting(str(path)) is True
    assert allow_remote_setting(None) is False
    monkeypatch.setenv("LLMPROXY_MANAGEMENT_ALLOW_REMOTE", "true")
    assert allow_remote_setting(None) is True
    assert not is_loopback("not-an-address")
