"""Copilot's API address and the editor headers every Copilot call carries.

The executor (``providers.copilot``) and the token exchange (``auth.copilot``) both send
them; kept here, below both, so the providers never import from ``llmproxy.auth`` (which
imports ``providers.base``). Provider options ``editor_version``,
``editor_plugin_version`` and ``integration_id`` override the defaults.
"""

from __future__ import annotations

from .._version import USER_AGENT, VERSION
from .base import ProviderConfig

API_URL = "https://api.githubcopilot.com"
API_VERSION = "2025-04-01"
#: Copilot wants to know the integration; the only one its chat API accepts for this app id.
INTEGRATION_ID = "vscode-chat"


def editor_headers(provider: ProviderConfig) -> dict[str, str]:
    """The editor headers Copilot requires; llmproxy names itself in them."""
    options = provider.options
    return {
        "editor-version": str(options.get("editor_version") or f"llmproxy/{VERSION}"),
        "editor-plugin-version": str(options.get("editor_plugin_version") or f"llmproxy/{VERSION}"),
        "copilot-integration-id": str(options.get("integration_id") or INTEGRATION_ID),
        "user-agent": USER_AGENT,
        "x-github-api-version": API_VERSION,
    }
