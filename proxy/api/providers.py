"""Management API resources for the config models: providers, credentials (and their probe), model routes.

Handlers parse, check the caller and call one function in ``proxy.configsync.actions``;
they never write to the ORM themselves. Secrets are only ever shown masked.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Schema, Status

from proxy.configsync import actions
from proxy.crypto import mask, masked_mapping
from proxy.jobs.probes import as_api, probe_credential
from proxy.models import AuthType, Credential, HealthState, ModelRoute, Provider, ProviderType

from .auth import staff

providers_router = Router(tags=["providers"])
credentials_router = Router(tags=["credentials"])
models_router = Router(tags=["models"])


class ProviderIn(Schema):
    name: str
    type: ProviderType
    enabled: bool = True
    base_url: str = ""
    auth_type: AuthType = AuthType.API_KEY
    priority: int = 0
    weight: int = 1
    cooldown_seconds: float = 60.0
    rpm: int | None = None
    tpm: int | None = None
    headers: dict[str, str] = {}
    options: dict[str, Any] = {}
    proxy: str = ""


class ProviderPatch(Schema):
    name: str | None = None
    type: ProviderType | None = None
    enabled: bool | None = None
    base_url: str | None = None
    auth_type: AuthType | None = None
    priority: int | None = None
    weight: int | None = None
    cooldown_seconds: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    headers: dict[str, str] | None = None
    options: dict[str, Any] | None = None
    proxy: str | None = None


class ProviderOut(Schema):
    id: int
    name: str
    type: str
    enabled: bool
    base_url: str
    auth_type: str
    priority: int
    weight: int
    cooldown_seconds: float
    rpm: int | None
    tpm: int | None
    headers: dict[str, Any]
    options: dict[str, Any]
    proxy: str
    from_config: bool
    credentials: int
    models: list[str]
    created_at: datetime
    updated_at: datetime


def _provider_out(p: Provider) -> dict[str, Any]:
    return {
        **{f: getattr(p, f) for f in ("id", "name", "type", "enabled", "base_url", "auth_type", "priority", "weight",
                                      "cooldown_seconds", "rpm", "tpm", "from_config", "created_at", "updated_at")},
        "headers": masked_mapping(p.headers or {}),
        "options": masked_mapping(p.options or {}),
        "proxy": actions.masked_proxy(p.proxy),
        "credentials": p.credentials.count(),
        "models": sorted(p.routes.values_list("name", flat=True)),
    }  # fmt: skip


@providers_router.get("", response=list[ProviderOut])
def list_providers(request: HttpRequest) -> list[dict[str, Any]]:
    staff(request)
    return [_provider_out(p) for p in Provider.objects.all()]


@providers_router.post("", response={201: ProviderOut})
def create_provider(request: HttpRequest, payload: ProviderIn) -> Status[dict[str, Any]]:
    staff(request)
    return Status(201, _provider_out(actions.create_provider(payload.model_dump())))


@providers_router.get("/{int:provider_id}", response=ProviderOut)
def get_provider(request: HttpRequest, provider_id: int) -> dict[str, Any]:
    staff(request)
    return _provider_out(get_object_or_404(Provider, pk=provider_id))


@providers_router.patch("/{int:provider_id}", response=ProviderOut)
def update_provider(request: HttpRequest, provider_id: int, payload: ProviderPatch) -> dict[str, Any]:
    staff(request)
    provider = get_object_or_404(Provider, pk=provider_id)
    return _provider_out(actions.update_provider(provider, payload.model_dump(exclude_unset=True)))


@providers_router.delete("/{int:provider_id}", response={204: None})
def delete_provider(request: HttpRequest, provider_id: int) -> Status[None]:
    staff(request)
    actions.delete_provider(get_object_or_404(Provider, pk=provider_id))
    return Status(204, None)


class CredentialIn(Schema):
    provider: int | str
    name: str
    enabled: bool = True
    weight: int = 1
    api_key: str = ""
    access_token: str = ""
    refresh_token: str = ""
    expires_at: datetime | None = None
    file: str = ""
    extra: dict[str, Any] = {}


class CredentialPatch(Schema):
    provider: int | str | None = None
    name: str | None = None
    enabled: bool | None = None
    weight: int | None = None
    api_key: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: datetime | None = None
    file: str | None = None
    extra: dict[str, Any] | None = None


class CredentialOut(Schema):
    id: int
    provider_id: int
    provider: str
    name: str
    enabled: bool
    weight: int
    api_key: str
    access_token: str
    refresh_token: str
    expires_at: datetime | None
    file: str
    extra: dict[str, Any]
    health: str
    created_at: datetime
    updated_at: datetime


def _credential_out(c: Credential) -> dict[str, Any]:
    """A credential with its secrets masked: enough to recognise one, never to use it."""
    health = getattr(c, "health", None)
    return {
        **{f: getattr(c, f) for f in ("id", "provider_id", "name", "enabled", "weight", "expires_at", "file",
                                      "created_at", "updated_at")},
        **{f: mask(getattr(c, f)) for f in actions.SECRET_FIELDS},
        "provider": c.provider.name,
        "extra": masked_mapping(c.extra or {}),
        "health": health.state if health is not None else HealthState.UNKNOWN,
    }  # fmt: skip


def _credentials() -> QuerySet[Credential]:
    return Credential.objects.select_related("provider", "health")


@credentials_router.get("", response=list[CredentialOut])
def list_credentials(request: HttpRequest, provider: str | None = None) -> list[dict[str, Any]]:
    """All credentials, or those of one provider (``?provider=`` name)."""
    staff(request)
    qs = _credentials()
    if provider:
        qs = qs.filter(provider__name=provider)
    return [_credential_out(c) for c in qs]


@credentials_router.post("", response={201: CredentialOut})
def create_credential(request: HttpRequest, payload: CredentialIn) -> Status[dict[str, Any]]:
    staff(request)
    data = payload.model_dump()
    provider = actions.find_provider(data.pop("provider"))
    return Status(201, _credential_out(actions.create_credential(provider, data)))


@credentials_router.get("/{int:credential_id}", response=CredentialOut)
def get_credential(request: HttpRequest, credential_id: int) -> dict[str, Any]:
    staff(request)
    return _credential_out(get_object_or_404(_credentials(), pk=credential_id))


@credentials_router.patch("/{int:credential_id}", response=CredentialOut)
def update_credential(request: HttpRequest, credential_id: int, payload: CredentialPatch) -> dict[str, Any]:
    staff(request)
    credential = get_object_or_404(_credentials(), pk=credential_id)
    data = payload.model_dump(exclude_unset=True)
    if "provider" in data:
        data["provider"] = actions.find_provider(data["provider"])
    return _credential_out(actions.update_credential(credential, data))


@credentials_router.delete("/{int:credential_id}", response={204: None})
def delete_credential(request: HttpRequest, credential_id: int) -> Status[None]:
    staff(request)
    actions.delete_credential(get_object_or_404(Credential, pk=credential_id))
    return Status(204, None)


class ProbeOut(Schema):
    ok: bool
    status: int | None
    latency_ms: int
    error: str
    model: str


@credentials_router.post("/{int:credential_id}/test", response=ProbeOut)
def test_credential(request: HttpRequest, credential_id: int, model: str | None = None) -> dict[str, Any]:
    """One real one-token request upstream with this credential (``?model=`` upstream name, else the first route's)."""
    staff(request)
    credential = get_object_or_404(_credentials(), pk=credential_id)
    return as_api(probe_credential(credential, model=model))


class RouteIn(Schema):
    provider: int | str
    name: str
    upstream: str = ""
    enabled: bool = True
    input_price: Decimal | None = None
    output_price: Decimal | None = None
    cached_input_price: Decimal | None = None


class RoutePatch(Schema):
    provider: int | str | None = None
    name: str | None = None
    upstream: str | None = None
    enabled: bool | None = None
    input_price: Decimal | None = None
    output_price: Decimal | None = None
    cached_input_price: Decimal | None = None


class RouteOut(Schema):
    id: int
    provider_id: int
    provider: str
    name: str
    upstream: str
    upstream_name: str
    enabled: bool
    input_price: float | None
    output_price: float | None
    cached_input_price: float | None


def _route_out(r: ModelRoute) -> dict[str, Any]:
    prices = {f: None if getattr(r, f) is None else float(getattr(r, f))
              for f in ("input_price", "output_price", "cached_input_price")}  # fmt: skip
    return {"id": r.pk, "provider_id": r.provider_id, "provider": r.provider.name, "name": r.name,
            "upstream": r.upstream, "upstream_name": r.upstream_name, "enabled": r.enabled, **prices}  # fmt: skip


def _route_data(payload: RouteIn | RoutePatch, *, partial: bool) -> dict[str, Any]:
    data = payload.model_dump(exclude_unset=partial)
    if "provider" in data:
        data["provider"] = actions.find_provider(data["provider"])
    return data


@models_router.get("", response=list[RouteOut])
def list_models(request: HttpRequest, provider: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    staff(request)
    qs = ModelRoute.objects.select_related("provider")
    if provider:
        qs = qs.filter(provider__name=provider)
    if name:
        qs = qs.filter(name=name)
    return [_route_out(r) for r in qs]


@models_router.post("", response={201: RouteOut})
def create_model(request: HttpRequest, payload: RouteIn) -> Status[dict[str, Any]]:
    staff(request)
    return Status(201, _route_out(actions.create_route(_route_data(payload, partial=False))))


@models_router.get("/{int:route_id}", response=RouteOut)
def get_model(request: HttpRequest, route_id: int) -> dict[str, Any]:
    staff(request)
    return _route_out(get_object_or_404(ModelRoute.objects.select_related("provider"), pk=route_id))


@models_router.patch("/{int:route_id}", response=RouteOut)
def update_model(request: HttpRequest, route_id: int, payload: RoutePatch) -> dict[str, Any]:
    staff(request)
    route = get_object_or_404(ModelRoute, pk=route_id)
    return _route_out(actions.update_route(route, _route_data(payload, partial=True)))


@models_router.delete("/{int:route_id}", response={204: None})
def delete_model(request: HttpRequest, route_id: int) -> Status[None]:
    staff(request)
    actions.delete_route(get_object_or_404(ModelRoute, pk=route_id))
    return Status(204, None)
