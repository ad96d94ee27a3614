"""State changes for users and keys. Each is atomic; the snapshot bump happens on commit."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from .models import ApiKey, User, generate_key


@transaction.atomic
def create_api_key(
    user: User,
    *,
    name: str = "",
    models: list[str] | None = None,
    admin: bool = False,
    expires_at: datetime | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    budget_usd: Decimal | None = None,
    budget_period: str = "none",
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plain value, which is never stored or shown again."""
    raw = generate_key()
    key = ApiKey(
        user=user,
        name=name,
        allowed_models=list(models or []),
        is_admin=admin,
        expires_at=expires_at,
        rpm=rpm,
        tpm=tpm,
        budget_usd=budget_usd,
        budget_period=budget_period,
    )
    key.set_key(raw)
    key.save()
    return key, raw


@transaction.atomic
def revoke_api_key(key: ApiKey) -> None:
    key.revoked = True
    key.save(update_fields=["revoked"])


@transaction.atomic
def bootstrap_admin(username: str = "admin") -> tuple[User, str, str] | None:
    """On a fresh install: an admin user and a first API key. None if users exist already."""
    if User.objects.exists():
        return None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_superuser(username=username, email="", password=password)
    _, raw = create_api_key(user, name="first key", admin=True)
    return user, password, raw
