"""Google accounts for Gemini (Code Assist): PKCE login, refresh at ``{oauth_url}/token``.

Google does not rotate refresh tokens (a refresh returns only an access token, ~1 h).
An account serves through Code Assist (``cloudcode-pa.googleapis.com/v1internal``),
which needs the account's Code Assist project: ``discover_project`` asks
``loadCodeAssist`` and, for a new account, ``onboardUser`` (a long-running operation
re-posted until done). Login discovers it; a refresh fills it in when a file lacked it.
Provider options: ``oauth_url``, ``authorize_url``, ``client_id``, ``client_secret``,
``redirect_uri`` (pasted codes); ``base_url`` is the Code Assist endpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..http import HTTPClient
from ..providers.base import Credential, ProviderConfig
from ._files import TokenFile
from ._flows import (
    LoginOptions,
    LoginPrompt,
    Pkce,
    PkceLogin,
    authorize_url,
    open_callback,
    pkce_code,
)
from ._http import AuthError, call, oauth_error
from ._oauth import check_token_reply, token_set
from ._registry import endpoint, option
from ._tokens import TokenSet

#: gemini-cli's installed-app OAuth client (public); ``client_secret`` is a provider option.
CLIENT_ID = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com"
AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
PASTE_REDIRECT = "https://codeassist.google.com/authcode"
CODE_ASSIST_URL = "https://cloudcode-pa.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email "
          "https://www.googleapis.com/auth/userinfo.profile")  # fmt: skip
METADATA = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}


def _client(provider: ProviderConfig) -> dict[str, str]:
    out = {"client_id": option(provider, "client_id", CLIENT_ID)}
    secret = option(provider, "client_secret")
    if secret:
        out["client_secret"] = secret
    return out


def code_assist_url(provider: ProviderConfig) -> str:
    return (provider.base_url or CODE_ASSIST_URL).rstrip("/")


async def discover_project(provider: ProviderConfig, access_token: str, http: HTTPClient,
                           *, poll: float = 5.0, attempts: int = 12) -> str:  # fmt: skip
    """The account's Code Assist project: loadCodeAssist, else onboardUser to the default tier."""
    base = code_assist_url(provider) + "/v1internal"
    headers = {"authorization": f"Bearer {access_token}",
               "client-metadata": ",".join(f"{k}={v}" for k, v in METADATA.items())}  # fmt: skip
    load = await call(
        http,
        "POST",
        base + ":loadCodeAssist",
        json_body={"metadata": METADATA},
        headers=headers,
        proxy=provider.proxy or None,
    )
    if load.status >= 400:
        code, desc = oauth_error(load)
        raise AuthError(f"Code Assist loadCodeAssist refused (HTTP {load.status}): {desc or code}",
                        permanent=load.status in (401, 403))  # fmt: skip
    project = _project_id(load.data.get("cloudaicompanionProject"))
    if project and load.data.get("currentTier"):
        return project
    tiers = [t for t in load.data.get("allowedTiers") or [] if isinstance(t, dict)]
    tier = next((t for t in tiers if t.get("isDefault")), tiers[0] if tiers else {"id": "free-tier"})
    body: dict[str, Any] = {"tierId": tier.get("id") or "free-tier", "metadata": METADATA,
                            "cloudaicompanionProject": None if tier.get("id") == "free-tier" else project}  # fmt: skip
    for _ in range(attempts):
        op = await call(
            http, "POST", base + ":onboardUser", json_body=body, headers=headers, proxy=provider.proxy or None
        )
        if op.status >= 400:
            code, desc = oauth_error(op)
            raise AuthError(f"Code Assist onboardUser refused (HTTP {op.status}): {desc or code}",
                            permanent=op.status in (401, 403))  # fmt: skip
        if op.data.get("done"):
            response = op.data.get("response")
            found = _project_id(response.get("cloudaicompanionProject")) if isinstance(response, dict) else None
            if found:
                return found
            break
        await asyncio.sleep(poll)
    raise AuthError("Code Assist did not assign a project to this account; set project_id in its token file")


def _project_id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    return None


class GoogleRefresher:
    margin = 60.0

    async def refresh(self, provider: ProviderConfig, cred: Credential, http: HTTPClient) -> TokenSet:
        if not cred.refresh_token:
            raise AuthError("no refresh token stored: log in again", permanent=True)
        form = {"grant_type": "refresh_token", "refresh_token": cred.refresh_token, **_client(provider)}
        reply = await call(
            http, "POST", endpoint(provider, "oauth_url") + "/token", form=form, proxy=provider.proxy or None
        )
        tokens = token_set(check_token_reply(reply, "Google token refresh"))
        if not cred.extra.get("project_id"):
            project = await discover_project(provider, tokens.access_token, http)
            tokens = TokenSet(tokens.access_token, tokens.expires_at, tokens.refresh_token, {"project_id": project})
        return tokens


@dataclass(slots=True)
class GoogleLogin(PkceLogin):
    async def complete(self, pasted: str | None = None) -> TokenFile:
        code = await pkce_code(self.pkce, self.callback, pasted, pasted_what="code",
                               ask="paste the authorization code the login page shows")  # fmt: skip
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": self.pkce.verifier, **_client(self.provider)}  # fmt: skip
        reply = await call(
            self.http,
            "POST",
            endpoint(self.provider, "oauth_url") + "/token",
            form=form,
            proxy=self.provider.proxy or None,
        )
        tokens = token_set(check_token_reply(reply, "Google login"))
        project = await discover_project(self.provider, tokens.access_token, self.http)
        return TokenFile("gemini", provider=self.provider.name, access_token=tokens.access_token,
                         refresh_token=tokens.refresh_token, expires_at=tokens.expires_at,
                         extra={"project_id": project})  # fmt: skip


async def begin_login(provider: ProviderConfig, http: HTTPClient, options: LoginOptions) -> GoogleLogin:
    pkce = Pkce.new()
    callback, redirect = await open_callback(
        options, "/oauth2callback", option(provider, "redirect_uri", PASTE_REDIRECT)
    )
    url = authorize_url(option(provider, "authorize_url", AUTHORIZE_URL), client_id=_client(provider)["client_id"],
                        redirect_uri=redirect, pkce=pkce, scope=SCOPES,
                        extra={"access_type": "offline", "prompt": "consent"})  # fmt: skip
    how = "then paste the code it shows" if options.no_browser else "and approve the login"
    prompt = LoginPrompt(f"open {url} {how}", authorize_url=url, needs_paste=options.no_browser)
    return GoogleLogin(provider, http, pkce, redirect, prompt, callback)
