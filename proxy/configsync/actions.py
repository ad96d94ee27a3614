"""Every state change of providers, credentials and model routes: small, atomic, validated.

What the management API and the admin change one row at a time (a config file changes
many at once: ``apply``). Every function validates with the model's own rules
(``full_clean``) and raises ``ValidationFailed`` naming the fields, so the API answers 422
instead of a database error. Saving a config model bumps the shared config version
through the signals in ``proxy/signals.py``; nothing here has to remember to do it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from accounts.validation import ValidationFailed, assign, validated_save
from llmproxy import translator
from llmproxy.http import mask_proxy
from proxy.crypto import mask
from proxy.models import Credential, ModelRoute, Provider

PROVIDER_FIELDS = ("name", "type", "enabled", "base_url", "auth_type", "priority", "weight", "cooldown_seconds",
                   "rpm", "tpm", "headers", "options", "proxy")  # fmt: skip
CREDENTIAL_FIELDS = ("name", "enabled", "weight", "api_key", "access_token", "refresh_token", "expires_at", "file",
                     "extra")  # fmt: skip
ROUTE_FIELDS = ("provider", "name", "upstream", "enabled", "input_price", "output_price", "cached_input_price")
SECRET_FIELDS = ("api_key", "access_token", "refresh_token")


def masked_proxy(url: str) -> str:
    """A provider's proxy URL as the API and the admin show it: the password masked."""
    return mask_proxy(url, "****") if url else ""


def _unmask_mapping(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """Where a client sent back a masked value unchanged, keep the stored one (GET -> PATCH round trips)."""
    out = dict(new)
    for name, value in new.items():
        before = old.get(name)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            out[name] = _unmask_mapping(value, before)
        elif isinstance(value, str) and isinstance(before, str) and before and value == mask(before) != before:
            out[name] = before
    return out


# --- providers, credentials, model routes ---------------------------------------------


def _check_translator(data: Mapping[str, Any]) -> None:
    """``options.translator`` names a translator registered in this process (422 otherwise)."""
    options = data.get("options")
    name = options.get("translator") if isinstance(options, Mapping) else None
    if name is not None and name not in translator.names():
        raise ValidationFailed.one("options", f"unknown translator {name!r}; known: {', '.join(translator.names())}")


@transaction.atomic
def create_provider(data: Mapping[str, Any]) -> Provider:
    _check_translator(data)
    provider = Provider()
    assign(provider, data, PROVIDER_FIELDS)
    return validated_save(provider)


@transaction.atomic
def update_provider(provider: Provider, data: Mapping[str, Any]) -> Provider:
    _check_translator(data)
    data = dict(data)
    if isinstance(data.get("headers"), Mapping):
        data["headers"] = _unmask_mapping(data["headers"], provider.headers or {})
    if provider.proxy and data.get("proxy") == masked_proxy(provider.proxy) != provider.proxy:
        del data["proxy"]  # the masked value read back unchanged: keep the stored password
    assign(provider, data, PROVIDER_FIELDS)
    return validated_save(provider)


@transaction.atomic
def delete_provider(provider: Provider) -> None:
    """Delete a provider with its credentials and model routes."""
    provider.delete()


@transaction.atomic
def create_credential(provider: Provider, data: Mapping[str, Any]) -> Credential:
    credential = Credential(provider=provider)
    assign(credential, data, CREDENTIAL_FIELDS)
    return validated_save(credential)


@transaction.atomic
def update_credential(credential: Credential, data: Mapping[str, Any]) -> Credential:
    """Change a credential; secrets are replaced only when given (they are never read back)."""
    fields = dict(data)
    if "provider" in fields:
        credential.provider = fields.pop("provider")
    for name in SECRET_FIELDS:
        current = getattr(credential, name)
        if current and fields.get(name) == mask(current) != current:
            del fields[name]
    if isinstance(fields.get("extra"), Mapping):
        fields["extra"] = _unmask_mapping(fields["extra"], credential.extra or {})
    assign(credential, fields, CREDENTIAL_FIELDS)
    return validated_save(credential)


@transaction.atomic
def delete_credential(credential: Credential) -> None:
    credential.delete()


@transaction.atomic
def create_route(data: Mapping[str, Any]) -> ModelRoute:
    route = ModelRoute()
    assign(route, data, ROUTE_FIELDS)
    return validated_save(route)


@transaction.atomic
def update_route(route: ModelRoute, data: Mapping[str, Any]) -> ModelRoute:
    assign(route, data, ROUTE_FIELDS)
    return validated_save(route)


@transaction.atomic
def delete_route(route: ModelRoute) -> None:
    route.delete()


def find_provider(ref: int | str) -> Provider:
    """A provider by id or by name (what API payloads and config files use)."""
    lookup = {"pk": ref} if isinstance(ref, int) else {"name": ref}
    try:
        return Provider.objects.get(**lookup)
    except Provider.DoesNotExist:
        raise ValidationFailed.one("provider", f"no provider {ref!r}") from None
