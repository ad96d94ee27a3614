"""Claude Pro/Max accounts: PKCE login and refresh at ``{oauth_url}/v1/oauth/token``.

Refresh tokens rotate: every refresh returns a new one and the old one stops working, so
the keeper's one-refresh-at-a-time rule matters here most. Access tokens (``sk-ant-oat``)
live about 8 h and are sent as ``Authorization: Bearer`` with the ``oauth-2025-04-20``
beta (``llmproxy.providers.anthropic``). Provider options: ``oauth_url``,
``authorize_url``, ``client_id``, ``redirect_uri`` (for pasted codes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
from ._http import AuthError, call
from ._oauth import check_token_reply, token_set
from ._registry import endpoint, option
from ._tokens import TokenSet

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
AUTHORIZE_URL = "https://claude.ai/oauth/authorize"
PASTE_REDIRECT = "https://platform.claude.com/oauth/code/callback"
SCOPES = "user:profile user:inference"


def _email(data: dict[str, Any]) -> dict[str, Any]:
    account = data.get("account")
    email = account.get("email_address") if isinstance(account, dict) else None
    return {"email": email} if isinstance(email, str) else {}


class ClaudeRefresher:
    margin = 60.0

    async def refresh(self, provider: ProviderConfig, cred: Credential, http: HTTPClient) -> TokenSet:
        if not cred.refresh_token:
            raise AuthError("no refresh token stored: log in again", permanent=True)
        body = {"grant_type": "refresh_token", "refresh_token": cred.refresh_token,
                "client_id": option(provider, "client_id", CLIENT_ID)}  # fmt: skip
        reply = await call(
            http,
            "POST",
            endpoint(provider, "oauth_url") + "/v1/oauth/token",
            json_body=body,
            proxy=provider.proxy or None,
        )
        data = dict(check_token_reply(reply, "Claude token refresh"))
        return token_set(data, extra=_email(data))


@dataclass(slots=True)
class ClaudeLogin(PkceLogin):
    name: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)

    async def complete(self, pasted: str | None = None) -> TokenFile:
        code = await pkce_code(self.pkce, self.callback, pasted, pasted_what="code",
                               ask="paste the code the login page shows (CODE#STATE)")  # fmt: skip
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "client_id": option(self.provider, "client_id", CLIENT_ID), "code_verifier": self.pkce.verifier,
                "state": self.pkce.state}  # fmt: skip
        url = endpoint(self.provider, "oauth_url") + "/v1/oauth/token"
        data = dict(
            check_token_reply(
                await call(self.http, "POST", url, json_body=body, proxy=self.provider.proxy or None), "Claude login"
            )
        )
        tokens = token_set(data, now=time.time())
        return TokenFile("claude", provider=self.provider.name, access_token=tokens.access_token,
                         refresh_token=tokens.refresh_token, expires_at=tokens.expires_at, extra=_email(data))  # fmt: skip


async def begin_login(provider: ProviderConfig, http: HTTPClient, options: LoginOptions) -> ClaudeLogin:
    pkce = Pkce.new()
    callback, redirect = await open_callback(options, "/callback", option(provider, "redirect_uri", PASTE_REDIRECT))
    url = authorize_url(option(provider, "authorize_url", AUTHORIZE_URL), client_id=option(provider, "client_id",
                        CLIENT_ID), redirect_uri=redirect, pkce=pkce, scope=SCOPES, extra={"code": "true"})  # fmt: skip
    how = "then paste the code it shows (CODE#STATE)" if options.no_browser else "and approve the login"
    prompt = LoginPrompt(f"open {url} {how}", authorize_url=url, needs_paste=options.no_browser)
    return ClaudeLogin(provider, http, pkce, redirect, prompt, callback, options.name)
