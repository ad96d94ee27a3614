"""Google's OAuth token endpoint and Code Assist (``cloudcode-pa``), as they answer.

* ``POST /token`` (form): ``authorization_code`` checks the PKCE verifier against the
  code's challenge; ``refresh_token`` returns a new access token (``token_ttl``) and no
  refresh token (Google does not rotate); unknown/revoked -> 400 ``invalid_grant``
  "Token has been expired or revoked.". ``client_id`` must be gemini-cli's.
* ``POST /v1internal:loadCodeAssist``: a known account has ``currentTier`` and a project;
  a new one (``onboarded=False``) only ``allowedTiers``; ``:onboardUser`` answers a
  long-running operation, ``done`` on the second call (free tier must not send a project).
* ``POST /v1internal:generateContent`` / ``:streamGenerateContent?alt=sse`` take the
  ``{"model", "project", "request": {...}}`` wrapper (model without ``models/``; a wrong
  project -> 403) and answer ``{"response": {...}, "traceId"}`` (each SSE event too).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from . import gemini as fg
from ._gate import AccountServer, Tokens, bearer, form, oauth_error
from .server import Recorded, Reply, Stream

CLIENT_ID = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com"
GENERATE = "/v1internal:generateContent"
STREAM = "/v1internal:streamGenerateContent"
PROJECT = "proud-lamp-x1y2z"


def _gerror(code: int, message: str, status: str) -> Reply:
    return Reply({"error": {"code": code, "message": message, "status": status}}, status=code)


def wrap(reply: Reply | Stream) -> Reply | Stream:
    """A plain Gemini reply (tests.fakes.gemini) in Code Assist's ``{"response": ...}`` wrapper."""
    if isinstance(reply, Reply):
        if reply.status >= 400:
            return reply
        return Reply({"response": reply.body, "traceId": "trace-1"}, status=reply.status, headers=reply.headers)
    frames: list[bytes] = []
    for frame in reply.frames:
        text = frame.decode()
        if text.startswith("data: "):
            inner = json.loads(text[6:].strip())
            text = f"data: {json.dumps({'response': inner, 'traceId': 'trace-1'})}\n\n"
        frames.append(text.encode())
    return Stream(frames, status=reply.status, headers=reply.headers, delay=reply.delay, cut_after=reply.cut_after,
                  stall_after=reply.stall_after)  # fmt: skip


class FakeGoogle(AccountServer):
    def __init__(self, *, token_ttl: float = 3599.0, onboarded: bool = True) -> None:
        super().__init__()
        self.token_ttl = token_ttl
        self.onboarded = onboarded
        self.onboard_calls = 0
        self.codes: dict[str, str] = {}
        self.refresh = Tokens("1//0g-")
        self.access = Tokens("ya29.a0-")
        self.route("/token", self._token)
        self.route("/v1internal:loadCodeAssist", self._load)
        self.route("/v1internal:onboardUser", self._onboard)
        self.guard(GENERATE, self._check, lambda rec: wrap(fg.response("Hello from Gemini")))
        self.guard(STREAM, self._check_stream, lambda rec: wrap(fg.stream(["Hello", " from Gemini"])))

    def issue_code(self, challenge: str) -> str:
        code = "4/" + secrets.token_urlsafe(12)
        self.codes[code] = challenge
        return code

    def grant(self) -> tuple[str, str]:
        return self.access.mint(self.token_ttl), self.refresh.mint(365 * 86400)

    def _token(self, rec: Recorded) -> Reply:
        f = form(rec)
        if f.get("client_id") != CLIENT_ID:
            return oauth_error("invalid_client", "The OAuth client was not found.", 401)
        if f.get("grant_type") == "authorization_code":
            challenge = self.codes.pop(f.get("code", ""), None)
            verifier = f.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge is None or digest != challenge:
                return oauth_error(
                    "invalid_grant", "Malformed auth code." if challenge is None else "Invalid code verifier."
                )
            access, refresh = self.grant()
            return Reply({"access_token": access, "expires_in": int(self.token_ttl), "refresh_token": refresh,
                          "token_type": "Bearer", "scope": "https://www.googleapis.com/auth/cloud-platform"})  # fmt: skip
        if f.get("grant_type") == "refresh_token":
            if not self.refresh.valid(f.get("refresh_token")):
                return oauth_error("invalid_grant", "Token has been expired or revoked.")
            return Reply({"access_token": self.access.mint(self.token_ttl), "expires_in": int(self.token_ttl),
                          "token_type": "Bearer", "scope": "https://www.googleapis.com/auth/cloud-platform"})  # fmt: skip
        return oauth_error("unsupported_grant_type", "Invalid grant_type.")

    def _authorized(self, rec: Recorded) -> Reply | None:
        if not self.access.valid(bearer(rec)):
            return _gerror(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
        return None

    def _load(self, rec: Recorded) -> Reply:
        refused = self._authorized(rec)
        if refused is not None:
            return refused
        tiers = [{"id": "free-tier", "isDefault": True, "userDefinedCloudaicompanionProject": False}]
        if self.onboarded:
            return Reply(
                {"currentTier": {"id": "free-tier"}, "allowedTiers": tiers, "cloudaicompanionProject": PROJECT}
            )
        return Reply({"allowedTiers": tiers})

    def _onboard(self, rec: Recorded) -> Reply:
        refused = self._authorized(rec)
        if refused is not None:
            return refused
        body = rec.body if isinstance(rec.body, dict) else {}
        if body.get("tierId") == "free-tier" and body.get("cloudaicompanionProject"):
            return _gerror(400, "Precondition Failed", "FAILED_PRECONDITION")
        self.onboard_calls += 1
        if self.onboard_calls < 2:
            return Reply({"name": "operations/onboard-1", "done": False})
        self.onboarded = True
        return Reply({"name": "operations/onboard-1", "done": True,
                      "response": {"cloudaicompanionProject": {"id": PROJECT, "name": "Fake project"}}})  # fmt: skip

    def _check(self, rec: Recorded) -> Reply | None:
        refused = self._authorized(rec)
        if refused is not None:
            return refused
        body: dict[str, Any] = rec.body if isinstance(rec.body, dict) else {}
        if not isinstance(body.get("request"), dict) or not isinstance(body.get("model"), str):
            return _gerror(400, "Invalid JSON payload: expected model and request.", "INVALID_ARGUMENT")
        if body["model"].startswith("models/"):
            return _gerror(404, f"Requested entity was not found: {body['model']}", "NOT_FOUND")
        if body.get("project") != PROJECT:
            return _gerror(403, f"Permission denied on project {body.get('project')!r}.", "PERMISSION_DENIED")
        return None

    def _check_stream(self, rec: Recorded) -> Reply | None:
        if rec.query.get("alt") != "sse":
            return _gerror(400, "only alt=sse is served by this fake", "INVALID_ARGUMENT")
        return self._check(rec)
