"""The config models as the engine's types: ``ProviderConfig`` and ``Credential``.

One conversion for everything that hands a row to ``llmproxy``: the snapshot builder,
the health checks and the credential probe.
"""

from __future__ import annotations

from llmproxy.providers.base import Credential as EngineCredential
from llmproxy.providers.base import ProviderConfig
from proxy.models import Credential, Provider


def provider_config(p: Provider) -> ProviderConfig:
    """The engine's view of a provider row."""
    return ProviderConfig(
        name=p.name,
        type=p.type,
        base_url=p.base_url,
        headers=dict(p.headers or {}),
        priority=p.priority,
        weight=p.weight,
        cooldown=p.cooldown_seconds,
        rpm=p.rpm,
        tpm=p.tpm,
        options={**(p.options or {}), "auth_type": p.auth_type},
        proxy=p.proxy,
    )


def engine_credential(c: Credential) -> EngineCredential:
    """The engine's view of a credential row (secrets decrypted; ``id`` lets the gateway ask for a refresh)."""
    return EngineCredential(
        name=c.name,
        provider=c.provider.name if hasattr(c, "provider") else "",
        api_key=c.api_key or None,
        access_token=c.access_token or None,
        refresh_token=c.refresh_token or None,
        expires_at=c.expires_at.timestamp() if c.expires_at else None,
        weight=c.weight,
        extra=dict(c.extra or {}),
        id=c.pk,
    )
