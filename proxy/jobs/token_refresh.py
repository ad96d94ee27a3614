"""Token refreshers: one callable per provider type, filled in by the provider-accounts code.

A refresher gets the stored ``Credential`` (secrets decrypted) and returns fresh tokens;
it may be a plain function or a coroutine function. It never saves anything itself: the
driver in ``proxy.jobs`` does, under a per-credential lock, so a single-use refresh token
is never spent twice by two processes.

    from proxy.refresh import RefreshedTokens, register

    def refresh_claude(cred: Credential) -> RefreshedTokens: ...
    register("claude", refresh_claude)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import Credential


@dataclass(frozen=True, slots=True)
class RefreshedTokens:
    access_token: str
    expires_at: datetime | None
    #: A rotated refresh token; None keeps the stored one.
    refresh_token: str | None = None
    #: Merged into ``Credential.extra`` (e.g. a Copilot endpoint that came with the token).
    extra: Mapping[str, Any] | None = None


Refresher = Callable[[Credential], "RefreshedTokens | Awaitable[RefreshedTokens]"]

#: provider type (``Provider.type``) -> refresher.
REFRESHERS: dict[str, Refresher] = {}


def register(provider_type: str, refresher: Refresher) -> None:
    """Make ``refresher`` the one for ``provider_type`` (a later registration wins)."""
    REFRESHERS[provider_type] = refresher


def refresher_for(provider_type: str) -> Refresher | None:
    return REFRESHERS.get(provider_type)
