"""Kiro accounts (AWS CodeWhisperer): AWS SSO-OIDC logins (Builder ID, IAM Identity Center) and social ones.

Three ways in, told apart by the credential's ``auth_method`` (its token file's field):

* ``builder-id`` (the default login) and ``idc``: the AWS SSO-OIDC device flow at
  ``{oidc_url}``: ``POST /client/register`` (a public client named ``llmproxy``), ``POST
  /device_authorization`` (the Builder ID start URL, or the IAM Identity Center one),
  then ``POST /token`` polled until the user approved. The client id and secret are kept
  with the tokens: a refresh is ``POST {oidc_url}/token`` ``grantType=refresh_token`` with
  them; a reply without ``refreshToken`` keeps the stored one.
* ``social`` (Google or GitHub through Kiro's own service at ``{auth_url}``): PKCE,
  ``GET /login`` in the browser, ``POST /oauth/token`` for the code, ``POST /refreshToken``
  to refresh.

Every call names llmproxy in ``User-Agent``; nothing here passes as Kiro's IDE. Provider
options: ``region``, ``oidc_url``, ``auth_url`` (INTERFACE.md section 8); ``profiles_url``
(where ``ListProfiles`` finds an SSO account's profile ARN); ``idp`` (social: ``Google``,
the default, or ``Github``); ``redirect_uri`` (social with ``--no-browser``). A token
file's ``region`` wins over the provider's when the provider names no ``oidc_url``.
``--import`` also reads Kiro IDE's own ``~/.aws/sso/cache/kiro-auth-token.json`` (and the
client registration it names by ``clientIdHash`` in a file beside it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..http import HTTPClient
from ..providers.base import Credential, ProviderConfig
from ._files import TokenFile, TokenType, register_importer, register_token_type
from ._flows import (
    DeviceCode,
    LoginOptions,
    LoginPrompt,
    Pkce,
    PkceLogin,
    open_callback,
    pkce_code,
    poll_device_code,
    register_login,
)
from ._http import PERMANENT_ERRORS, AuthError, JSONReply, call, oauth_error
from ._registry import DEFAULT_ENDPOINTS, endpoint, option, register_refresher
from ._tokens import TokenSet

AUTH_METHODS = ("builder-id", "idc", "social")
SSO_METHODS = ("builder-id", "idc")
BUILDER_ID_START_URL = "https://view.awsapps.com/start"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPES = ["codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations"]
CLIENT_NAME = "llmproxy"
PROFILES_URL = "https://codewhisperer.{region}.amazonaws.com"
SOCIAL_PORT = 9876
DEFAULT_REGION = "us-east-1"
#: Kiro's social tokens come without a lifetime sometimes; they live an hour.
DEFAULT_TTL = 3600.0
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def _check(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The kiro-specific rules of a token file (``TokenType.check``)."""
    method = data.get("auth_method")
    if not method:
        return [("auth_method", "is required (builder-id, idc or social)")]
    if method not in AUTH_METHODS:
        return [("auth_method", f"is {method!r}; one of builder-id, idc or social")]
    if method in SSO_METHODS and data.get("refresh_token"):
        for name in ("client_id", "client_secret"):
            if not data.get(name):
                return [(name, f"is required for {method} (the SSO-OIDC client that refreshes the token)")]
    region = data.get("region")
    if region and not _REGION.match(str(region)):
        return [("region", f"is {region!r}, not an AWS region such as us-east-1")]
    arn = data.get("profile_arn")
    if arn and not str(arn).startswith("arn:"):
        return [("profile_arn", "must be an ARN (arn:aws:codewhisperer:...)")]
    return []


register_token_type(
    "kiro", TokenType(fields=("auth_method", "client_id", "client_secret", "region", "profile_arn"), check=_check)
)


def _kiro_ide(data: Mapping[str, Any], path: Path) -> dict[str, Any] | None:
    """Kiro IDE's ``kiro-auth-token.json`` (camelCase; the client registration beside it)."""
    if not data.get("accessToken") and not data.get("refreshToken"):
        return None
    raw_method = str(data.get("authMethod") or "").lower()
    idp = str(data.get("provider") or "").lower()
    if raw_method == "social" or (not raw_method and not data.get("clientId") and not data.get("clientIdHash")):
        method = "social"
    elif raw_method == "builder-id" or idp in ("builderid", "builder-id"):
        method = "builder-id"
    elif raw_method in ("idc", "iam", "identity-center") or idp == "enterprise":
        method = "idc"
    else:
        method = raw_method or "builder-id"
    out: dict[str, Any] = {"auth_method": method}
    for src, dst in (("accessToken", "access_token"), ("refreshToken", "refresh_token"), ("expiresAt", "expires_at"),
                     ("region", "region"), ("profileArn", "profile_arn"), ("clientId", "client_id"),
                     ("clientSecret", "client_secret")):  # fmt: skip
        if data.get(src):
            out[dst] = data[src]
    digest = data.get("clientIdHash")
    if method in SSO_METHODS and not out.get("client_id") and isinstance(digest, str) and re.fullmatch(r"\w+", digest):
        try:
            client = json.loads((path.parent / f"{digest}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            client = {}
        if isinstance(client, dict):
            out.update({k: client[s] for s, k in (("clientId", "client_id"), ("clientSecret", "client_secret"))
                        if isinstance(client.get(s), str)})  # fmt: skip
    return out


register_importer("kiro", _kiro_ide, with_path=True)


# -- endpoints ---------------------------------------------------------------------------
def _region(provider: ProviderConfig, cred_region: Any = None) -> str:
    if isinstance(cred_region, str) and _REGION.match(cred_region):
        return cred_region
    return endpoint(provider, "region") or DEFAULT_REGION


def _url(provider: ProviderConfig, name: str, cred_region: Any = None) -> str:
    """``oidc_url`` / ``auth_url``: the provider's setting, else the default in the credential's region."""
    value = provider.options.get(name)
    if isinstance(value, str) and value:
        return value.rstrip("/")
    default = DEFAULT_ENDPOINTS.get("kiro", {}).get(name) or (PROFILES_URL if name == "profiles_url" else "")
    return default.replace("{region}", _region(provider, cred_region)).rstrip("/")


# -- replies -----------------------------------------------------------------------------
def aws_error(reply: JSONReply) -> tuple[str, str]:
    """(code, description) of an SSO-OIDC or Kiro error: ``{"error": ...}`` or an AWS ``__type``."""
    code, desc = oauth_error(reply)
    if not code:
        kind = str(reply.data.get("__type") or reply.headers.get("x-amzn-errortype") or "")
        kind = kind.rsplit("#", 1)[-1].split(":", 1)[0].removesuffix("Exception")
        code = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    return code, desc or str(reply.data.get("message") or reply.data.get("Message") or "")


def _tokens(reply: JSONReply, what: str, *, now: float | None = None) -> TokenSet:
    """A TokenSet from a camelCase token reply; else ``AuthError`` (permanent for a dead grant)."""
    data = reply.data
    if 200 <= reply.status < 300 and isinstance(data.get("accessToken"), str) and data["accessToken"]:
        ttl = data.get("expiresIn")
        lifetime = float(ttl) if isinstance(ttl, int | float) and not isinstance(ttl, bool) else DEFAULT_TTL
        refresh = data.get("refreshToken")
        extra = {"profile_arn": data["profileArn"]} if isinstance(data.get("profileArn"), str) else {}
        start = time.time() if now is None else now
        return TokenSet(data["accessToken"], start + lifetime, str(refresh) if refresh else None, extra)
    code, desc = aws_error(reply)
    if not code and 200 <= reply.status < 300:
        code, desc = "invalid_response", "the reply carries no accessToken"
    permanent = code in PERMANENT_ERRORS or reply.status in (400, 401, 403)
    detail = f"{code}: {desc}" if code and desc else code or desc or f"HTTP {reply.status}"
    hint = "; log in again (manage.py login kiro)" if permanent else ""
    raise AuthError(f"{what} refused (HTTP {reply.status}): {detail}{hint}", permanent=permanent, code=code)


# -- refresh -----------------------------------------------------------------------------
class KiroRefresher:
    margin = 60.0

    async def refresh(self, provider: ProviderConfig, cred: Credential, http: HTTPClient) -> TokenSet:
        if not cred.refresh_token:
            raise AuthError("no refresh token stored: log in again (manage.py login kiro)", permanent=True)
        method = cred.extra.get("auth_method") or ("builder-id" if cred.extra.get("client_id") else "social")
        region = cred.extra.get("region")
        if method == "social":
            reply = await call(http, "POST", _url(provider, "auth_url", region) + "/refreshToken",
                               json_body={"refreshToken": cred.refresh_token}, proxy=provider.proxy or None)  # fmt: skip
            return _tokens(reply, "Kiro token refresh")
        client_id, secret = cred.extra.get("client_id"), cred.extra.get("client_secret")
        if not client_id or not secret:
            raise AuthError(f"a {method} credential needs client_id and client_secret to refresh: log in again",
                            permanent=True)  # fmt: skip
        body = {"clientId": client_id, "clientSecret": secret, "refreshToken": cred.refresh_token,
                "grantType": "refresh_token"}  # fmt: skip
        reply = await call(http, "POST", _url(provider, "oidc_url", region) + "/token", json_body=body,
                           proxy=provider.proxy or None)  # fmt: skip
        return _tokens(reply, "AWS SSO-OIDC token refresh")


register_refresher("kiro", KiroRefresher)


async def profile_arn(provider: ProviderConfig, access_token: str, http: HTTPClient, region: str) -> str | None:
    """The account's CodeWhisperer profile (``ListProfiles``); None when there is none or the call fails."""
    headers = {"authorization": f"Bearer {access_token}", "content-type": "application/x-amz-json-1.0",
               "x-amz-target": "AmazonCodeWhispererService.ListProfiles"}  # fmt: skip
    try:
        reply = await call(http, "POST", _url(provider, "profiles_url", region) + "/", json_body={"origin": "AI_EDITOR"},
                           headers=headers, proxy=provider.proxy or None)  # fmt: skip
    except AuthError:
        return None
    profiles = reply.data.get("profiles") if reply.status < 300 else None
    for p in profiles if isinstance(profiles, list) else []:
        if isinstance(p, dict) and isinstance(p.get("arn"), str) and p["arn"].startswith("arn:"):
            return str(p["arn"])
    return None


# -- logins ------------------------------------------------------------------------------
def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


@dataclass(slots=True)
class KiroDeviceLogin:
    """Builder ID / IAM Identity Center: the SSO-OIDC device flow with a client registered for it."""

    provider: ProviderConfig
    http: HTTPClient
    method: str
    region: str
    client_id: str
    client_secret: str
    code: DeviceCode
    prompt: LoginPrompt

    async def _poll(self) -> tuple[str, Mapping[str, Any]]:
        body = {"clientId": self.client_id, "clientSecret": self.client_secret, "deviceCode": self.code.device_code,
                "grantType": DEVICE_GRANT}  # fmt: skip
        reply = await call(self.http, "POST", _url(self.provider, "oidc_url", self.region) + "/token",
                           json_body=body, proxy=self.provider.proxy or None)  # fmt: skip
        if 200 <= reply.status < 300 and reply.data.get("accessToken"):
            return "", reply.data
        code, desc = aws_error(reply)
        return code or f"http_{reply.status}", {**reply.data, "error_description": desc}

    async def complete(self, pasted: str | None = None) -> TokenFile:
        data = await poll_device_code(self.code, self._poll)
        tokens = _tokens(JSONReply(200, dict(data), {}), "AWS SSO-OIDC login")
        extra: dict[str, Any] = {"auth_method": self.method, "client_id": self.client_id,
                                 "client_secret": self.client_secret, "region": self.region}  # fmt: skip
        arn = await profile_arn(self.provider, tokens.access_token, self.http, self.region)
        if arn:
            extra["profile_arn"] = arn
        return TokenFile("kiro", provider=self.provider.name, access_token=tokens.access_token,
                         refresh_token=tokens.refresh_token, expires_at=tokens.expires_at, extra=extra)  # fmt: skip

    async def close(self) -> None:
        return None


async def _begin_device(provider: ProviderConfig, http: HTTPClient, method: str, start_url: str) -> KiroDeviceLogin:
    region = _region(provider)
    oidc = _url(provider, "oidc_url", region)
    proxy = provider.proxy or None
    register = {"clientName": CLIENT_NAME, "clientType": "public", "scopes": SCOPES,
                "grantTypes": [DEVICE_GRANT, "refresh_token"]}  # fmt: skip
    reg = await call(http, "POST", oidc + "/client/register", json_body=register, proxy=proxy)
    client_id, secret = reg.data.get("clientId"), reg.data.get("clientSecret")
    if reg.status >= 400 or not isinstance(client_id, str) or not isinstance(secret, str):
        err, desc = aws_error(reg)
        raise AuthError(f"AWS SSO-OIDC refused to register a client (HTTP {reg.status}): {desc or err}")
    auth = await call(http, "POST", oidc + "/device_authorization", proxy=proxy,
                      json_body={"clientId": client_id, "clientSecret": secret, "startUrl": start_url})  # fmt: skip
    d = auth.data
    if auth.status >= 400 or not d.get("deviceCode") or not d.get("userCode"):
        err, desc = aws_error(auth)
        raise AuthError(f"AWS SSO-OIDC refused to start a device login (HTTP {auth.status}): {desc or err}")
    complete_uri = d.get("verificationUriComplete")
    code = DeviceCode(str(d["deviceCode"]), str(d["userCode"]), str(d.get("verificationUri") or complete_uri),
                      _number(d.get("expiresIn"), 600), _number(d.get("interval"), 5),
                      str(complete_uri) if complete_uri else None)  # fmt: skip
    prompt = LoginPrompt(code.prompt(), verification_uri=code.verification_uri, user_code=code.user_code)
    return KiroDeviceLogin(provider, http, method, region, client_id, secret, code, prompt)


@dataclass(slots=True)
class KiroSocialLogin(PkceLogin):
    """Google or GitHub through Kiro's auth service: PKCE, then ``POST /oauth/token``."""

    async def complete(self, pasted: str | None = None) -> TokenFile:
        code = await pkce_code(self.pkce, self.callback, pasted, pasted_what="URL",
                               ask="paste the URL the browser was sent to after the login (it carries the code)")  # fmt: skip
        region = _region(self.provider)
        body = {"code": code, "code_verifier": self.pkce.verifier, "redirect_uri": self.redirect_uri}
        reply = await call(self.http, "POST", _url(self.provider, "auth_url", region) + "/oauth/token",
                           json_body=body, proxy=self.provider.proxy or None)  # fmt: skip
        tokens = _tokens(reply, "Kiro social login")
        extra = {"auth_method": "social", "region": region, **tokens.extra}
        return TokenFile("kiro", provider=self.provider.name, access_token=tokens.access_token,
                         refresh_token=tokens.refresh_token, expires_at=tokens.expires_at, extra=extra)  # fmt: skip


async def _begin_social(provider: ProviderConfig, options: LoginOptions, http: HTTPClient) -> KiroSocialLogin:
    pkce = Pkce.new()
    paste_redirect = option(provider, "redirect_uri", f"http://localhost:{options.port or SOCIAL_PORT}/oauth/callback")
    callback, redirect = await open_callback(options, "/oauth/callback", paste_redirect)
    params = {"idp": options.extra.get("idp") or option(provider, "idp", "Google"), "redirect_uri": redirect,
              "code_challenge": pkce.challenge, "code_challenge_method": "S256", "state": pkce.state,
              "prompt": "select_account"}  # fmt: skip
    url = f"{_url(provider, 'auth_url')}/login?{urlencode(params)}"
    how = ("then paste the address the browser ends on (it carries the code)" if options.no_browser
           else "and approve the login")  # fmt: skip
    prompt = LoginPrompt(f"open {url} {how}", authorize_url=url, needs_paste=options.no_browser)
    return KiroSocialLogin(provider, http, pkce, redirect, prompt, callback)


async def begin_login(
    provider: ProviderConfig, http: HTTPClient, options: LoginOptions
) -> KiroDeviceLogin | KiroSocialLogin:
    """Builder ID unless ``options.method`` says ``idc`` (with ``start_url``) or ``social``."""
    method = options.method or "builder-id"
    if method not in AUTH_METHODS:
        raise AuthError(f"unknown kiro login method {method!r}; one of builder-id, idc or social")
    if method == "social":
        return await _begin_social(provider, options, http)
    if method == "idc" and not options.start_url:
        raise AuthError("--method idc needs --start-url (the IAM Identity Center start URL, https://...)")
    start_url = options.start_url if method == "idc" else BUILDER_ID_START_URL
    if not str(start_url).startswith(("https://", "http://")):
        raise AuthError(f"the start URL {start_url!r} is not an http(s) URL")
    return await _begin_device(provider, http, method, str(start_url))


register_login("kiro", begin_login)
