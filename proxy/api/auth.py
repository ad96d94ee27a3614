"""What every management API router shares: authentication, the caller, error rendering.

Callers authenticate with a browser session (CSRF-checked on writes) or with
``Authorization: Bearer <key>`` of an API key that has the management scope. An
inference-only key is a valid key without permission: 403, not 401.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja.errors import AuthorizationError, HttpError
from ninja.security import HttpBearer, SessionAuth

from accounts.models import ApiKey, User, hash_key

from .throttle import key_failed


def management_key(raw: str) -> ApiKey | None:
    """The usable key for a plain value: known, not revoked, not expired, owner active."""
    if not raw:
        return None
    key = ApiKey.objects.select_related("user").filter(key_hash=hash_key(raw)).first()
    if key is None or key.revoked or not key.user.is_active:
        return None
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return None
    return key


class ManagementKeyAuth(HttpBearer):
    """``Authorization: Bearer <key>``; the caller becomes the key's owner."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        key = management_key(token.strip())
        if key is None:
            key_failed(request)  # raises once this address has failed too often
            return None
        if not key.is_admin:
            raise AuthorizationError(message="this API key has no management scope (create it with --admin)")
        request.api_key = key  # type: ignore[attr-defined]
        owner: User = key.user
        return owner


class ActiveSessionAuth(SessionAuth):
    """A signed-in browser; CSRF is checked only then, so anonymous callers get 401, not 403."""

    def __call__(self, request: HttpRequest) -> Any:
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        user = request.user
        if user.is_authenticated and user.is_active:
            return user
        return None


AUTH = [ManagementKeyAuth(), ActiveSessionAuth()]


def actor(request: HttpRequest) -> User:
    user: User = request.auth  # type: ignore[attr-defined]
    return user


def staff(request: HttpRequest) -> User:
    """The caller, who must be staff."""
    user = actor(request)
    if not user.is_staff:
        raise HttpError(403, "only staff may use this resource")
    return user


def detail(errors: dict[str, list[str]], where: str = "body") -> dict[str, Any]:
    """Field errors in the shape ninja uses for its own validation errors."""
    return {
        "detail": [
            {"type": "value_error", "loc": [where, field], "msg": msg} for field, msgs in errors.items() for msg in msgs
        ]
    }
