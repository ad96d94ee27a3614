"""GitHub Copilot accounts: GitHub's device flow, then the Copilot token exchange.

The device flow yields a GitHub user token (``ghu_…``) that does not expire; it is the
credential's account token (kept in ``refresh_token``, encrypted). Each call needs a
Copilot token from ``GET {github_api_url}/copilot_internal/v2/token`` (about 30 min);
the refresher performs that exchange with ``margin`` 5 min, so the keeper shares one
exchange per credential across processes and exchanges again 5 min before
``expires_at``. The exchange also says where the API is (``endpoints.api``, kept in
extra ``api_url``) and, read from ``{api}/models``, which models speak only the
Responses API (extra ``responses_models``).

Provider options: ``github_url``, ``github_api_url``, ``client_id``, ``editor_version``,
``editor_plugin_version``, ``integration_id``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..http import HTTPClient
from ..providers._copilot_wire import API_URL, editor_headers
from ..providers.base import Credential, ProviderConfig
from ._files import TokenFile
from ._flows import DeviceCode, LoginOptions, LoginPrompt, poll_device_code
from ._http import AuthError, JSONReply, call, oauth_error
from ._registry import endpoint, option
from ._tokens import TokenSet

CLIENT_ID = "Iv1.b507a08c87ecfe98"
SCOPE = "read:user"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


async def exchange(provider: ProviderConfig, github_token: str, http: HTTPClient) -> TokenSet:
    """One Copilot token for a GitHub token (``Authorization: token``, not Bearer)."""
    headers = {**editor_headers(provider), "authorization": f"token {github_token}"}
    reply = await call(http, "GET", endpoint(provider, "github_api_url") + "/copilot_internal/v2/token",
                       headers=headers, proxy=provider.proxy or None)  # fmt: skip
    token = reply.data.get("token")
    if reply.status >= 400 or not isinstance(token, str) or not token:
        code, desc = oauth_error(reply)
        detail = desc or code or reply.data.get("message") or f"HTTP {reply.status}"
        raise AuthError(f"Copilot token exchange refused (HTTP {reply.status}): {detail}",
                        permanent=reply.status in (401, 403, 404))  # fmt: skip
    expires = reply.data.get("expires_at")
    expires_at = float(expires) if isinstance(expires, int | float) and expires > 0 else time.time() + 25 * 60
    endpoints = reply.data.get("endpoints")
    api = endpoints.get("api") if isinstance(endpoints, dict) else None
    extra: dict[str, Any] = {"api_url": str(api).rstrip("/") if api else API_URL}
    extra["responses_models"] = await _responses_only(provider, extra["api_url"], token, http)
    return TokenSet(token, expires_at, None, extra)


async def _responses_only(provider: ProviderConfig, api: str, token: str, http: HTTPClient) -> list[str]:
    """Models whose ``supported_endpoints`` list ``/responses`` but not ``/chat/completions``."""
    base = (provider.base_url or api).rstrip("/")
    headers = {**editor_headers(provider), "authorization": f"Bearer {token}"}
    try:
        reply = await call(http, "GET", base + "/models", headers=headers, proxy=provider.proxy or None)
    except AuthError:
        return []
    out: list[str] = []
    for model in reply.data.get("data") or [] if reply.status < 300 else []:
        if not isinstance(model, dict):
            continue
        ends = model.get("supported_endpoints")
        if isinstance(ends, list) and "/responses" in ends and "/chat/completions" not in ends:
            out.append(str(model.get("id")))
    return out


class CopilotRefresher:
    margin = 300.0

    async def refresh(self, provider: ProviderConfig, cred: Credential, http: HTTPClient) -> TokenSet:
        if not cred.refresh_token:
            raise AuthError("no GitHub token stored: log in again (manage.py login copilot)", permanent=True)
        return await exchange(provider, cred.refresh_token, http)


@dataclass(slots=True)
class CopilotLogin:
    provider: ProviderConfig
    http: HTTPClient
    code: DeviceCode
    prompt: LoginPrompt

    async def _poll(self) -> tuple[str, dict[str, Any]]:
        form = {"client_id": option(self.provider, "client_id", CLIENT_ID), "device_code": self.code.device_code,
                "grant_type": DEVICE_GRANT}  # fmt: skip
        reply = await call(self.http, "POST", endpoint(self.provider, "github_url") + "/login/oauth/access_token",
                           form=form, proxy=self.provider.proxy or None)  # fmt: skip
        if reply.data.get("access_token"):
            return "", reply.data
        code, _ = oauth_error(reply)
        return code or f"http_{reply.status}", reply.data

    async def complete(self, pasted: str | None = None) -> TokenFile:
        data = await poll_device_code(self.code, self._poll)
        github_token = str(data["access_token"])
        tokens = await exchange(self.provider, github_token, self.http)  # proves the account has Copilot
        return TokenFile("copilot", provider=self.provider.name, access_token=tokens.access_token,
                         refresh_token=github_token, expires_at=tokens.expires_at)  # fmt: skip

    async def close(self) -> None:
        return None


def _device_code(reply: JSONReply) -> DeviceCode:
    d = reply.data
    if reply.status >= 400 or not d.get("device_code"):
        code, desc = oauth_error(reply)
        raise AuthError(f"GitHub refused to start a device login (HTTP {reply.status}): {desc or code}")
    return DeviceCode(str(d["device_code"]), str(d["user_code"]), str(d["verification_uri"]),
                      _number(d.get("expires_in"), 900), _number(d.get("interval"), 5))  # fmt: skip


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


async def begin_login(provider: ProviderConfig, http: HTTPClient, options: LoginOptions) -> CopilotLogin:
    form = {"client_id": option(provider, "client_id", CLIENT_ID), "scope": SCOPE}
    reply = await call(
        http, "POST", endpoint(provider, "github_url") + "/login/device/code", form=form, proxy=provider.proxy or None
    )
    code = _device_code(reply)
    prompt = LoginPrompt(code.prompt(), verification_uri=code.verification_uri, user_code=code.user_code)
    return CopilotLogin(provider, http, code, prompt)
