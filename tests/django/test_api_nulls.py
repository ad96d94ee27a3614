"""An explicit null for a field that takes none is the client's 422 naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests import factories

from .helpers import send

pytestmark = pytest.mark.django_db


@pytest.fixture
def ids(db: Any) -> dict[str, int]:
    p = factories.provider("nulls", "http://127.0.0.1:9/v1")
    bob = factories.user("bob")
    key, _ = factories.api_key(bob)
    return {"providers": p.pk, "credentials": p.credentials.get().pk, "models": p.routes.get().pk,
            "users": bob.pk, "keys": key.pk}  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "field"),
    [("providers", "name"), ("providers", "base_url"), ("providers", "weight"), ("credentials", "name"),
     ("credentials", "weight"), ("models", "name"), ("users", "username"), ("keys", "name"),
     ("keys", "allowed_models")],
)  # fmt: skip
def test_a_null_field_is_refused_by_name(admin_client: Client, ids: dict[str, int], resource: str, field: str) -> None:
    resp = send(admin_client, "patch", f"/{resource}/{ids[resource]}", {field: None})
    assert resp.status_code in (400, 422), resp.content
    assert resp["content-type"].startswith("application/json") and field in resp.content.decode()
