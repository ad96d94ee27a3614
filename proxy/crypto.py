"""Provider secrets: encryption at rest (Fernet, with key rotation) and masking wherever shown.

``LLMPROXY_ENCRYPTION_KEY`` may list several keys, comma-separated: the first encrypts,
all decrypt, so rotating is "prepend a new key, re-save, drop the old one".
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

PREFIX = "fernet:"
_SENSITIVE_WORDS = ("authorization", "key", "token", "secret", "password", "cookie")


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys if k.strip()])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.LLMPROXY_ENCRYPTION_KEYS))


def encrypt(plain: str) -> str:
    if not plain:
        return ""
    return PREFIX + _current().encrypt(plain.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _current().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ValueError("a stored secret cannot be decrypted with LLMPROXY_ENCRYPTION_KEY") from None


def mask(secret: str | None) -> str:
    """What a secret looks like wherever it is shown: enough to recognise, not to use."""
    if not secret:
        return ""
    if len(secret) <= 8:
        return "••••"
    return f"{secret[:4]}…{secret[-4:]}"


def is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS)


def masked_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of headers/options/extra with the values of secret-looking names masked."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, Mapping):
            out[name] = masked_mapping(value)
        elif isinstance(value, str) and is_sensitive(name):
            out[name] = mask(value)
        else:
            out[name] = value
    return out
