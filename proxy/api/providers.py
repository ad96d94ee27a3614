"""The management REST API (``/api/v1/``): providers, credentials, model routes, health, config.

Handlers parse, check the caller and call one function in ``proxy.services`` (or the
config actions); they never write to the ORM themselves. Users, keys and usage live in
``accounts.api`` and ``proxy.api_usage`` and are mounted here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import NinjaAPI, Router, Schema, Status
from ninja.errors import HttpError

from . import probe, services
from .api_common import AUTH, detail, staff
from .crypto import mask
from .models import AuthType, Credential, HealthState, ModelRoute, Provider, ProviderType

log = logging.getLogger("llmproxy.api")

api = NinjaAPI(
    title="llmproxy management API",
    version="1",
    description="Manage providers, credentials, model routes, users, API keys and usage. "
    "Authenticate with a browser session or `Authorization: Bearer <key>` of a key created with `--admin`.",
    urls_namespace="api-v1",
    auth=AUTH,
)


@api.exception_handler(services.ValidationFailed)
def _validation_failed(request: HttpRequest, exc: services.ValidationFailed) -> HttpResponse:
    return api.create_response(request, detail(exc.errors), status=exc.status)


@api.exception_handler(services.ServiceError)
def _service_error(request: HttpRequest, exc: services.ServiceError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message}, status=exc.status)


class Message(Schema):
    detail: str


providers_router = Router(tags=["providers"])
credentials_router = Router(tags=["credentials"])
models_router = Router(tags=["models"])
ops_router = Router(tags=["operations"])


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
    from_config: bool
    credentials: int
    models: list[str]
    created_at: datetime
    updated_at: datetime


def _provider_out(p: Provider) -> dict[str, Any]:
    return {
        **{f: getattr(p, f) for f in ("id", "name", "type", "enabled", "base_url", "auth_type", "priority", "weight",
                                      "cooldown_seconds", "rpm", "tpm", "from_config", "created_at", "updated_at")},
        "headers": services.masked_mapping(p.headers or {}),
        "options": services.masked_mapping(p.options or {}),
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
    return Status(201, _provider_out(services.create_provider(payload.model_dump())))


@providers_router.get("/{int:provider_id}", response=ProviderOut)
def get_provider(request: HttpRequest, provider_id: int) -> dict[str, Any]:
    staff(request)
    return _provider_out(get_object_or_404(Provider, pk=provider_id))


@providers_router.patch("/{int:provider_id}", response=ProviderOut)
def update_provider(request: HttpRequest, provider_id: int, payload: ProviderPatch) -> dict[str, Any]:
    staff(request)
    provider = get_object_or_404(Provider, pk=provider_id)
    return _provider_out(services.update_provider(provider, payload.model_dump(exclude_unset=True)))


@providers_router.delete("/{int:provider_id}", response={204: None})
def delete_provider(request: HttpRequest, provider_id: int) -> Status[None]:
    staff(request)
    services.delete_provider(get_object_or_404(Provider, pk=provider_id))
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
        **{f: mask(getattr(c, f)) for f in services.SECRET_FIELDS},
        "provider": c.provider.name,
        "extra": services.masked_mapping(c.extra or {}),
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
    provider = services.find_provider(data.pop("provider"))
    return Status(201, _credential_out(services.create_credential(provider, data)))


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
        data["provider"] = services.find_provider(data["provider"])
    return _credential_out(services.update_credential(credential, data))


@credentials_router.delete("/{int:credential_id}", response={204: None})
def delete_credential(request: HttpRequest, credential_id: int) -> Status[None]:
    staff(request)
    services.delete_credential(get_object_or_404(Credential, pk=credential_id))
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
    return probe.probe_credential(credential, model=model).as_dict()


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
        data["provider"] = services.find_provider(data["provider"])
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
    return Status(201, _route_out(services.create_route(_route_data(payload, partial=False))))


@models_router.get("/{int:route_id}", response=RouteOut)
def get_model(request: HttpRequest, route_id: int) -> dict[str, Any]:
    staff(request)
    return _route_out(get_object_or_404(ModelRoute.objects.select_related("provider"), pk=route_id))


@models_router.patch("/{int:route_id}", response=RouteOut)
def update_model(request: HttpRequest, route_id: int, payload: RoutePatch) -> dict[str, Any]:
    staff(request)
    route = get_object_or_404(ModelRoute, pk=route_id)
    return _route_out(services.update_route(route, _route_data(payload, partial=True)))


@models_router.delete("/{int:route_id}", response={204: None})
def delete_model(request: HttpRequest, route_id: int) -> Status[None]:
    staff(request)
    services.delete_route(get_object_or_404(ModelRoute, pk=route_id))
    return Status(204, None)


class CredentialHealth(Schema):
    id: int
    name: str
    enabled: bool
    state: str
    latency_ms: int | None
    error: str
    consecutive_failures: int
    checked_at: datetime | None


class ProviderHealth(Schema):
    id: int
    provider: str
    enabled: bool
    state: str
    credentials: list[CredentialHealth]


@ops_router.get("/health", response=list[ProviderHealth], tags=["health"])
def health(request: HttpRequest) -> list[dict[str, Any]]:
    """Each provider's credentials with their last probe; a provider is healthy when one usable credential is."""
    staff(request)
    out = []
    for p in Provider.objects.prefetch_related("credentials__health"):
        creds = [_credential_health(c) for c in p.credentials.all()]
        states = {c["state"] for c in creds if c["enabled"]}
        if HealthState.HEALTHY in states:
            state = HealthState.HEALTHY
        elif states == {HealthState.UNHEALTHY}:
            state = HealthState.UNHEALTHY
        else:
            state = HealthState.UNKNOWN
        out.append({"id": p.pk, "provider": p.name, "enabled": p.enabled, "state": state, "credentials": creds})
    return out


def _credential_health(c: Credential) -> dict[str, Any]:
    h = getattr(c, "health", None)
    return {"id": c.pk, "name": c.name, "enabled": c.enabled,
            "state": h.state if h else HealthState.UNKNOWN, "latency_ms": h.latency_ms if h else None,
            "error": h.error if h else "", "consecutive_failures": h.consecutive_failures if h else 0,
            "checked_at": h.checked_at if h else None}  # fmt: skip


class ConfigImported(Schema):
    id: int | None  # the ConfigImport row (None on a dry run)
    ok: bool
    changes: dict[str, Any]


CONFIG_BODY = {"requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}}
CONFIG_YAML = {"responses": {200: {"description": "config.yaml", "content": {"application/yaml": {}}}}}


@ops_router.get("/config", response={200: None}, tags=["config"], openapi_extra=CONFIG_YAML)
def export_config(request: HttpRequest, with_secrets: bool = False) -> HttpResponse:
    """The providers, credentials and model routes as config.yaml; secrets redacted unless a superuser asks."""
    from .actions import export_config

    if with_secrets and not staff(request).is_superuser:
        raise HttpError(403, "only a superuser may export secrets")
    staff(request)
    return HttpResponse(export_config(with_secrets=with_secrets), content_type="application/yaml; charset=utf-8")


@ops_router.post("/config", response={200: ConfigImported}, tags=["config"], openapi_extra=CONFIG_BODY)
def import_config(request: HttpRequest, dry_run: bool = False) -> dict[str, Any]:
    """Validate a config.yaml (the request body) and apply it in one transaction (``?dry_run=true``: validate only).

    A file with errors changes nothing; each error comes back with its path in the file.
    """
    from llmproxy.config import ConfigError, content_hash, loads

    from .actions import apply_config, record_rejection

    text = request.body.decode("utf-8", "replace")
    source = f"api:{staff(request).username}"
    try:
        config = loads(text, source)
    except ConfigError as exc:
        if not dry_run:
            record_rejection(source, exc.issues, content_hash(text))
        raise _config_errors([(i.path, i.reason) for i in exc.issues]) from None
    if dry_run:
        return {"id": None, "ok": True, "changes": {}}
    result = apply_config(config, source)
    if not result.ok:
        raise _config_errors([(e.get("path", ""), e.get("reason", "")) for e in result.errors])
    return {"id": result.pk, "ok": True, "changes": result.changes}


def _config_errors(issues: list[tuple[str, str]]) -> services.ValidationFailed:
    errors: dict[str, list[str]] = {}
    for path, reason in issues:
        errors.setdefault(path or "config", []).append(reason)
    return services.ValidationFailed(errors)


def _mount() -> None:
    from accounts.api import keys_router, users_router

    from .api_usage import usage_router

    api.add_router("/providers", providers_router)
    api.add_router("/credentials", credentials_router)
    api.add_router("/models", models_router)
    api.add_router("/users", users_router)
    api.add_router("/keys", keys_router)
    api.add_router("/usage", usage_router)
    api.add_router("/", ops_router)


_mount()
__all__ = ["api"]
