"""management.allow_remote: the management API and admin refuse non-loopback clients unless on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.test.client import Client

from llmproxy.throttle import ClientSettings, client_address
from llmproxy_site.remote_access import LocalManagementOnly, allow_remote_setting, is_loopback
from proxy import clients
from proxy.api.throttle import client_of
from proxy.views import _metrics_refusal


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


PROXIED = ClientSettings(trusted_proxies=("127.0.0.1",))


def _forwarded(path: str, peer: str, forwarded_for: str | None) -> HttpRequest:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return RequestFactory().get(path, REMOTE_ADDR=peer, **extra)


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded_for", "local"),
    [
        (PROXIED, "127.0.0.1", "203.0.113.7", False),  # a remote client behind the local reverse proxy
        (PROXIED, "127.0.0.1", "203.0.113.7, 127.0.0.1", False),  # the right-most untrusted hop decides
        (PROXIED, "127.0.0.1", "127.0.0.9", True),  # a client on this machine, through the proxy
        (PROXIED, "127.0.0.1", None, True),  # the proxy's own request
        (PROXIED, "10.1.2.3", "127.0.0.1", False),  # not the trusted proxy: its header is ignored
        (ClientSettings(), "127.0.0.1", "203.0.113.7", True),  # no trusted proxies: the header means nothing
    ],
)  # fmt: skip
def test_management_access_and_metrics_judge_the_client_address_as_throttling_does(
    monkeypatch: pytest.MonkeyPatch, trusted: ClientSettings, peer: str, forwarded_for: str | None, local: bool
) -> None:
    """``allow_remote`` and /metrics resolve the client the way the key throttle does (``clients.trusted_proxies``)."""
    monkeypatch.setattr(clients, "client_settings", lambda: trusted)
    request = _forwarded("/api/v1/users", peer, forwarded_for)
    assert client_of(request) == client_address(peer, forwarded_for, trusted)  # one resolution for all
    with override_settings(LLMPROXY={"MANAGEMENT_ALLOW_REMOTE": False}):
        reached = LocalManagementOnly(lambda r: HttpResponse("reached"))(request).content == b"reached"
        assert reached is local
    with override_settings(LLMPROXY={"METRICS_TOKEN": "", "METRICS_ALLOW_REMOTE": False}):
        refused = _metrics_refusal(_forwarded("/metrics", peer, forwarded_for))
        assert (refused is None) is local
        assert refused is None or refused.status_code == 403
