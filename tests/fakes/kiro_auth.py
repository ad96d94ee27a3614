"""AWS SSO-OIDC (Builder ID, IAM Identity Center) and Kiro's social auth service, as they answer.

SSO-OIDC (JSON, camelCase; errors are HTTP 400 ``{"error", "error_description"}``):

* ``POST /client/register`` needs ``clientName``, ``clientType: public`` and ``scopes``
  -> ``clientId``/``clientSecret`` (unknown or missing ones are ``invalid_client``, 401).
* ``POST /device_authorization`` needs a registered client and ``startUrl`` -> a device
  code living ``expires_in`` s, polled every ``interval`` s.
* ``POST /token``: the device grant answers ``authorization_pending`` until ``approve()``
  (or ``auto_approve`` polls), ``slow_down`` once when asked, ``access_denied`` after
  ``deny()``, ``expired_token`` past its lifetime; the refresh grant needs the client
  that got the token, and a dead refresh token is ``invalid_grant`` ("Invalid refresh
  token provided"). Refresh replies carry no ``refreshToken`` unless ``rotate``.
* ``POST /`` with ``X-Amz-Target: AmazonCodeWhispererService.ListProfiles`` and a live
  Bearer -> the account's profile.

Kiro's social service: ``POST /oauth/token`` needs ``code``, ``code_verifier`` (whose
S256 challenge came with the code, ``issue_code``) and the same ``redirect_uri``;
``POST /refreshToken`` needs a live ``refreshToken``; both rotate the refresh token and
return ``profileArn``. ``access`` is the tokens the CodeWhisperer fake accepts.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

from ._gate import AccountServer, Tokens, bearer, oauth_error
from .server import Recorded, Reply

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
SSO_PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:123456789012:profile/SSOPROFILE"


def _body(rec: Recorded) -> dict[str, Any]:
    return rec.body if isinstance(rec.body, dict) else {}


def _missing(body: dict[str, Any], *names: str) -> Reply | None:
    for name in names:
        if not body.get(name):
            return oauth_error("invalid_request", f"{name} is required")
    return None


class FakeKiroAuth(AccountServer):
    def __init__(self, *, token_ttl: float = 3600.0, interval: int = 0, expires_in: int = 600,
                 rotate: bool = False, access: Tokens | None = None) -> None:  # fmt: skip
        super().__init__()
        self.token_ttl = token_ttl
        self.interval = interval
        self.expires_in = expires_in
        self.rotate = rotate
        self.slow_down_once = False
        self.auto_approve: int | None = None
        self.clients: dict[str, str] = {}  # clientId -> clientSecret
        self.codes: dict[str, dict[str, Any]] = {}  # deviceCode -> state
        self.social_codes: dict[str, tuple[str, str]] = {}  # code -> (challenge, redirect_uri)
        self.access = access or Tokens("aoaAAAAA-")
        self.refresh = Tokens("aorAAAAA-")
        self.refresh_client: dict[str, str] = {}  # refresh token -> clientId ("" for social)
        self.route("/client/register", self._register)
        self.route("/device_authorization", self._device_authorization)
        self.route("/token", self._token)
        self.route("/oauth/token", self._social_token)
        self.route("/refreshToken", self._social_refresh)
        self.route("/", self._list_profiles)

    # -- grants the tests hand out ---------------------------------------------------------
    def register(self) -> tuple[str, str]:
        client_id, secret = f"client-{secrets.token_hex(6)}", f"secret-{secrets.token_hex(12)}"
        self.clients[client_id] = secret
        return client_id, secret

    def grant(self, client_id: str = "") -> tuple[str, str]:
        """An access and a refresh token of an SSO client (``client_id``) or a social login ("")."""
        refresh = self.refresh.mint(90 * 86400)
        self.refresh_client[refresh] = client_id
        return self.access.mint(self.token_ttl), refresh

    def issue_code(self, challenge: str, redirect_uri: str) -> str:
        """What Kiro's login page hands the browser after the user approved."""
        code = secrets.token_urlsafe(12)
        self.social_codes[code] = (challenge, redirect_uri)
        return code

    def approve(self, user_code: str | None = None) -> None:
        self._set_state(user_code, "approved")

    def deny(self, user_code: str | None = None) -> None:
        self._set_state(user_code, "denied")

    def _set_state(self, user_code: str | None, state: str) -> None:
        for entry in reversed(list(self.codes.values())):
            if user_code is None or entry["user_code"] == user_code:
                entry["state"] = state
                return
        raise KeyError(user_code)

    def _reply(self, client_id: str, *, with_refresh: bool = True, social: bool = False) -> Reply:
        access, refresh = self.grant(client_id)
        body: dict[str, Any] = {"accessToken": access, "expiresIn": int(self.token_ttl)}
        if social:
            body["profileArn"] = PROFILE_ARN
        else:
            body["tokenType"] = "Bearer"
        if with_refresh:
            body["refreshToken"] = refresh
        return Reply(body)

    # -- SSO-OIDC ------------------------------------------------------------------------
    def _client(self, body: dict[str, Any]) -> Reply | None:
        refused = _missing(body, "clientId", "clientSecret")
        if refused is not None:
            return refused
        if self.clients.get(str(body["clientId"])) != body["clientSecret"]:
            return oauth_error("invalid_client", "Invalid client provided", 401)
        return None

    def _register(self, rec: Recorded) -> Reply:
        body = _body(rec)
        refused = _missing(body, "clientName", "clientType", "scopes")
        if refused is not None:
            return refused
        if body["clientType"] != "public" or not isinstance(body["scopes"], list):
            return oauth_error("invalid_client_metadata", "clientType must be public and scopes a list")
        client_id, secret = self.register()
        now = int(time.time())
        return Reply({"clientId": client_id, "clientSecret": secret, "clientIdIssuedAt": now,
                      "clientSecretExpiresAt": now + 90 * 86400})  # fmt: skip

    def _device_authorization(self, rec: Recorded) -> Reply:
        body = _body(rec)
        refused = self._client(body) or _missing(body, "startUrl")
        if refused is not None:
            return refused
        code = secrets.token_urlsafe(24)
        user = f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
        self.codes[code] = {"user_code": user, "client": body["clientId"], "state": "pending", "polls": 0,
                            "until": time.time() + self.expires_in, "start_url": body["startUrl"]}  # fmt: skip
        return Reply({"deviceCode": code, "userCode": user, "verificationUri": f"{self.url}/device",
                      "verificationUriComplete": f"{self.url}/device?user_code={user}",
                      "expiresIn": self.expires_in, "interval": self.interval})  # fmt: skip

    def _token(self, rec: Recorded) -> Reply:
        body = _body(rec)
        refused = self._client(body) or _missing(body, "grantType")
        if refused is not None:
            return refused
        grant = body["grantType"]
        if grant == DEVICE_GRANT:
            return self._device_token(body)
        if grant == "refresh_token":
            old = str(body.get("refreshToken") or "")
            if not old:
                return oauth_error("invalid_request", "refreshToken is required")
            if not self.refresh.valid(old) or self.refresh_client.get(old) != body["clientId"]:
                return oauth_error("invalid_grant", "Invalid refresh token provided")
            if self.rotate:
                self.refresh.revoke(old)
                return self._reply(str(body["clientId"]))
            self.refresh_client[old] = str(body["clientId"])
            return Reply({"accessToken": self.access.mint(self.token_ttl), "tokenType": "Bearer",
                          "expiresIn": int(self.token_ttl)})  # fmt: skip
        return oauth_error("unsupported_grant_type", f"grantType {grant!r} is not supported")

    def _device_token(self, body: dict[str, Any]) -> Reply:
        code = str(body.get("deviceCode") or "")
        entry = self.codes.get(code)
        if entry is None or entry["client"] != body["clientId"]:
            return oauth_error("invalid_grant", "Invalid device code provided")
        entry["polls"] += 1
        if time.time() > entry["until"]:
            return oauth_error("expired_token", "Device code has expired")
        if self.slow_down_once and entry["polls"] == 1:
            return oauth_error("slow_down", "Client is polling too quickly")
        if entry["state"] == "denied":
            return oauth_error("access_denied", "The user denied the authorization request")
        if self.auto_approve is not None and entry["polls"] >= self.auto_approve and entry["state"] == "pending":
            entry["state"] = "approved"
        if entry["state"] != "approved":
            return oauth_error("authorization_pending", "Authorization is still pending")
        del self.codes[code]
        return self._reply(str(body["clientId"]))

    def _list_profiles(self, rec: Recorded) -> Reply:
        if rec.headers.get("x-amz-target") != "AmazonCodeWhispererService.ListProfiles":
            return Reply({"__type": "UnknownOperationException", "message": "unknown operation"}, status=400)
        if not self.access.valid(bearer(rec)):
            return Reply({"message": "The bearer token included in the request is invalid."}, status=403)
        return Reply({"profiles": [{"arn": SSO_PROFILE_ARN, "profileName": "default"}]})

    # -- Kiro's social service -------------------------------------------------------------
    def _social_token(self, rec: Recorded) -> Reply:
        body = _body(rec)
        refused = _missing(body, "code", "code_verifier", "redirect_uri")
        if refused is not None:
            return refused
        issued = self.social_codes.pop(str(body["code"]), None)
        if issued is None:
            return oauth_error("invalid_grant", "Invalid authorization code")
        verifier = str(body["code_verifier"])
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if digest != issued[0]:
            return oauth_error("invalid_grant", "Invalid code verifier")
        if body["redirect_uri"] != issued[1]:
            return oauth_error("invalid_grant", "redirect_uri does not match the authorization request")
        return self._reply("", social=True)

    def _social_refresh(self, rec: Recorded) -> Reply:
        old = str(_body(rec).get("refreshToken") or "")
        if not old:
            return oauth_error("invalid_request", "refreshToken is required")
        if not self.refresh.valid(old) or self.refresh_client.get(old) != "":
            return oauth_error("invalid_grant", "Invalid refresh token provided")
        self.refresh.revoke(old)  # Kiro rotates social refresh tokens
        return self._reply("", social=True)
