"""Small builders for config rows used across Django-side tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from accounts.actions import create_api_key
from accounts.models import ApiKey, User
from proxy.models import Credential, ModelRoute, Provider


def provider(name: str, base_url: str, *, type: str = "openai-compatible", api_key: str = "sk-upstream-secret",
             models: list[dict[str, Any]] | None = None, priority: int = 0, weight: int = 1,
             credentials: int = 1) -> Provider:  # fmt: skip
    p = Provider.objects.create(name=name, type=type, base_url=base_url, priority=priority, weight=weight)
    for i in range(credentials):
        Credential.objects.create(provider=p, name=f"key-{i + 1}", api_key=api_key)
    for m in models or [{"name": "gpt-test", "upstream": "gpt-up", "input_price": "3", "output_price": "15"}]:
        ModelRoute.objects.create(
            provider=p,
            name=m["name"],
            upstream=m.get("upstream", ""),
            input_price=Decimal(m["input_price"]) if m.get("input_price") else None,
            output_price=Decimal(m["output_price"]) if m.get("output_price") else None,
            cached_input_price=Decimal(m["cached_input_price"]) if m.get("cached_input_price") else None,
        )
    return p


def user(username: str = "alice", *, staff: bool = False) -> User:
    return User.objects.create_user(username=username, password="pw-" + username, is_staff=staff)


def api_key(owner: User, **kwargs: Any) -> tuple[ApiKey, str]:
    return create_api_key(owner, **kwargs)
