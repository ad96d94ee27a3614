"""Claude's OAuth token endpoint and the Messages API as it treats OAuth bearer tokens.

* ``POST /v1/oauth/token`` (JSON): ``authorization_code`` needs a code this fake issued
  (``issue_code``) and the PKCE verifier whose S256 challenge came with it, else
  ``invalid_grant``; ``refresh_token`` rotates: the old refresh token dies, an unknown or
  dead one -> 400 ``invalid_grant``. Access tokens (``sk-ant-oat01-…``) live ``token_ttl``.
* ``/v1/messages``: an OAuth token in ``x-api-key`` is refused (401), a Bearer token
  without the ``oauth-2025-04-20`` beta is refused ("OAuth authentication is currently
  not supported."), an expired one is refused (401 "OAuth token has expired.").
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

from . import anthropic as fa
from ._gate import AccountServer, Tokens, bearer, oauth_error
from .server import Recorded, Reply, Stream

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
MESSAGES = "/v1/messages"


def _error(kind: str, message: str, status: int) -> Reply:
    return Reply({"type": "error", "error": {"type": kind, "message": message}}, status=status)


class FakeClaude(AccountServer):
    def __init__(self, *, token_ttl: float = 28800.0) -> None:
        super().__init__()
        self.token_ttl = token_ttl
        self.codes: dict[str, str] = {}  # code -> S256 challenge
        self.refresh = Tokens("sk-ant-ort01-")
        self.access = Tokens("sk-ant-oat01-")
        self.email = "me@example.com"
        self.route("/v1/oauth/token", self._token)
        self.guard(MESSAGES, self._check, _messages_default)
        self.guard(MESSAGES + "/count_tokens", self._check, Reply({"input_tokens": 7}))

    def issue_code(self, challenge: str) -> str:
        """What the authorize page hands the browser after the user approves."""
        code = secrets.token_urlsafe(12)
        self.codes[code] = challenge
        return code

    def grant(self) -> tuple[str, str]:
        """An access and a refresh token, as a finished login leaves them."""
        return self.access.mint(self.token_ttl), self.refresh.mint(30 * 86400)

    def _tokens(self) -> Reply:
        access, refresh = self.grant()
        return Reply({"token_type": "Bearer", "access_token": access, "expires_in": int(self.token_ttl),
                      "refresh_token": refresh, "scope": "user:inference user:profile",
                      "account": {"uuid": "acc-1", "email_address": self.email},
                      "organization": {"uuid": "org-1", "name": "Fake"}})  # fmt: skip

    def _token(self, rec: Recorded) -> Reply:
        body: dict[str, Any] = rec.body if isinstance(rec.body, dict) else {}
        if body.get("client_id") != CLIENT_ID:
            return oauth_error("invalid_client", "unknown client_id", 401)
        grant = body.get("grant_type")
        if grant == "authorization_code":
            challenge = self.codes.pop(str(body.get("code")), None)
            verifier = str(body.get("code_verifier") or "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge is None:
                return oauth_error("invalid_grant", "Invalid 'code' in request.")
            if digest != challenge:
                return oauth_error("invalid_grant", "Invalid code verifier.")
            return self._tokens()
        if grant == "refresh_token":
            old = str(body.get("refresh_token") or "")
            if not self.refresh.valid(old):
                return oauth_error("invalid_grant", "Refresh token not found or invalid")
            self.refresh.revoke(old)  # rotation: the old one is spent
            return self._tokens()
        return oauth_error("unsupported_grant_type", f"grant_type {grant!r} is not supported")

    def _check(self, rec: Recorded) -> Reply | None:
        key = rec.headers.get("x-api-key", "")
        if key.startswith("sk-ant-oat"):
            return _error("authentication_error", "invalid x-api-key", 401)
        token = bearer(rec)
        if token is None:
            return _error("authentication_error", "x-api-key header is required", 401)
        if "oauth-2025-04-20" not in rec.headers.get("anthropic-beta", "").split(","):
            return _error("authentication_error", "OAuth authentication is currently not supported.", 401)
        if not self.access.valid(token):
            return _error("authentication_error", "OAuth token has expired.", 401)
        if not rec.headers.get("anthropic-version"):
            return _error("invalid_request_error", "anthropic-version header is required", 400)
        return None


def _messages_default(rec: Recorded) -> Reply | Stream:
    body = rec.body if isinstance(rec.body, dict) else {}
    model = str(body.get("model"))
    if body.get("stream"):
        return fa.stream("Hello from Claude", model=model)
    return fa.response("Hello from Claude", model=model)
