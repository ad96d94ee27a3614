"""Management API for users and API keys (staff: all; others: their own).

Members see only themselves among users (``/users/me`` or their own id; the list is
staff's) and only their own keys; another member's id answers 404, as if it did not exist. They create and revoke their own keys, and may
tighten a key's limits but never raise them or set one above their own user's limit.
Keys and users show ``spend_usd`` (this budget period, live) and ``budget_resets_at``;
staff restart a key's or a user's budget period with ``PATCH {"period_started_at": ...}``.

A key's plain value exists only in the response to its creation; afterwards only its
prefix is ever shown. Deleting a key revokes it, so its usage keeps its attribution.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from accounts import actions
from accounts.actions import create_api_key, revoke_api_key
from accounts.models import LIMIT_FIELDS, ApiKey, BudgetPeriod, User
from accounts.periods import period_resets_at
from accounts.validation import ValidationFailed
from proxy.serving.spend import live_spend

from .auth import actor, staff

users_router = Router(tags=["users"])
keys_router = Router(tags=["keys"])


class UserIn(Schema):
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    password: str | None = None
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod = BudgetPeriod.NONE


class UserPatch(Schema):
    username: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    password: str | None = None
    is_active: bool | None = None
    is_staff: bool | None = None
    is_superuser: bool | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod | None = None
    period_started_at: datetime | None = Field(
        None, description="Restart the user's budget period here (staff only, as on keys): spend counts from it."
    )


class Spend(Schema):
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget_usd: float | None
    budget_period: str
    spend_usd: float
    budget_resets_at: datetime | None


class UserOut(Spend):
    id: int
    username: str
    email: str
    first_name: str
    last_name: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    date_joined: datetime
    last_login: datetime | None
    period_started_at: datetime | None
    keys: int


def _limits_out(holder: ApiKey | User, spend: Decimal | None = None) -> dict[str, Any]:
    spend = live_spend([holder])[0] if spend is None else spend
    return {"rpm": holder.rpm, "tpm": holder.tpm, "max_parallel": holder.max_parallel,
            "budget_usd": None if holder.budget_usd is None else float(holder.budget_usd),
            "budget_period": holder.budget_period, "spend_usd": float(spend),
            "budget_resets_at": period_resets_at(holder.budget_period)}  # fmt: skip


def _user_out(u: User, spend: Decimal | None = None) -> dict[str, Any]:
    fields = ("id", "username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser",
              "date_joined", "last_login", "period_started_at")  # fmt: skip
    keys = getattr(u, "key_count", None)
    return {**{f: getattr(u, f) for f in fields}, "keys": u.api_keys.count() if keys is None else keys,
            **_limits_out(u, spend)}  # fmt: skip


def _users(request: HttpRequest) -> QuerySet[User]:
    """The users the caller may see: everyone for staff, else only themselves."""
    caller = actor(request)
    qs = User.objects.annotate(key_count=Count("api_keys")).order_by("username")
    return qs if caller.is_staff else qs.filter(pk=caller.pk)


@users_router.get("/me", response=UserOut)
def me(request: HttpRequest) -> dict[str, Any]:
    """The caller (any authenticated user)."""
    return _user_out(actor(request))


@users_router.get("", response=list[UserOut])
def list_users(request: HttpRequest) -> list[dict[str, Any]]:
    """Every user (staff only; a member reads its own at ``/users/me`` or its id)."""
    staff(request)
    users = list(_users(request))
    return [_user_out(u, spend) for u, spend in zip(users, live_spend(users), strict=True)]


@users_router.post("", response={201: UserOut})
def create_user(request: HttpRequest, payload: UserIn) -> Status[dict[str, Any]]:
    user = actions.create_user(payload.model_dump(), actor=staff(request))
    return Status(201, _user_out(user))


@users_router.get("/{int:user_id}", response=UserOut)
def get_user(request: HttpRequest, user_id: int) -> dict[str, Any]:
    return _user_out(get_object_or_404(_users(request), pk=user_id))


@users_router.patch("/{int:user_id}", response=UserOut)
def update_user(request: HttpRequest, user_id: int, payload: UserPatch) -> dict[str, Any]:
    user = get_object_or_404(_users(request), pk=user_id)
    caller = staff(request)
    return _user_out(actions.update_user(user, payload.model_dump(exclude_unset=True), actor=caller))


@users_router.delete("/{int:user_id}", response={204: None})
def delete_user(request: HttpRequest, user_id: int) -> Status[None]:
    user = get_object_or_404(_users(request), pk=user_id)
    actions.delete_user(user, actor=staff(request))
    return Status(204, None)


class KeyIn(Schema):
    name: str = ""
    user: int | str | None = None  # staff only: whose key (default: the caller's)
    allowed_models: list[str] = []
    expires_at: datetime | None = None
    is_admin: bool = False
    allow_overrides: bool = Field(False, description="May send per-request overrides; staff only may grant it.")
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod = BudgetPeriod.NONE


class KeyPatch(Schema):
    name: str | None = None
    allowed_models: list[str] | None = None
    expires_at: datetime | None = None
    revoked: bool | None = None
    is_admin: bool | None = None
    allow_overrides: bool | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod | None = None
    period_started_at: datetime | None = None


class KeyOut(Spend):
    id: int
    user_id: int
    username: str
    name: str
    prefix: str
    allowed_models: list[str]
    expires_at: datetime | None
    revoked: bool
    is_admin: bool
    allow_overrides: bool
    period_started_at: datetime | None
    created_at: datetime


class KeyCreated(KeyOut):
    key: str


def _key_out(k: ApiKey, spend: Decimal | None = None) -> dict[str, Any]:
    fields = ("id", "user_id", "name", "prefix", "allowed_models", "expires_at", "revoked", "is_admin",
              "allow_overrides", "period_started_at", "created_at")  # fmt: skip
    return {**{f: getattr(k, f) for f in fields}, "username": k.user.username, **_limits_out(k, spend)}


def _visible_keys(request: HttpRequest) -> QuerySet[ApiKey]:
    user = actor(request)
    qs = ApiKey.objects.select_related("user")
    return qs if user.is_staff else qs.filter(user=user)


def _owner(request: HttpRequest, ref: int | str | None) -> User:
    caller = actor(request)
    if ref is None or ref in (caller.pk, caller.username):
        return caller
    if not caller.is_staff:
        raise HttpError(403, "only staff may create keys for other users")
    lookup = {"pk": ref} if isinstance(ref, int) else {"username": ref}
    try:
        return User.objects.get(**lookup)
    except User.DoesNotExist:
        raise ValidationFailed.one("user", f"no user {ref!r}") from None


@keys_router.get("", response=list[KeyOut])
def list_keys(request: HttpRequest, user: str | None = None, revoked: bool | None = None) -> list[dict[str, Any]]:
    """Keys the caller may see; staff may filter by ``?user=`` (username)."""
    qs = _visible_keys(request)
    if user:
        qs = qs.filter(user__username=user)
    if revoked is not None:
        qs = qs.filter(revoked=revoked)
    keys = list(qs)
    return [_key_out(k, spend) for k, spend in zip(keys, live_spend(keys), strict=True)]


@keys_router.post("", response={201: KeyCreated})
def create_key(request: HttpRequest, payload: KeyIn) -> Status[dict[str, Any]]:
    """Create a key; the response carries its plain value, which is never shown again."""
    data = payload.model_dump()
    owner = _owner(request, data.pop("user"))
    if not actor(request).is_staff:
        actions.check_within_owner_limits(owner, {f: data[f] for f in LIMIT_FIELDS})
        if data["allow_overrides"]:
            raise HttpError(403, "only staff may grant allow_overrides")
    key, raw = create_api_key(
        owner, name=data["name"], models=data["allowed_models"], admin=data["is_admin"],
        expires_at=data["expires_at"], rpm=data["rpm"], tpm=data["tpm"], max_parallel=data["max_parallel"],
        budget_usd=data["budget_usd"], budget_period=data["budget_period"], allow_overrides=data["allow_overrides"],
    )  # fmt: skip
    return Status(201, {**_key_out(key), "key": raw})


@keys_router.get("/{int:key_id}", response=KeyOut)
def get_key(request: HttpRequest, key_id: int) -> dict[str, Any]:
    return _key_out(get_object_or_404(_visible_keys(request), pk=key_id))


@keys_router.patch("/{int:key_id}", response=KeyOut)
def update_key(request: HttpRequest, key_id: int, payload: KeyPatch) -> dict[str, Any]:
    """Change a key; ``{"revoked": true}`` revokes it. Owners who are not staff may only rename or revoke."""
    key = get_object_or_404(_visible_keys(request), pk=key_id)
    return _key_out(actions.update_api_key(key, payload.model_dump(exclude_unset=True), actor=actor(request)))


@keys_router.delete("/{int:key_id}", response={204: None})
def delete_key(request: HttpRequest, key_id: int) -> Status[None]:
    """Revoke the key (the row stays so its usage keeps its attribution)."""
    revoke_api_key(get_object_or_404(_visible_keys(request), pk=key_id))
    return Status(204, None)
