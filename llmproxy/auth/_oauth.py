"""What the OAuth 2 token endpoints of Claude and Google have in common."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ._http import PERMANENT_ERRORS, AuthError, JSONReply, oauth_error
from ._tokens import TokenSet


def check_token_reply(reply: JSONReply, what: str) -> Mapping[str, Any]:
    """The data of a successful token reply; else ``AuthError`` (permanent for a dead grant)."""
    if 200 <= reply.status < 300 and reply.data.get("access_token"):
        return reply.data
    code, desc = oauth_error(reply)
    if not code and 200 <= reply.status < 300:
        code, desc = "invalid_response", "the reply carries no access_token"
    permanent = code in PERMANENT_ERRORS or (reply.status in (400, 401, 403) and code != "rate_limited")
    detail = f"{code}: {desc}" if code and desc else code or desc or f"HTTP {reply.status}"
    raise AuthError(f"{what} refused (HTTP {reply.status}): {detail}", permanent=permanent, code=code)


def token_set(data: Mapping[str, Any], *, extra: Mapping[str, Any] | None = None, now: float | None = None) -> TokenSet:
    """A TokenSet from ``access_token``/``expires_in``/``refresh_token`` (missing: keep the stored one)."""
    expires_in = data.get("expires_in")
    start = time.time() if now is None else now
    expires = start + float(expires_in) if isinstance(expires_in, int | float) else None
    refresh = data.get("refresh_token")
    return TokenSet(str(data["access_token"]), expires, str(refresh) if refresh else None, dict(extra or {}))
