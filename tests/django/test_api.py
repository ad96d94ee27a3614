"""Management API: authentication, providers, credentials, model routes, users, health."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from proxy.models import ConfigVersion, Credential, HealthState, HealthStatus, ModelRoute, Provider
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

from .helpers import API, bearer, send

pytestmark = pytest.mark.django_db

SECRET = "sk-upstream-secret"


def version() -> int:
    return ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0


@pytest.fixture
def admin_key(db: Any) -> str:
    _, raw = factories.api_key(factories.user("root", staff=True), admin=True)
    return raw


def test_it_rejects_a_missing_or_unknown_key_with_401(client: Client) -> None:
    assert client.get(API + "/providers").status_code == 401
    resp = client.get(API + "/providers", headers=bearer("sk-llmp-nope"))
    assert resp.status_code == 401
    assert resp.json() == {"detail": "Unauthorized"}


def test_it_refuses_an_inference_only_key_with_403(client: Client) -> None:
    _, raw = factories.api_key(factories.user("root", staff=True))
    resp = client.get(API + "/keys", headers=bearer(raw))
    assert resp.status_code == 403
    assert "management scope" in resp.json()["detail"]


def test_it_accepts_an_admin_scope_key(client: Client, admin_key: str) -> None:
    factories.provider("up", "http://127.0.0.1:9/v1")
    resp = client.get(API + "/providers", headers=bearer(admin_key))
    assert resp.status_code == 200
    assert [p["name"] for p in resp.json()] == ["up"]


@pytest.mark.parametrize("change", ["revoked", "expired", "inactive"])
def test_it_rejects_unusable_admin_keys(client: Client, change: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    owner = factories.user("root", staff=True)
    key, raw = factories.api_key(owner, admin=True)
    if change == "revoked":
        key.revoked = True
        key.save()
    elif change == "expired":
        key.expires_at = timezone.now() - timedelta(seconds=1)
        key.save()
    else:
        owner.is_active = False
        owner.save()
    assert client.get(API + "/providers", headers=bearer(raw)).status_code == 401


def test_it_checks_csrf_for_browser_sessions_only() -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.user("root", staff=True))
    body = {"name": "csrf", "type": "openai"}
    assert send(browser, "post", "/providers", body).status_code == 403
    browser.get("/")  # the portal page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    assert send(browser, "post", "/providers", body, headers={"X-CSRFToken": token}).status_code == 201
    assert send(Client(enforce_csrf_checks=True), "post", "/providers", body).status_code == 401


def test_it_keeps_non_staff_out_of_config_resources(client: Client) -> None:
    _, raw = factories.api_key(factories.user("bob"), admin=True)
    for path in ("/providers", "/credentials", "/models", "/users", "/health"):
        resp = client.get(API + path, headers=bearer(raw))
        assert resp.status_code == 403, path
    assert client.get(API + "/users/me", headers=bearer(raw)).json()["username"] == "bob"


def test_it_serves_the_openapi_schema_and_docs(client: Client) -> None:
    schema = client.get(API + "/openapi.json").json()
    for path in ("/providers", "/credentials/{credential_id}/test", "/models", "/users", "/keys", "/usage",
                 "/usage/summary", "/usage/export", "/health"):  # fmt: skip
        assert API + path in schema["paths"], path
    docs = client.get(API + "/docs")
    assert docs.status_code == 200
    assert b"openapi.json" in docs.content


def test_it_manages_providers(admin_client: Client, django_capture_on_commit_callbacks: Any) -> None:
    before = version()
    with django_capture_on_commit_callbacks(execute=True):
        resp = send(admin_client, "post", "/providers", {"name": "oai", "type": "openai", "priority": 5,
                                                          "headers": {"X-Api-Key": "header-secret-123", "X-Team": "a"}})  # fmt: skip
    assert resp.status_code == 201, resp.content
    created = resp.json()
    assert created["priority"] == 5 and created["enabled"] is True
    assert created["headers"] == {"X-Api-Key": "head…-123", "X-Team": "a"}
    assert version() > before
    pid = created["id"]
    assert send(admin_client, "get", f"/providers/{pid}").json()["name"] == "oai"

    # Sending the masked header back keeps the stored value.
    resp = send(admin_client, "patch", f"/providers/{pid}", {"enabled": False, "headers": created["headers"]})
    assert resp.status_code == 200 and resp.json()["enabled"] is False
    assert Provider.objects.get(pk=pid).headers["X-Api-Key"] == "header-secret-123"

    assert send(admin_client, "delete", f"/providers/{pid}").status_code == 204
    assert not Provider.objects.filter(pk=pid).exists()
    assert send(admin_client, "get", f"/providers/{pid}").status_code == 404


def test_it_names_the_field_of_a_validation_error(admin_client: Client) -> None:
    resp = send(admin_client, "post", "/providers", {"name": "x", "type": "nonsense"})
    assert resp.status_code == 422
    assert any(e["loc"][-1] == "type" for e in resp.json()["detail"])

    factories.provider("dup", "http://127.0.0.1:9/v1")
    resp = send(admin_client, "post", "/providers", {"name": "dup", "type": "openai"})
    assert resp.status_code == 422
    assert [e["loc"] for e in resp.json()["detail"]] == [["body", "name"]]

    resp = send(admin_client, "post", "/providers", {"name": "bad url", "type": "openai", "base_url": "nope"})
    assert resp.status_code == 422
    assert {e["loc"][-1] for e in resp.json()["detail"]} == {"name", "base_url"}


def test_it_manages_credentials_without_ever_showing_secrets(admin_client: Client) -> None:
    p = factories.provider("up", "http://127.0.0.1:9/v1", credentials=0)
    resp = send(admin_client, "post", "/credentials", {"provider": "up", "name": "k1", "api_key": SECRET,
                                                        "extra": {"client_secret": "oauth-client-secret"}})  # fmt: skip
    assert resp.status_code == 201, resp.content
    cred = resp.json()
    assert cred["api_key"] == "sk-u…cret" and cred["provider"] == "up"
    cid = cred["id"]
    assert Credential.objects.get(pk=cid).api_key == SECRET

    # A GET -> PATCH round trip of the masked values changes nothing.
    resp = send(admin_client, "patch", f"/credentials/{cid}", {**{k: cred[k] for k in ("api_key", "extra")},
                                                                "weight": 3})  # fmt: skip
    assert resp.status_code == 200
    stored = Credential.objects.get(pk=cid)
    assert (stored.api_key, stored.extra["client_secret"], stored.weight) == (SECRET, "oauth-client-secret", 3)

    send(admin_client, "patch", f"/credentials/{cid}", {"api_key": "sk-rotated-secret-2"})
    assert Credential.objects.get(pk=cid).api_key == "sk-rotated-secret-2"

    bodies = [send(admin_client, "get", "/credentials").content, send(admin_client, "get", f"/credentials/{cid}").content,
              send(admin_client, "get", f"/credentials?provider={p.name}").content]  # fmt: skip
    for body in [resp.content, *bodies]:
        for secret in (SECRET, "sk-rotated-secret-2", "oauth-client-secret"):
            assert secret.encode() not in body

    assert send(admin_client, "delete", f"/credentials/{cid}").status_code == 204
    assert not Credential.objects.filter(pk=cid).exists()


def test_it_reports_an_unknown_provider_against_its_field(admin_client: Client) -> None:
    resp = send(admin_client, "post", "/credentials", {"provider": "ghost", "name": "k"})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "provider"]


def test_it_manages_model_routes(admin_client: Client, django_capture_on_commit_callbacks: Any) -> None:
    p = factories.provider("up", "http://127.0.0.1:9/v1")
    p.routes.all().delete()
    before = version()
    with django_capture_on_commit_callbacks(execute=True):
        resp = send(admin_client, "post", "/models", {"provider": p.pk, "name": "gpt-x", "upstream": "gpt-x-2025",
                                                       "input_price": "2.5", "output_price": 10})  # fmt: skip
    assert resp.status_code == 201, resp.content
    route = resp.json()
    assert (route["provider"], route["upstream_name"], route["input_price"]) == ("up", "gpt-x-2025", 2.5)
    assert version() > before
    rid = route["id"]
    resp = send(admin_client, "patch", f"/models/{rid}", {"upstream": "", "cached_input_price": 0.25})
    assert resp.json()["upstream_name"] == "gpt-x" and resp.json()["cached_input_price"] == 0.25
    assert [r["name"] for r in send(admin_client, "get", "/models?provider=up").json()] == ["gpt-x"]
    resp = send(admin_client, "post", "/models", {"provider": "up", "name": "gpt-x"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "name"]
    assert send(admin_client, "delete", f"/models/{rid}").status_code == 204
    assert not ModelRoute.objects.exists()


def test_it_manages_users(admin_client: Client) -> None:
    resp = send(admin_client, "post", "/users", {"username": "carol", "email": "c@example.com", "password": "pw-c1"})
    assert resp.status_code == 201, resp.content
    uid = resp.json()["id"]
    assert "password" not in resp.json()
    assert User.objects.get(pk=uid).check_password("pw-c1")
    resp = send(admin_client, "patch", f"/users/{uid}", {"is_staff": True, "password": "pw-c2"})
    assert resp.json()["is_staff"] is True
    assert User.objects.get(pk=uid).check_password("pw-c2")
    assert "carol" in [u["username"] for u in send(admin_client, "get", "/users").json()]
    assert send(admin_client, "post", "/users", {"username": "carol"}).json()["detail"][0]["loc"][-1] == "username"
    assert send(admin_client, "delete", f"/users/{uid}").status_code == 204
    assert not User.objects.filter(pk=uid).exists()


def test_it_stops_staff_from_deleting_themselves_or_granting_superuser(client: Client) -> None:
    root = factories.user("root", staff=True)
    client.force_login(root)
    assert send(client, "delete", f"/users/{root.pk}").status_code == 400
    resp = send(client, "post", "/users", {"username": "eve", "is_superuser": True})
    assert resp.status_code == 403
    assert not User.objects.filter(username="eve").exists()


def test_it_reports_health_per_provider_and_credential(admin_client: Client) -> None:
    p = factories.provider("up", "http://127.0.0.1:9/v1", credentials=2)
    first, second = p.credentials.order_by("name")
    HealthStatus.objects.create(credential=first, state=HealthState.UNHEALTHY, error="HTTP 401", consecutive_failures=3)
    HealthStatus.objects.create(credential=second, state=HealthState.HEALTHY, latency_ms=120)
    [prov] = send(admin_client, "get", "/health").json()
    assert prov["provider"] == "up" and prov["state"] == "healthy"
    by_name = {c["name"]: c for c in prov["credentials"]}
    assert by_name["key-1"]["state"] == "unhealthy" and by_name["key-1"]["consecutive_failures"] == 3
    assert by_name["key-2"]["latency_ms"] == 120


def test_it_tests_a_credential_with_one_real_upstream_call(admin_client: Client, fake: FakeUpstream) -> None:
    p = factories.provider("up", fake.url + "/v1")
    cred = p.credentials.get()
    fake.queue("/v1/chat/completions", up.completion("pong", prompt=1, completion_tokens=1))
    resp = send(admin_client, "post", f"/credentials/{cred.pk}/test")
    assert resp.status_code == 200
    result = resp.json()
    assert result["ok"] is True and result["status"] == 200 and result["model"] == "gpt-up"
    assert result["latency_ms"] >= 0
    sent = fake.last()
    assert sent.body["model"] == "gpt-up" and sent.body["messages"][0]["content"] == "ping"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"


def test_it_reports_a_failing_credential_without_leaking_it(admin_client: Client, fake: FakeUpstream) -> None:
    p = factories.provider("up", fake.url + "/v1")
    cred = p.credentials.get()
    fake.queue("/v1/chat/completions", up.error(401, f"Incorrect API key provided: {SECRET}"))
    resp = send(admin_client, "post", f"/credentials/{cred.pk}/test?model=other-model")
    result = resp.json()
    assert result["ok"] is False and result["status"] == 401 and result["model"] == "other-model"
    assert "Incorrect API key" in result["error"]
    assert SECRET.encode() not in resp.content
