"""State changes behind the management API and the portal: small, atomic, validated.

Every function validates with the model's own rules (``full_clean``) and raises
``ValidationFailed`` naming the fields, so the API answers 422 instead of a database
error. Saving a config model bumps the shared config version through the signals in
``proxy/signals.py``; nothing here has to remember to do it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction

from accounts.models import ApiKey, User

from .crypto import mask
from .models import Credential, ModelRoute, Provider

M = TypeVar("M", bound=models.Model)

PROVIDER_FIELDS = ("name", "type", "enabled", "base_url", "auth_type", "priority", "weight", "cooldown_seconds",
                   "rpm", "tpm", "headers", "options")  # fmt: skip
CREDENTIAL_FIELDS = ("name", "enabled", "weight", "api_key", "access_token", "refresh_token", "expires_at", "file",
                     "extra")  # fmt: skip
ROUTE_FIELDS = ("provider", "name", "upstream", "enabled", "input_price", "output_price", "cached_input_price")
USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")
KEY_FIELDS = ("name", "allowed_models", "expires_at", "revoked", "is_admin", "rpm", "tpm", "budget_usd",
              "budget_period", "period_started_at")  # fmt: skip
#: What a key's owner may change without being staff: nothing that lifts a limit.
KEY_OWNER_FIELDS = frozenset({"name", "revoked"})
SECRET_FIELDS = ("api_key", "access_token", "refresh_token")
_SENSITIVE_WORDS = ("authorization", "key", "token", "secret", "password", "cookie")


class ServiceError(Exception):
    """A refused change; ``status`` is what the API answers."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class ValidationFailed(ServiceError):
    """Invalid input; ``errors`` maps each offending field to its messages."""

    status = 422

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {k: list(v) for k, v in errors.items()}
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls({field: [message]})


def _assign(obj: models.Model, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed({name: ["unknown or read-only field"] for name in unknown})
    for name, value in data.items():
        setattr(obj, name, value)


def _validated_save(obj: M, *, unique_field: str = "name") -> M:
    """``full_clean`` then save; uniqueness errors are reported against ``unique_field``."""
    try:
        obj.full_clean()
    except DjangoValidationError as exc:
        errors: dict[str, list[str]] = {}
        for name, messages in exc.message_dict.items():
            errors.setdefault(unique_field if name == NON_FIELD_ERRORS else name, []).extend(messages)
        raise ValidationFailed(errors) from None
    obj.save()
    return obj


def is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS)


def masked_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of headers/options/extra with the values of secret-looking names masked."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, Mapping):
            out[name] = masked_mapping(value)
        elif isinstance(value, str) and is_sensitive(name):
            out[name] = mask(value)
        else:
            out[name] = value
    return out


def _unmask_mapping(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """Where a client sent back a masked value unchanged, keep the stored one (GET -> PATCH round trips)."""
    out = dict(new)
    for name, value in new.items():
        before = old.get(name)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            out[name] = _unmask_mapping(value, before)
        elif isinstance(value, str) and isinstance(before, str) and before and value == mask(before) != before:
            out[name] = before
    return out


# --- providers, credentials, model routes ---------------------------------------------


@transaction.atomic
def create_provider(data: Mapping[str, Any]) -> Provider:
    provider = Provider()
    _assign(provider, data, PROVIDER_FIELDS)
    return _validated_save(provider)


@transaction.atomic
def update_provider(provider: Provider, data: Mapping[str, Any]) -> Provider:
    data = dict(data)
    if isinstance(data.get("headers"), Mapping):
        data["headers"] = _unmask_mapping(data["headers"], provider.headers or {})
    _assign(provider, data, PROVIDER_FIELDS)
    return _validated_save(provider)


@transaction.atomic
def delete_provider(provider: Provider) -> None:
    """Delete a provider with its credentials and model routes."""
    provider.delete()


@transaction.atomic
def create_credential(provider: Provider, data: Mapping[str, Any]) -> Credential:
    credential = Credential(provider=provider)
    _assign(credential, data, CREDENTIAL_FIELDS)
    return _validated_save(credential)


@transaction.atomic
def update_credential(credential: Credential, data: Mapping[str, Any]) -> Credential:
    """Change a credential; secrets are replaced only when given (they are never read back)."""
    fields = dict(data)
    if "provider" in fields:
        credential.provider = fields.pop("provider")
    for name in SECRET_FIELDS:
        current = getattr(credential, name)
        if current and fields.get(name) == mask(current) != current:
            del fields[name]
    if isinstance(fields.get("extra"), Mapping):
        fields["extra"] = _unmask_mapping(fields["extra"], credential.extra or {})
    _assign(credential, fields, CREDENTIAL_FIELDS)
    return _validated_save(credential)


@transaction.atomic
def delete_credential(credential: Credential) -> None:
    credential.delete()


@transaction.atomic
def create_route(data: Mapping[str, Any]) -> ModelRoute:
    route = ModelRoute()
    _assign(route, data, ROUTE_FIELDS)
    return _validated_save(route)


@transaction.atomic
def update_route(route: ModelRoute, data: Mapping[str, Any]) -> ModelRoute:
    _assign(route, data, ROUTE_FIELDS)
    return _validated_save(route)


@transaction.atomic
def delete_route(route: ModelRoute) -> None:
    route.delete()


def find_provider(ref: int | str) -> Provider:
    """A provider by id or by name (what API payloads and config files use)."""
    lookup = {"pk": ref} if isinstance(ref, int) else {"name": ref}
    try:
        return Provider.objects.get(**lookup)
    except Provider.DoesNotExist:
        raise ValidationFailed.one("provider", f"no provider {ref!r}") from None


# --- users and keys -----------------------------------------------------------------------


@transaction.atomic
def create_user(data: Mapping[str, Any], *, actor: User) -> User:
    fields = dict(data)
    password = fields.pop("password", None)
    _check_superuser_grant(fields, actor)
    user = User()
    _assign(user, fields, USER_FIELDS)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    return _validated_save(user, unique_field="username")


@transaction.atomic
def update_user(user: User, data: Mapping[str, Any], *, actor: User) -> User:
    fields = dict(data)
    password = fields.pop("password", None)
    _check_superuser_grant(fields, actor)
    if user.is_superuser and not actor.is_superuser:
        raise ServiceError("only a superuser may change a superuser", status=403)
    if user.pk == actor.pk and (fields.get("is_active") is False or fields.get("is_staff") is False):
        raise ServiceError("you cannot deactivate or demote yourself", status=400)
    _assign(user, fields, USER_FIELDS)
    if password:
        user.set_password(password)
    return _validated_save(user, unique_field="username")


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


@transaction.atomic
def update_api_key(key: ApiKey, data: Mapping[str, Any], *, actor: User) -> ApiKey:
    """Change a key. Owners who are not staff may rename or revoke it, nothing more."""
    if not actor.is_staff:
        forbidden = sorted(set(data) - KEY_OWNER_FIELDS)
        if forbidden:
            raise ServiceError(f"only staff may change {', '.join(forbidden)}", status=403)
        if data.get("revoked") is False and key.revoked:
            raise ServiceError("only staff may restore a revoked key", status=403)
    _assign(key, data, KEY_FIELDS)
    return _validated_save(key)
