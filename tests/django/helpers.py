"""Small helpers shared by the management API tests."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

API = "/api/v1"


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def send(client: Client, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    """Call the API with a JSON body (when given)."""
    fn = getattr(client, method)
    if body is None:
        return fn(API + path, **kw)
    return fn(API + path, data=json.dumps(body), content_type="application/json", **kw)
