"""Running a login to the end, for ``manage.py login`` and the admin: the flow, then the save.

``prepare`` finds the provider whose endpoints the login uses (``resolve_provider``'s
rule; with none yet, the type's defaults and a provider created on success);
``run_login`` drives an ``llmproxy.auth`` flow in its own event loop and stores the
result; ``import_file`` takes an existing token file (llmproxy's format or the vendor
tool's own). The account types come from ``llmproxy.auth.LOGINS``, so a type that
registers a login there (kiro) is served here too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from llmproxy import auth
from llmproxy.http import HTTPClient
from llmproxy.providers.base import ProviderConfig
from proxy.models import Credential

from .accounts import AccountError, resolve_provider, store_login
from .engine_config import provider_config


@dataclass(frozen=True, slots=True)
class Target:
    provider: ProviderConfig
    #: The provider row's name, or None when it will be created on success.
    existing: str | None


def prepare(provider_type: str, provider: str | None = None) -> Target:
    if provider_type not in auth.LOGINS:
        known = ", ".join(sorted(auth.LOGINS))
        raise AccountError(f"no login for type {provider_type!r}; known: {known}")
    try:
        row = resolve_provider(provider_type, provider, create=False)
    except AccountError as exc:
        if provider or not str(exc).startswith("no "):
            raise
        return Target(ProviderConfig(name=provider_type, type=provider_type), None)
    return Target(provider_config(row), row.name)


Show = Callable[[auth.LoginPrompt], "str | None"]


def run_login(target: Target, options: auth.LoginOptions, show: Show) -> Credential:
    """The whole login: ``show`` prints the prompt and returns a pasted code when one is needed."""
    token = asyncio.run(_login(target.provider, options, show))
    if target.existing is None:  # the type's defaults were used: the provider is created now
        token = dataclasses.replace(token, provider=None)
    return store_login(token, provider=target.existing, name=options.name)


async def _login(provider: ProviderConfig, options: auth.LoginOptions, show: Show) -> auth.TokenFile:
    http = HTTPClient()
    try:
        flow = await auth.begin_login(provider, http, options)
        try:
            pasted = await asyncio.to_thread(show, flow.prompt)
            return await flow.complete(pasted if flow.prompt.needs_paste else None)
        finally:
            await flow.close()
    finally:
        await http.close()


def import_file(target: Target, path: str, name: str) -> Credential:
    token = auth.import_token_file(path, target.provider.type)
    return store_login(token, provider=target.existing or token.provider, name=name)
