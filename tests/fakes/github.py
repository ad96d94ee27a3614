"""GitHub's device flow, the Copilot token exchange and the Copilot API, as they answer.

* ``POST /login/device/code`` (form, needs ``client_id``) -> device code, ``interval``.
* ``POST /login/oauth/access_token``: HTTP 200 for pending and errors alike (``error``
  field): ``authorization_pending`` until ``approve()``, ``slow_down`` once when asked,
  ``access_denied`` after ``deny()``, ``expired_token`` past ``expires_in``.
* ``GET /copilot_internal/v2/token`` needs ``Authorization: token <github token>`` (Bearer
  is refused) and ``Editor-Version``; returns a Copilot token living ``token_ttl`` s and
  ``endpoints.api`` pointing at ``/copilot`` here.
* ``/copilot/chat/completions``, ``/copilot/responses``, ``/copilot/models`` need a live
  Copilot token as Bearer, ``Editor-Version``, ``Editor-Plugin-Version``,
  ``Copilot-Integration-Id`` and a valid ``X-Initiator``; image parts without
  ``Copilot-Vision-Request: true`` are refused, as the real API does.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from . import openai as fo
from . import responses as fr
from ._gate import AccountServer, Tokens, bearer, form, oauth_error
from .server import Recorded, Reply, Stream

CHAT = "/copilot/chat/completions"
RESPONSES = "/copilot/responses"
MODELS = [
    {"id": "gpt-4.1", "object": "model", "supported_endpoints": ["/chat/completions", "/responses"],
     "capabilities": {"type": "chat"}, "model_picker_enabled": True, "policy": {"state": "enabled"}},
    {"id": "gpt-5-codex", "object": "model", "supported_endpoints": ["/responses"],
     "capabilities": {"type": "chat"}, "model_picker_enabled": True, "policy": {"state": "enabled"}},
]  # fmt: skip


class FakeGitHub(AccountServer):
    def __init__(self, *, token_ttl: float = 1800.0, interval: int = 0, expires_in: int = 900) -> None:
        super().__init__()
        self.token_ttl = token_ttl
        self.interval = interval
        self.expires_in = expires_in
        self.slow_down_once = False
        #: Approve every device code by itself at this poll (a user typing the code meanwhile).
        self.auto_approve: int | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.github_tokens: set[str] = set()
        self.copilot = Tokens("tid=")
        self.route("/login/device/code", self._device_code)
        self.route("/login/oauth/access_token", self._access_token)
        self.route("/copilot_internal/v2/token", self._exchange)
        self.guard(CHAT, self._check_chat, _chat_default)
        self.guard(RESPONSES, self._check_chat, _responses_default)
        self.guard("/copilot/models", self._check_api, Reply({"object": "list", "data": MODELS}))

    # -- device flow -------------------------------------------------------------------
    def _device_code(self, rec: Recorded) -> Reply:
        f = form(rec) or (rec.body if isinstance(rec.body, dict) else {})
        if not f.get("client_id"):
            return Reply({"error": "unauthorized_client"}, status=400)
        code = secrets.token_hex(20)
        user = f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
        self.codes[code] = {"user_code": user, "state": "pending", "until": time.time() + self.expires_in,
                            "polls": 0}  # fmt: skip
        return Reply({"device_code": code, "user_code": user, "verification_uri": f"{self.url}/login/device",
                      "expires_in": self.expires_in, "interval": self.interval})  # fmt: skip

    def approve(self, user_code: str | None = None) -> None:
        """The user enters the code (the last one issued when none is named)."""
        self._set_state(user_code, "approved")

    def deny(self, user_code: str | None = None) -> None:
        self._set_state(user_code, "denied")

    def _set_state(self, user_code: str | None, state: str) -> None:
        for entry in reversed(list(self.codes.values())):
            if user_code is None or entry["user_code"] == user_code:
                entry["state"] = state
                return
        raise KeyError(user_code)

    def _access_token(self, rec: Recorded) -> Reply:
        f = form(rec)
        entry = self.codes.get(f.get("device_code", ""))
        if f.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
            return oauth_error("unsupported_grant_type", "grant_type must be the device code grant", 200)
        if entry is None:
            return oauth_error("incorrect_device_code", "The device_code provided is not valid.", 200)
        entry["polls"] += 1
        if self.slow_down_once and entry["polls"] == 1:
            return Reply({"error": "slow_down", "interval": self.interval + 5})
        if time.time() > entry["until"]:
            return oauth_error("expired_token", "The device_code has expired.", 200)
        if entry["state"] == "denied":
            return oauth_error("access_denied", "The authorization request was denied.", 200)
        if self.auto_approve is not None and entry["polls"] >= self.auto_approve and entry["state"] == "pending":
            entry["state"] = "approved"
        if entry["state"] != "approved":
            return oauth_error("authorization_pending", "The authorization request is still pending.", 200)
        del self.codes[f["device_code"]]
        token = f"ghu_{secrets.token_hex(16)}"
        self.github_tokens.add(token)
        return Reply({"access_token": token, "token_type": "bearer", "scope": "read:user"})

    # -- exchange ----------------------------------------------------------------------
    def _exchange(self, rec: Recorded) -> Reply:
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("token ") or auth[6:] not in self.github_tokens:
            return Reply({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
                         status=401)  # fmt: skip
        if not rec.headers.get("editor-version"):
            return Reply({"message": "missing Editor-Version"}, status=400)
        tok = self.copilot.mint(self.token_ttl)
        expires = int(self.copilot.expiry[tok])
        return Reply({"token": tok, "expires_at": expires, "refresh_in": max(0, int(self.token_ttl) - 300),
                      "endpoints": {"api": f"{self.url}/copilot"}, "chat_enabled": True, "sku": "fake"})  # fmt: skip

    def add_github_token(self, token: str = "") -> str:
        token = token or f"ghu_{secrets.token_hex(16)}"
        self.github_tokens.add(token)
        return token

    # -- the Copilot API ---------------------------------------------------------------
    def _check_api(self, rec: Recorded) -> Reply | None:
        if not self.copilot.valid(bearer(rec)):
            return Reply({"error": {"message": "unauthorized: token expired", "code": "token_expired"}}, status=401)
        for name in ("editor-version", "editor-plugin-version", "copilot-integration-id"):
            if not rec.headers.get(name):
                return Reply({"error": {"message": f"missing {name} header"}}, status=400)
        return None

    def _check_chat(self, rec: Recorded) -> Reply | None:
        refused = self._check_api(rec)
        if refused is not None:
            return refused
        if rec.headers.get("x-initiator") not in ("user", "agent"):
            return Reply({"error": {"message": "X-Initiator must be user or agent"}}, status=400)
        if _has_image(rec.body) and rec.headers.get("copilot-vision-request") != "true":
            return Reply({"error": {"message": "missing required Copilot-Vision-Request header for vision requests"}},
                         status=400)  # fmt: skip
        return None


def _has_image(body: Any) -> bool:
    text = json.dumps(body) if body is not None else ""
    return '"image_url"' in text or '"input_image"' in text


def _chat_default(rec: Recorded) -> Reply | Stream:
    body = rec.body if isinstance(rec.body, dict) else {}
    if body.get("stream"):
        return fo.stream(["Hello", " from Copilot"], model=str(body.get("model")))
    return fo.completion("Hello from Copilot", model=str(body.get("model")))


def _responses_default(rec: Recorded) -> Reply | Stream:
    body = rec.body if isinstance(rec.body, dict) else {}
    return fr.stream(["Hello", " from Copilot"]) if body.get("stream") else fr.response("Hello from Copilot")
