"""Management API operations: the providers' health, and the config as one YAML file (export and import).

Importing validates the whole file first and applies it in one transaction
(``proxy.configsync.apply``), exactly as the watched file and ``import_config`` do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema
from ninja.errors import HttpError

from accounts.validation import ValidationFailed
from llmproxy.config import ConfigError, content_hash, loads
from proxy.configsync import apply
from proxy.models import Credential, HealthState, Provider

from .auth import staff

ops_router = Router(tags=["operations"])


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
    if with_secrets and not staff(request).is_superuser:
        raise HttpError(403, "only a superuser may export secrets")
    staff(request)
    return HttpResponse(apply.export_config(with_secrets=with_secrets), content_type="application/yaml; charset=utf-8")


@ops_router.post("/config", response={200: ConfigImported}, tags=["config"], openapi_extra=CONFIG_BODY)
def import_config(request: HttpRequest, dry_run: bool = False) -> dict[str, Any]:
    """Validate a config.yaml (the request body) and apply it in one transaction (``?dry_run=true``: validate only).

    A file with errors changes nothing; each error comes back with its path in the file.
    """
    text = request.body.decode("utf-8", "replace")
    source = f"api:{staff(request).username}"
    try:
        config = loads(text, source)
    except ConfigError as exc:
        if not dry_run:
            apply.record_rejection(source, exc.issues, content_hash(text))
        raise _config_errors([(i.path, i.reason) for i in exc.issues]) from None
    if dry_run:
        return {"id": None, "ok": True, "changes": {}}
    result = apply.apply_config(config, source)
    if not result.ok:
        raise _config_errors([(e.get("path", ""), e.get("reason", "")) for e in result.errors])
    return {"id": result.pk, "ok": True, "changes": result.changes}


def _config_errors(issues: list[tuple[str, str]]) -> ValidationFailed:
    errors: dict[str, list[str]] = {}
    for path, reason in issues:
        errors.setdefault(path or "config", []).append(reason)
    return ValidationFailed(errors)
