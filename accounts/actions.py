"""Every state change of users and keys: small, atomic, validated.

Each function validates with the model's own rules (``full_clean``) and raises
``ValidationFailed`` naming the fields, so the API answers 422 instead of a database
error. Saving a user or a key bumps the shared config version on commit through the
signals ``proxy`` connects; nothing here has to remember to do it (and nothing here
imports ``proxy``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import LIMIT_FIELDS, ApiKey, User, generate_key
from .validation import ServiceError, assign, validated_save

USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser",
               *LIMIT_FIELDS, "period_started_at")  # fmt: skip
KEY_FIELDS = ("name", "allowed_models", "expires_at", "revoked", "is_admin", "allow_overrides", *LIMIT_FIELDS,
              "period_started_at")  # fmt: skip
#: What a key's owner may change without being staff: its name, revoking it, and
#: tightening (never lifting) its numeric limits.
KEY_OWNER_FIELDS = frozenset({"name", "revoked", "rpm", "tpm", "max_parallel", "budget_usd"})
_NUMERIC_LIMITS = ("rpm", "tpm", "max_parallel", "budget_usd")


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
    max_parallel: int | None = None,
    allow_overrides: bool = False,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plain value, which is never stored or shown again."""
    raw = generate_key()
    key = ApiKey(
        user=user,
        name=name,
        allowed_models=list(models or []),
        is_admin=admin,
        allow_overrides=allow_overrides,
        expires_at=expires_at,
        rpm=rpm,
        tpm=tpm,
        max_parallel=max_parallel,
        budget_usd=budget_usd,
        budget_period=budget_period,
    )
    key.set_key(raw)
    validated_save(key)
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


@transaction.atomic
def create_user(data: Mapping[str, Any], *, actor: User) -> User:
    fields = dict(data)
    password = fields.pop("password", None)
    _check_superuser_grant(fields, actor)
    user = User()
    assign(user, fields, USER_FIELDS)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    return validated_save(user, unique_field="username")


@transaction.atomic
def update_user(user: User, data: Mapping[str, Any], *, actor: User) -> User:
    fields = dict(data)
    password = fields.pop("password", None)
    _check_superuser_grant(fields, actor)
    if user.is_superuser and not actor.is_superuser:
        raise ServiceError("only a superuser may change a superuser", status=403)
    if user.pk == actor.pk and (fields.get("is_active") is False or fields.get("is_staff") is False):
        raise ServiceError("you cannot deactivate or demote yourself", status=400)
    assign(user, fields, USER_FIELDS)
    if password:
        user.set_password(password)
    return validated_save(user, unique_field="username")


@transaction.atomic
def delete_user(user: User, *, actor: User) -> None:
    """Delete a user and their keys; their usage rows stay, detached."""
    if user.pk == actor.pk:
        raise ServiceError("you cannot delete yourself", status=400)
    if user.is_superuser and not actor.is_superuser:
        raise ServiceError("only a superuser may delete a superuser", status=403)
    user.delete()


def _check_superuser_grant(fields: Mapping[str, Any], actor: User) -> None:
    if fields.get("is_superuser") and not actor.is_superuser:
        raise ServiceError("only a superuser may grant superuser status", status=403)


def check_within_owner_limits(owner: User, limits: Mapping[str, Any]) -> None:
    """A member's own key may not allow more than the member's own user does (403 naming the
    field). No limit on the key is fine: the user's own limit applies to every key anyway."""
    for name in _NUMERIC_LIMITS:
        cap, value = getattr(owner, name), limits.get(name)
        if cap is not None and value is not None and value > cap:
            raise ServiceError(f"{name} may not exceed your own limit of {cap}: ask staff to raise it", status=403)


@transaction.atomic
def update_api_key(key: ApiKey, data: Mapping[str, Any], *, actor: User) -> ApiKey:
    """Change a key. Owners who are not staff may rename or revoke it, tighten a limit (never
    above their own user's), or give up ``allow_overrides``."""
    if not actor.is_staff:
        forbidden = sorted(set(data) - KEY_OWNER_FIELDS - {"allow_overrides"})
        if data.get("allow_overrides") and not key.allow_overrides:
            forbidden.append("allow_overrides")  # giving the right up is fine; granting it is staff's
        if forbidden:
            raise ServiceError(f"only staff may change {', '.join(forbidden)}", status=403)
        if data.get("revoked") is False and key.revoked:
            raise ServiceError("only staff may restore a revoked key", status=403)
        for name in _NUMERIC_LIMITS:
            if name in data:
                old, new = getattr(key, name), data[name]
                if new is None or (old is not None and new > old):
                    raise ServiceError(f"only staff may raise {name} (now {old if old is not None else 'unlimited'})",
                                       status=403)  # fmt: skip
        check_within_owner_limits(key.user, data)  # an unlimited key's first limit, too
    assign(key, data, KEY_FIELDS)
    return validated_save(key)


@transaction.atomic
def reset_budget_period(key_id: int, started_at: datetime | None = None) -> datetime:
    """Start a key's new budget period now (or at ``started_at``): its spend counts from zero.

    The spend counter is keyed by the period start, so nothing is zeroed: saving the key
    bumps the config version, and the new snapshot points every process at a fresh counter.
    """
    start = started_at or timezone.now()
    key = ApiKey.objects.filter(pk=key_id).first()
    if key is not None:
        key.period_started_at = start
        key.save(update_fields=["period_started_at"])
    return start


@transaction.atomic
def reset_user_budget_period(user_id: int, started_at: datetime | None = None) -> datetime:
    """Start a user's new budget period now (or at ``started_at``), as ``reset_budget_period`` does a key's.

    Only the user's own budget restarts; each key's budget keeps its own period. Callers
    check that the actor is staff (a member never resets its own spend).
    """
    start = started_at or timezone.now()
    user = User.objects.filter(pk=user_id).first()
    if user is not None:
        user.period_started_at = start
        user.save(update_fields=["period_started_at"])
    return start
