"""The Django admin: every model listed for staff, secrets never rendered, keys shown once."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, User, hash_key
from proxy.models import ConfigImport, ConfigVersion, Credential, HealthStatus, UsageDaily, UsageRecord
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "sk-upstream-PLAIN-secret-0123456789"
TOKEN = "at-PLAIN-access-token-9876543210"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff() -> User:
    return factories.user("sam", staff=True)  # staff, not a superuser


@pytest.fixture
def client(staff: User) -> Client:
    c = Client()
    c.force_login(staff)
    return c


@pytest.fixture
def rows(staff: User) -> dict[str, Any]:
    provider = factories.provider("up", "http://127.0.0.1:9/v1", api_key=SECRET)
    provider.headers = {"Authorization": "Bearer sk-header-PLAIN-secret-42", "X-Team": "research"}
    provider.save()
    cred = provider.credentials.get()
    cred.access_token = TOKEN
    cred.extra = {"copilot_token": "tid-PLAIN-extra-secret-77", "endpoint": "https://x"}
    cred.save()
    HealthStatus.objects.create(credential=cred, state="healthy", latency_ms=12, checked_at=timezone.now())
    key, raw = factories.api_key(staff, name="first")
    UsageRecord.objects.create(request_id="req-abc123", created_at=timezone.now(), user=staff, key=key,
                               key_prefix=key.prefix, ingress="openai_chat", model="gpt-test", provider="up",
                               credential="key-1", status_code=200, prompt_tokens=10, completion_tokens=5)  # fmt: skip
    UsageDaily.objects.create(day=date.today(), user_id=staff.pk, key_id=key.pk, model="gpt-test", provider="up",
                              requests=1, prompt_tokens=10, completion_tokens=5)  # fmt: skip
    ConfigImport.objects.create(source="config.yaml", ok=True, content_hash="a" * 64,
                                changes={"created": ["provider up"], "updated": [], "deleted": []})  # fmt: skip
    bad = ConfigImport.objects.create(source="config.yaml", ok=False, content_hash="b" * 64,
                                      errors=[{"path": "providers.up.type", "reason": "'claud' is not one of: ..."},
                                              {"path": "server.prot", "reason": "unknown key (did you mean 'port'?)"}])  # fmt: skip
    ConfigVersion.objects.get_or_create(pk=1)
    return {"provider": provider, "credential": cred, "key": key, "raw": raw, "bad_import": bad}


def test_it_lists_every_registered_model_for_staff(client: Client, rows: dict[str, Any]) -> None:
    registered = {(m._meta.app_label, m._meta.model_name) for m in admin.site._registry}
    assert {("proxy", n) for n in ("provider", "credential", "modelroute", "usagerecord", "usagedaily",
                                   "healthstatus", "configimport", "configversion")} <= registered  # fmt: skip
    assert {("accounts", "user"), ("accounts", "apikey")} <= registered
    for app, model in sorted(registered):
        if app not in ("proxy", "accounts"):
            continue
        resp = client.get(reverse(f"admin:{app}_{model}_changelist"))
        assert resp.status_code == 200, (app, model)
        model_class = next(m for m in admin.site._registry if m._meta.model_name == model)
        first = model_class._default_manager.first()
        if first is not None:
            assert client.get(reverse(f"admin:{app}_{model}_change", args=[first.pk])).status_code == 200, model
    assert client.get(reverse("admin:index")).status_code == 200
    for name in ("proxy_provider", "proxy_credential", "accounts_apikey"):
        assert client.get(reverse(f"admin:{name}_add")).status_code == 200, name


def test_it_keeps_non_staff_out(rows: dict[str, Any]) -> None:
    c = Client()
    c.force_login(factories.user("bob"))
    resp = c.get(reverse("admin:proxy_credential_changelist"))
    assert resp.status_code == 302 and "/admin/login/" in resp["Location"]


def test_it_never_renders_a_credential_secret(client: Client, rows: dict[str, Any]) -> None:
    cred, provider = rows["credential"], rows["provider"]
    pages = [
        reverse("admin:proxy_credential_changelist"),
        reverse("admin:proxy_credential_change", args=[cred.pk]),
        reverse("admin:proxy_provider_change", args=[provider.pk]),
        reverse("admin:proxy_provider_changelist"),
        reverse("admin:proxy_healthstatus_changelist"),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        for plain in (SECRET, TOKEN, "sk-header-PLAIN-secret-42", "tid-PLAIN-extra-secret-77"):
            assert plain not in html, (url, plain)
    html = client.get(reverse("admin:proxy_credential_change", args=[cred.pk])).content.decode()
    assert "sk-u…6789" in html  # the mask, enough to recognise
    assert 'name="api_key"' in html and 'type="password"' in html


def credential_form(cred: Credential, **changes: Any) -> dict[str, Any]:
    data = {"provider": cred.provider_id, "name": cred.name, "enabled": "on", "weight": cred.weight,
            "api_key": "", "access_token": "", "refresh_token": "", "expires_at_0": "", "expires_at_1": "",
            "file": ""}  # fmt: skip
    data.update(changes)
    return data


def test_it_keeps_a_secret_when_the_field_is_left_blank(client: Client, rows: dict[str, Any]) -> None:
    cred = rows["credential"]
    url = reverse("admin:proxy_credential_change", args=[cred.pk])
    resp = client.post(url, credential_form(cred, weight=3))
    assert resp.status_code == 302, resp.content.decode()[:2000]
    cred.refresh_from_db()
    assert (cred.api_key, cred.access_token, cred.weight) == (SECRET, TOKEN, 3)
    client.post(url, credential_form(cred, api_key="sk-new-key-000000", clear_secrets=["access_token"]))
    cred.refresh_from_db()
    assert (cred.api_key, cred.access_token) == ("sk-new-key-000000", "")


def test_it_unmasks_provider_headers_sent_back_unchanged(client: Client, rows: dict[str, Any]) -> None:
    provider = rows["provider"]
    form = client.get(reverse("admin:proxy_provider_change", args=[provider.pk])).context["adminform"].form
    assert form.initial["headers"]["Authorization"] == "Bear…t-42"
    assert "sk-header-PLAIN" not in str(form["headers"])


def test_it_masks_a_providers_proxy_and_keeps_it_when_sent_back(client: Client, rows: dict[str, Any]) -> None:
    provider = rows["provider"]
    provider.proxy = "http://me:PLAIN-proxy-pass@proxy.corp:3128"
    provider.save()
    resp = client.get(reverse("admin:proxy_provider_change", args=[provider.pk]))
    form = resp.context["adminform"].form
    assert form.initial["proxy"] == "http://me:****@proxy.corp:3128"
    assert b"PLAIN-proxy-pass" not in resp.content
    form.cleaned_data = {"proxy": form.initial["proxy"]}  # the masked value, sent back unchanged
    assert form.clean_proxy() == "http://me:PLAIN-proxy-pass@proxy.corp:3128"
    form.cleaned_data = {"proxy": "http://other.corp:8080"}
    assert form.clean_proxy() == "http://other.corp:8080"


def test_it_shows_a_new_key_once(client: Client, staff: User, rows: dict[str, Any]) -> None:
    data = {"user": staff.pk, "name": "from admin", "allowed_models": "gpt-test, other", "expires_at_0": "",
            "expires_at_1": "", "rpm": "", "tpm": "", "budget_usd": "", "budget_period": "none",
            "period_started_at_0": "", "period_started_at_1": ""}  # fmt: skip
    resp = client.post(reverse("admin:accounts_apikey_add"), data, follow=True)
    assert resp.status_code == 200
    html = resp.content.decode()
    shown = re.findall(r"sk-llmp-[A-Za-z0-9_\-]{20,}", html)
    assert len(set(shown)) == 1
    raw = shown[0]
    key = ApiKey.objects.get(name="from admin")
    assert key.key_hash == hash_key(raw) and raw.startswith(key.prefix)
    assert key.allowed_models == ["gpt-test", "other"]
    again = client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()
    assert raw not in again and key.key_hash not in again
    listing = client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert raw not in listing and key.key_hash not in listing


def test_it_revokes_selected_keys(client: Client, rows: dict[str, Any]) -> None:
    key = rows["key"]
    resp = client.post(reverse("admin:accounts_apikey_changelist"),
                       {"action": "revoke_selected", "_selected_action": [key.pk]}, follow=True)  # fmt: skip
    assert resp.status_code == 200 and "Revoked 1 key." in resp.content.decode()
    key.refresh_from_db()
    assert key.revoked


def test_it_shows_why_a_config_file_was_rejected(client: Client, rows: dict[str, Any]) -> None:
    listing = client.get(reverse("admin:proxy_configimport_changelist") + "?ok__exact=0").content.decode()
    assert "rejected, 2 errors: providers.up.type" in listing
    page = client.get(reverse("admin:proxy_configimport_change", args=[rows["bad_import"].pk])).content.decode()
    assert "server.prot: unknown key (did you mean &#x27;port&#x27;?)" in page


def test_it_filters_and_searches_usage(client: Client, rows: dict[str, Any]) -> None:
    url = reverse("admin:proxy_usagerecord_changelist")
    assert "req-abc123" in client.get(url + "?q=req-abc123").content.decode()
    assert "req-abc123" not in client.get(url + "?q=req-zzz").content.decode()
    assert "req-abc123" in client.get(url + "?outcome=ok&stream__exact=0&model=gpt-test").content.decode()
    assert "req-abc123" not in client.get(url + "?outcome=upstream").content.decode()
    assert client.get(reverse("admin:proxy_usagerecord_add")).status_code == 403


def test_it_marks_estimated_token_counts_in_the_usage_list_and_detail(client: Client, staff: User) -> None:
    for rid, estimated in (("req-est", True), ("req-real", False)):
        UsageRecord.objects.create(request_id=rid, created_at=timezone.now(), user=staff, ingress="openai_chat",
                                   status_code=200, prompt_tokens=1234, completion_tokens=7,
                                   tokens_estimated=estimated)  # fmt: skip
    url = reverse("admin:proxy_usagerecord_changelist")
    marked = client.get(url + "?q=req-est").content.decode()
    assert re.search(r"1,234 / 7 <small class=\"llp-est\"[^>]*>est\.</small>", marked)
    assert "llp-est" not in client.get(url + "?q=req-real").content.decode()
    detail = client.get(reverse("admin:proxy_usagerecord_change",
                                args=[UsageRecord.objects.get(request_id="req-est").pk])).content.decode()  # fmt: skip
    assert re.search(r"Tokens estimated:.*?icon-yes", detail, re.S)


def test_it_lets_only_a_superuser_change_a_superuser(client: Client, rows: dict[str, Any]) -> None:
    root = User.objects.create_superuser("root", password="pw-root")
    assert client.get(reverse("admin:accounts_user_change", args=[root.pk])).status_code == 200  # view only
    resp = client.post(reverse("admin:auth_user_password_change", args=[root.pk]),
                       {"password1": "taken-over-123", "password2": "taken-over-123"})  # fmt: skip
    assert resp.status_code == 403
    root.refresh_from_db()
    assert root.check_password("pw-root")
    bob = factories.user("bob")
    resp = client.post(reverse("admin:accounts_user_change", args=[bob.pk]), {"username": "bob", "is_superuser": "on",
                       "is_active": "on", "is_staff": "on", "date_joined_0": "2024-01-01",
                       "date_joined_1": "00:00:00", "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0",
                       "budget_period": "none"})  # fmt: skip
    assert resp.status_code == 302
    bob.refresh_from_db()
    assert bob.is_staff and not bob.is_superuser


def test_it_keeps_staff_from_making_keys_for_a_superuser(client: Client, rows: dict[str, Any]) -> None:
    root = User.objects.create_superuser("root", password="pw-root")
    data = {"user": root.pk, "name": "sneaky", "allowed_models": "", "is_admin": "on", "budget_period": "none"}
    resp = client.post(reverse("admin:accounts_apikey_add"), data)
    assert resp.status_code == 200 and "user" in resp.context["adminform"].form.errors
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_it_shows_user_limits_spend_and_reset(client: Client) -> None:
    from decimal import Decimal

    alice = factories.user("alice")
    User.objects.filter(pk=alice.pk).update(rpm=60, budget_usd=Decimal("5"), budget_period="monthly")
    key, _ = factories.api_key(alice, budget_usd=Decimal("1"), budget_period="daily")
    UsageRecord.objects.create(request_id="r-spent", user_id=alice.pk, key_id=key.pk, cost_usd=Decimal("0.25"),
                               created_at=timezone.now(), status_code=200)  # fmt: skip
    page = client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert "Limits (apply to all of the user" in page and 'name="budget_usd" value="5' in page
    assert "0.2500" in page and "Budget resets at" in page
    page = client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()
    assert 'name="max_parallel"' in page and "0.2500" in page


def test_it_flags_routes_without_any_price(client: Client) -> None:
    factories.provider("p", "https://up.example/v1", models=[
        {"name": "own", "upstream": "x", "input_price": "1", "output_price": "2"},
        {"name": "cat", "upstream": "gpt-4o"}, {"name": "bare", "upstream": "in-house-model"}])  # fmt: skip
    page = client.get(reverse("admin:proxy_modelroute_changelist")).content.decode()
    assert "this route" in page and "catalog (openai, " in page and "NO PRICE: cost_usd is null" in page


def test_it_lets_staff_restart_a_users_budget_period(client: Client, rows: dict[str, Any]) -> None:
    """The user's page edits ``period_started_at`` as the key's does (a staff reset of the budget)."""
    bob = factories.user("bob")
    page = client.get(reverse("admin:accounts_user_change", args=[bob.pk])).content.decode()
    assert 'name="period_started_at_0"' in page
    resp = client.post(reverse("admin:accounts_user_change", args=[bob.pk]), {"username": "bob", "is_active": "on",
                       "date_joined_0": "2024-01-01", "date_joined_1": "00:00:00", "api_keys-TOTAL_FORMS": "0",
                       "api_keys-INITIAL_FORMS": "0", "budget_usd": "5", "budget_period": "monthly",
                       "period_started_at_0": "2026-06-15", "period_started_at_1": "12:00:00"})  # fmt: skip
    assert resp.status_code == 302
    bob.refresh_from_db()
    assert bob.period_started_at is not None and bob.period_started_at.isoformat().startswith("2026-06-15T12:00")


def test_a_user_reset_restarts_the_users_spend_and_not_its_keys(client: Client) -> None:
    from decimal import Decimal

    from accounts.actions import reset_user_budget_period
    from proxy.serving.spend import counter_key

    alice = factories.user("alice")
    User.objects.filter(pk=alice.pk).update(budget_usd=Decimal("5"), budget_period="monthly")
    key, _ = factories.api_key(alice, budget_usd=Decimal("1"), budget_period="monthly")
    UsageRecord.objects.create(request_id="r-before", user_id=alice.pk, key_id=key.pk, cost_usd=Decimal("0.25"),
                               created_at=timezone.now(), status_code=200)  # fmt: skip
    assert "0.2500" in client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    started = reset_user_budget_period(alice.pk)
    alice.refresh_from_db()
    assert alice.period_started_at == started and counter_key(alice) == f"u:{alice.pk}:{int(started.timestamp())}"
    page = client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert "0.2500" not in page and "0.0000" in page
    assert "0.2500" in client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()
