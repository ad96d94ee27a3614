"""Who may call what: every management endpoint x every kind of caller.

The endpoints come from the OpenAPI schema, so a new one is covered the day it lands.
Callers: staff, member A (owner of the objects in the path), member B, an inference-only
key, a revoked key, nobody. Path ids are A's key and user, and a provider, credential
and route staff made. Nothing may answer 5xx; another member's key or user is 404.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from django.test import Client

from accounts.actions import revoke_api_key
from proxy.api.app import api
from proxy.models import Credential, ModelRoute
from tests import factories

from .helpers import bearer

pytestmark = pytest.mark.django_db

ENDPOINTS = sorted((method.upper(), path) for path, ops in api.get_openapi_schema()["paths"].items() for method in ops)
#: Resources only staff may use (a member gets 403 whatever the id).
STAFF_ONLY = ("/providers", "/credentials", "/models", "/health", "/config")
CALLERS = ("staff", "member_a", "member_b", "inference_key", "revoked_key", "anonymous")


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _world() -> dict[str, Any]:
    staff = factories.user("root", staff=True)
    a, b = factories.user("alice"), factories.user("bob")
    provider = factories.provider("up", f"http://127.0.0.1:{_closed_port()}/v1")
    keys = {
        "staff": factories.api_key(staff, admin=True)[1],
        "member_a": factories.api_key(a, admin=True)[1],
        "member_b": factories.api_key(b, admin=True)[1],
        "inference_key": factories.api_key(a, name="inference only")[1],
    }
    revoked, raw = factories.api_key(a, admin=True, name="revoked")
    revoke_api_key(revoked)
    keys["revoked_key"] = raw
    a_key, _ = factories.api_key(a, name="a's key")
    ids = {"key_id": a_key.pk, "user_id": a.pk, "provider_id": provider.pk,
           "credential_id": Credential.objects.get(provider=provider).pk,
           "route_id": ModelRoute.objects.get(provider=provider).pk}  # fmt: skip
    return {"keys": keys, "ids": ids}


def _expect(caller: str, method: str, path: str) -> set[int] | None:
    """The statuses allowed; None: any non-5xx except 401/403/404 (the caller may act)."""
    resource = path.removeprefix("/api/v1")
    if caller == "anonymous" or caller == "revoked_key":
        return {401}
    if caller == "inference_key":
        return {403}
    if caller == "staff":
        return None
    if resource.startswith(STAFF_ONLY) or resource == "/users":
        return {403, 422} if method == "POST" else {403}  # the empty body may be refused first
    if caller == "member_b" and ("{key_id}" in path or "{user_id}" in path):
        return {404}
    if caller == "member_a" and "{user_id}" in path and method in ("PATCH", "DELETE"):
        return {403}  # a member reads its own user but changes it only through staff
    return None


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_it_answers_each_caller_as_its_role_allows(method: str, path: str, caller: str) -> None:
    world = _world()
    url = re.sub(r"\{(\w+)\}", lambda m: str(world["ids"][m.group(1)]), path)
    headers = bearer(world["keys"][caller]) if caller != "anonymous" else {}
    client = Client()
    if method in ("POST", "PATCH", "PUT"):
        resp = client.generic(method, url, data="{}", content_type="application/json", headers=headers)
    else:
        resp = client.generic(method, url, headers=headers)
    allowed = _expect(caller, method, path)
    assert resp.status_code < 500, resp.content
    if allowed is None:
        assert resp.status_code not in (401, 403, 404), (resp.status_code, resp.content)
    else:
        assert resp.status_code in allowed, (resp.status_code, resp.content)
