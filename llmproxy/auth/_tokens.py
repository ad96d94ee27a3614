"""Credential kinds and the tokens a refresher hands back.

Three kinds of credential exist, told apart by what they hold:

* ``ApiKey``: a static key; nothing to refresh.
* ``OAuthTokens``: an access token that expires and a refresh token that renews it
  (Claude, Gemini, Kiro). A refresh may rotate the refresh token; the new one is kept.
* ``DeviceAccount``: a long-lived account token from a device flow that is exchanged
  for short-lived access tokens (Copilot: the GitHub token -> a Copilot token).

In the engine's ``Credential`` (``llmproxy.providers.base``) the account token of a
``DeviceAccount`` travels in ``refresh_token`` (it is the secret that renews the access
token, and it is stored encrypted like one); ``kind_of`` reads a ``Credential`` back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..providers.base import Credential


@dataclass(frozen=True, slots=True)
class ApiKey:
    api_key: str


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # unix seconds
    extra: Mapping[str, Any] = field(default_factory=dict)

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at - (time.time() if now is None else now) <= seconds


@dataclass(frozen=True, slots=True)
class DeviceAccount:
    account_token: str  # e.g. the GitHub user token; does not expire
    access_token: str | None = None  # the exchanged, cached short-lived token
    expires_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


CredentialKind = ApiKey | OAuthTokens | DeviceAccount

#: Provider types whose account token is exchanged rather than refreshed.
DEVICE_ACCOUNT_TYPES: set[str] = {"copilot"}


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What a refresher (or a login) returns: fresh tokens for one credential.

    ``refresh_token`` None keeps the stored one (Google does not rotate; Claude does).
    ``extra`` is merged into the credential's extra (a Copilot endpoint, a project id).
    """

    access_token: str
    expires_at: float | None = None
    refresh_token: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, cred: Credential) -> Credential:
        """``cred`` carrying these tokens (the refresh token kept unless rotated)."""
        return replace(
            cred,
            access_token=self.access_token,
            expires_at=self.expires_at,
            refresh_token=self.refresh_token if self.refresh_token is not None else cred.refresh_token,
            extra={**cred.extra, **self.extra},
        )


def kind_of(provider_type: str, cred: Credential) -> CredentialKind:
    if provider_type in DEVICE_ACCOUNT_TYPES and cred.refresh_token:
        return DeviceAccount(cred.refresh_token, cred.access_token, cred.expires_at, cred.extra)
    if cred.access_token or cred.refresh_token:
        return OAuthTokens(cred.access_token or "", cred.refresh_token, cred.expires_at, cred.extra)
    return ApiKey(cred.api_key or "")


def is_account(cred: Credential) -> bool:
    """Whether a credential holds account tokens (something a refresher can renew)."""
    return bool(cred.refresh_token) or (cred.expires_at is not None and bool(cred.access_token))


def parse_expiry(value: Any) -> float | None:
    """ISO 8601 (UTC when no zone) or unix seconds (milliseconds when it is that large) -> unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("is not a time")
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds / 1000 if seconds > 1e11 else seconds
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_expiry(float(text))
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("is neither ISO 8601 nor unix seconds") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    raise ValueError("is not a time")


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
