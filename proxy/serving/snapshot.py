"""The runtime snapshot: built from the models, versioned, swapped in every process.

Every change to a config model bumps a version after commit, in a place all processes
see: Redis when ``REDIS_URL`` is set, the database row ``ConfigVersion`` always. Each
serving process polls that version cheaply (off the request path); when it moved, it
rebuilds the snapshot in a thread and swaps one reference.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum

from llmproxy.providers.base import Credential as EngineCredential
from llmproxy.providers.base import ProviderConfig
from llmproxy.runtime import ApiKeyInfo, Price, Route, RoutingSettings, Runtime

from .models import ConfigVersion, Credential, HealthState, HealthStatus, ModelRoute, Provider, UsageRecord

log = logging.getLogger("llmproxy.runtime")
REDIS_VERSION_KEY = "llmproxy:config_version"


def _redis() -> Any:
    url = settings.REDIS_URL
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=2)


def bump_config_version() -> None:
    """Schedule a version bump for when the current transaction commits."""
    transaction.on_commit(_bump_now)


def _bump_now() -> None:
    updated = ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
    if not updated:
        _obj, created = ConfigVersion.objects.get_or_create(pk=1, defaults={"version": 1})
        if not created:
            ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
    r = _redis()
    if r is not None:
        try:
            r.incr(REDIS_VERSION_KEY)
        except Exception:
            log.warning("could not bump the config version in Redis; processes fall back to the database")


def current_version() -> int:
    """The shared version (Redis plus database, so neither alone can hide a change)."""
    row = ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0
    r = _redis()
    if r is not None:
        try:
            return int(row) * 1_000_000 + int(r.get(REDIS_VERSION_KEY) or 0)
        except Exception:
            pass
    return int(row)


def build_runtime(version: int | None = None) -> Runtime:
    """Read every config model once and return an immutable snapshot."""
    from accounts.models import ApiKey

    version = current_version() if version is None else version
    routes: list[Route] = []
    providers = Provider.objects.filter(enabled=True).prefetch_related("credentials", "routes")
    for p in providers:
        pconf = provider_config(p)
        creds = tuple(_credential(c) for c in p.credentials.all() if c.enabled)
        for r in p.routes.all():
            if not r.enabled:
                continue
            price = None
            if r.input_price is not None or r.output_price is not None:
                price = Price(
                    float(r.input_price or 0),
                    float(r.output_price or 0),
                    float(r.cached_input_price) if r.cached_input_price is not None else None,
                )
            routes.append(Route(r.name, r.upstream_name, pconf, creds, price))
            routes.extend(_extra_routes(pconf, r.name, r.upstream_name, creds, price))
    keys = [
        ApiKeyInfo(
            key_hash=k.key_hash,
            prefix=k.prefix,
            id=k.pk,
            user_id=k.user_id,
            username=k.user.username,
            name=k.name,
            allowed_models=frozenset(k.allowed_models) if k.allowed_models else None,
            expires_at=k.expires_at.timestamp() if k.expires_at else None,
            revoked=k.revoked or not k.user.is_active,
            is_admin=k.is_admin,
            is_staff=k.user.is_staff,
            rpm=k.rpm,
            tpm=k.tpm,
            budget_usd=float(k.budget_usd) if k.budget_usd is not None else None,
            budget_period=k.budget_period,
            period_started_at=k.period_started_at.timestamp() if k.period_started_at else None,
            spent_usd=_settled_spend(k) if k.budget_usd is not None else 0.0,
        )
        for k in ApiKey.objects.select_related("user")
    ]
    unhealthy = frozenset(
        HealthStatus.objects.filter(state=HealthState.UNHEALTHY).values_list("credential_id", flat=True)
    )
    return Runtime.build(
        routes=routes,
        keys=keys,
        version=version,
        max_body_bytes=settings.LLMPROXY["MAX_BODY_BYTES"],
        routing=routing_settings(),
        unhealthy=unhealthy,
    )


def routing_settings() -> RoutingSettings:
    """The ``routing:`` section of ``LLMPROXY_CONFIG`` (re-read at every snapshot build, so
    editing it hot-reloads), else ``settings.LLMPROXY["ROUTING"]``, else the defaults."""
    path = settings.LLMPROXY.get("CONFIG")
    if path:
        from llmproxy.config import ConfigError, load

        try:
            return load(path).routing
        except (ConfigError, OSError) as exc:
            log.error("routing settings from %s not applied, keeping the defaults: %s", path, exc)
    try:
        return RoutingSettings.from_mapping(settings.LLMPROXY.get("ROUTING"))
    except ValueError as exc:
        log.error("ignoring invalid routing settings, using the defaults: %s", exc)
        return RoutingSettings()


def _extra_routes(
    pconf: ProviderConfig, name: str, upstream: str, creds: tuple[EngineCredential, ...], price: Price | None
) -> list[Route]:
    """Provider options: ``upstreams`` {public name: [upstream, ...]} lets one name fall back
    over several upstream models; ``aliases`` {alias: public name} gives a route more names."""
    alts = [u for u in (pconf.options.get("upstreams") or {}).get(name) or () if isinstance(u, str) and u != upstream]
    aliases = [a for a, target in (pconf.options.get("aliases") or {}).items() if target == name and a != name]
    out = [Route(name, u, pconf, creds, price) for u in alts]
    out += [Route(alias, u, pconf, creds, price) for alias in aliases for u in [upstream, *alts]]
    return out


def _settled_spend(key: Any) -> float:
    """Spend of a key in its current period, as far as the usage table knows (the counter's floor)."""
    rows = UsageRecord.objects.filter(key_id=key.pk)
    if key.period_started_at is not None:
        rows = rows.filter(created_at__gte=key.period_started_at)
    return float(rows.aggregate(total=Sum("cost_usd"))["total"] or 0)


def provider_config(p: Provider) -> ProviderConfig:
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
        options=dict(p.options or {}),
    )


def _credential(c: Credential) -> EngineCredential:
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


__all__ = ["ModelRoute", "build_runtime", "bump_config_version", "current_version"]
