"""Refreshers by account type: the ``Refresher`` protocol and a lazy registry.

A refresher turns a credential's stored tokens into fresh ones; it never saves
anything (``TokenKeeper`` does, once, under a lock)::

    class MyRefresher:
        margin = 60.0          # renew on the request path when this close to expiry
        async def refresh(self, provider: ProviderConfig, cred: Credential,
                          http: HTTPClient) -> TokenSet: ...

    register_refresher("my-type", "my.module:MyRefresher")   # or the class itself

It raises ``AuthError`` (``permanent=True`` for ``invalid_grant`` and the like). The
provider's endpoints come from ``provider.options`` (``oauth_url``, ``github_api_url``,
``oidc_url``, ``auth_url``, ``region``: see ``endpoint``), each with the vendor default.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from ..http import HTTPClient
from ..providers.base import Credential, ProviderConfig
from ._tokens import TokenSet


class Refresher(Protocol):
    margin: float

    async def refresh(self, provider: ProviderConfig, cred: Credential, http: HTTPClient) -> TokenSet: ...


#: account type -> "module:Class" (imported and instantiated on first use).
REFRESHERS: dict[str, str] = {
    "claude": "llmproxy.auth.claude:ClaudeRefresher",
    "gemini": "llmproxy.auth.google:GoogleRefresher",
    "copilot": "llmproxy.auth.copilot:CopilotRefresher",
}
_instances: dict[str, Refresher] = {}


def register_refresher(provider_type: str, refresher: type[Any] | str) -> None:
    """Make ``refresher`` (a class or "module:Class") the one for ``provider_type``."""
    path = refresher if isinstance(refresher, str) else f"{refresher.__module__}:{refresher.__qualname__}"
    REFRESHERS[provider_type] = path
    _instances.pop(provider_type, None)


def refresher_for(provider_type: str) -> Refresher | None:
    path = REFRESHERS.get(provider_type)
    if path is None:
        return None
    inst = _instances.get(provider_type)
    if inst is None:
        module, _, attr = path.partition(":")
        inst = getattr(importlib.import_module(module), attr)()
        _instances[provider_type] = inst
    return inst


#: The vendors' endpoints, per option name; a provider's ``options`` win.
DEFAULT_ENDPOINTS: dict[str, dict[str, str]] = {
    "copilot": {"github_url": "https://github.com", "github_api_url": "https://api.github.com"},
    "claude": {"oauth_url": "https://platform.claude.com"},
    "gemini": {"oauth_url": "https://oauth2.googleapis.com"},
    "kiro": {
        "region": "us-east-1",
        "oidc_url": "https://oidc.{region}.amazonaws.com",
        "auth_url": "https://prod.{region}.auth.desktop.kiro.dev",
    },
}
#: The provider config fields that name account endpoints (INTERFACE.md section 8).
ENDPOINT_FIELDS = ("github_url", "github_api_url", "oauth_url", "region", "auth_url", "oidc_url")


def endpoint(provider: ProviderConfig, name: str) -> str:
    """A provider's account endpoint (or region): its own setting, else the type's default."""
    value = provider.options.get(name)
    if isinstance(value, str) and value:
        return value.rstrip("/")
    defaults = DEFAULT_ENDPOINTS.get(provider.type, {})
    default = defaults.get(name, "")
    region = provider.options.get("region") or defaults.get("region", "")
    return default.replace("{region}", str(region)).rstrip("/")


def option(provider: ProviderConfig, name: str, default: str = "") -> str:
    """A provider option as text (a login's client id, authorize URL...), else ``default``."""
    value = provider.options.get(name)
    return str(value) if value else default
