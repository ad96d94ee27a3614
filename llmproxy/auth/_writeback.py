"""Refreshed tokens back into the token file they came from (write temp + rename)."""

from __future__ import annotations

import asyncio
import logging

from ..providers.base import Credential, ProviderConfig
from ._files import TOKEN_TYPES, TokenFile, TokenFileError, TokenType, read_token_file, write_token_file
from ._tokens import TokenSet

log = logging.getLogger("llmproxy.auth")


def token_file_for(provider: ProviderConfig, cred: Credential, previous: TokenFile | None = None) -> TokenFile:
    """The token file that holds ``cred`` now (type-specific fields from its extra)."""
    spec = TOKEN_TYPES.get(provider.type, TokenType())
    extra = {k: cred.extra[k] for k in spec.fields if cred.extra.get(k) is not None}
    return TokenFile(provider.type, previous.path if previous else "", previous.provider if previous else None,
                     cred.access_token, cred.refresh_token, cred.expires_at, extra)  # fmt: skip


async def write_back(provider: ProviderConfig, cred: Credential, tokens: TokenSet) -> None:
    """``TokenKeeper.on_refreshed`` for library use: rewrite the credential's ``extra["file"]``."""
    path = cred.extra.get("file")
    if not isinstance(path, str) or not path:
        return
    try:
        previous = read_token_file(path)
    except TokenFileError as exc:
        log.warning("not writing refreshed tokens of %s/%s back: %s", provider.name, cred.name, exc)
        return
    await asyncio.to_thread(write_token_file, path, token_file_for(provider, cred, previous))
