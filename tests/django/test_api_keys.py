"""Management API: API keys, for staff and for their owners."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from accounts.models import ApiKey, User, hash_key
from tests import factories

from .helpers import API, bearer, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client: Client) -> Client:
    client.force_login(factories.user("alice"))
    return client


def test_it_returns_the_plain_key_only_on_create(admin_client: Client) -> None:
    resp = send(admin_client, "post", "/keys", {"name": "ci", "allowed_models": ["gpt-test"], "rpm": 60})
    assert resp.status_code == 201, resp.content
    created = resp.json()
    raw = created["key"]
    assert raw.startswith("sk-llmp-") and created["prefix"] == raw[: len(created["prefix"])]
    assert ApiKey.objects.get(pk=created["id"]).key_hash == hash_key(raw)
    assert (created["allowed_models"], created["rpm"], created["username"]) == (["gpt-test"], 60, "admin")
    for body in (
        send(admin_client, "get", "/keys").content,
        send(admin_client, "get", f"/keys/{created['id']}").content,
    ):
        assert raw.encode() not in body
        assert b'"key"' not in body


def test_it_lets_staff_create_a_key_for_another_user(admin_client: Client) -> None:
    bob = factories.user("bob")
    resp = send(admin_client, "post", "/keys", {"user": "bob", "budget_usd": "12.5", "budget_period": "monthly"})
    assert resp.status_code == 201
    key = ApiKey.objects.get(pk=resp.json()["id"])
    assert key.user == bob and str(key.budget_usd) == "12.5000" and key.budget_period == "monthly"
    assert send(admin_client, "post", "/keys", {"user": "nobody"}).json()["detail"][0]["loc"] == ["body", "user"]
    resp = send(admin_client, "post", "/keys", {"budget_period": "yearly"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"][-1] == "budget_period"


def test_it_shows_a_non_staff_user_only_their_own_keys(alice_client: Client) -> None:
    bob_key, _ = factories.api_key(factories.user("bob"), name="bob's")
    resp = send(alice_client, "post", "/keys", {"name": "mine"})
    assert resp.status_code == 201
    mine = resp.json()
    assert [k["name"] for k in send(alice_client, "get", "/keys").json()] == ["mine"]
    assert send(alice_client, "get", f"/keys/{bob_key.pk}").status_code == 404
    assert send(alice_client, "patch", f"/keys/{bob_key.pk}", {"revoked": True}).status_code == 404
    assert send(alice_client, "delete", f"/keys/{bob_key.pk}").status_code == 404
    assert not ApiKey.objects.get(pk=bob_key.pk).revoked
    assert send(alice_client, "post", "/keys", {"user": "bob"}).status_code == 403
    assert send(alice_client, "get", f"/keys/{mine['id']}").json()["name"] == "mine"


def test_it_lets_an_owner_rename_and_revoke_but_not_lift_limits(alice_client: Client) -> None:
    key = send(alice_client, "post", "/keys", {"name": "a", "rpm": 60}).json()
    resp = send(alice_client, "patch", f"/keys/{key['id']}", {"rpm": 100000})
    assert resp.status_code == 403 and resp.json()["detail"] == "only staff may raise rpm (now 60)"
    resp = send(alice_client, "patch", f"/keys/{key['id']}", {"rpm": None})
    assert resp.status_code == 403 and ApiKey.objects.get(pk=key["id"]).rpm == 60
    assert send(alice_client, "patch", f"/keys/{key['id']}", {"rpm": 30}).json()["rpm"] == 30  # tightening is fine
    assert send(alice_client, "patch", f"/keys/{key['id']}", {"budget_period": "daily"}).status_code == 403
    resp = send(alice_client, "patch", f"/keys/{key['id']}", {"name": "renamed", "revoked": True})
    assert resp.json()["name"] == "renamed" and resp.json()["revoked"] is True
    assert send(alice_client, "patch", f"/keys/{key['id']}", {"revoked": False}).status_code == 403


def test_it_revokes_on_delete_and_keeps_the_row(admin_client: Client, django_capture_on_commit_callbacks: Any) -> None:
    key, raw = factories.api_key(factories.user("bob"), admin=True)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert send(admin_client, "delete", f"/keys/{key.pk}").status_code == 204
    assert callbacks, "revoking must bump the config version"
    assert ApiKey.objects.get(pk=key.pk).revoked
    assert Client().get(API + "/keys", headers=bearer(raw)).status_code == 401


def test_it_lets_staff_change_limits_and_restore_a_key(admin_client: Client) -> None:
    key, _ = factories.api_key(factories.user("bob"))
    key.revoked = True
    key.save()
    resp = send(admin_client, "patch", f"/keys/{key.pk}", {"revoked": False, "tpm": 5000, "allowed_models": ["m"]})
    assert resp.status_code == 200
    key.refresh_from_db()
    assert (key.revoked, key.tpm, key.allowed_models) == (False, 5000, ["m"])


def test_it_lets_a_non_staff_admin_key_manage_its_owners_keys(client: Client) -> None:
    bob = factories.user("bob")
    _, raw = factories.api_key(bob, admin=True)
    factories.api_key(factories.user("carol"))
    resp = client.post(API + "/keys", data={"name": "via key"}, content_type="application/json", headers=bearer(raw))
    assert resp.status_code == 201
    assert {k["username"] for k in client.get(API + "/keys", headers=bearer(raw)).json()} == {"bob"}


def test_it_keeps_a_members_new_key_within_the_members_own_limits(alice_client: Client) -> None:
    User.objects.filter(username="alice").update(rpm=60, budget_usd=Decimal("5"), budget_period="monthly")
    resp = send(alice_client, "post", "/keys", {"name": "greedy", "rpm": 120})
    assert (
        resp.status_code == 403
        and resp.json()["detail"] == "rpm may not exceed your own limit of 60: ask staff to raise it"
    )
    assert send(alice_client, "post", "/keys", {"budget_usd": "9"}).status_code == 403
    key = send(alice_client, "post", "/keys", {"name": "ok", "rpm": 30, "budget_usd": "1"}).json()
    assert (key["rpm"], key["budget_usd"], key["spend_usd"]) == (30, 1.0, 0.0)
    assert key["budget_resets_at"] is None  # the key's own budget has no period
    unlimited = send(alice_client, "post", "/keys", {"name": "open"}).json()
    resp = send(alice_client, "patch", f"/keys/{unlimited['id']}", {"budget_usd": "9"})  # not a raise, yet above hers
    assert resp.status_code == 403 and resp.json()["detail"].startswith("budget_usd may not exceed your own limit of 5")
    assert send(alice_client, "patch", f"/keys/{unlimited['id']}", {"rpm": 60}).json()["rpm"] == 60
    me = send(alice_client, "get", "/users/me").json()
    assert (me["rpm"], me["budget_usd"], me["budget_period"], me["spend_usd"]) == (60, 5.0, "monthly", 0.0)
    assert me["budget_resets_at"] is not None and me["budget_resets_at"][8:10] == "01"  # the 1st of next month


def test_it_answers_404_for_another_members_user(alice_client: Client) -> None:
    bob = factories.user("bob")
    me = send(alice_client, "get", "/users/me").json()
    assert send(alice_client, "get", f"/users/{me['id']}").json()["username"] == "alice"
    for method in ("get", "patch", "delete"):
        resp = send(alice_client, method, f"/users/{bob.pk}", {} if method == "patch" else None)
        assert resp.status_code == 404, method
    assert send(alice_client, "patch", f"/users/{me['id']}", {"rpm": 1000}).status_code == 403
