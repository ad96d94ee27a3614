"""The snapshot builder: every config model read once into an immutable ``llmproxy.Runtime``.

The serving process's engine (``process_engine``) calls ``build_runtime`` off the request
path whenever the shared config version (``proxy.configsync.version``) moved, and swaps
the result in with one reference; in-flight requests finish on the snapshot they
started with.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.models import ApiKey, User
from accounts.periods import current_period_start
from llmproxy.providers.base import Credential as EngineCredential
from llmproxy.providers.base import ProviderConfig
from llmproxy.runtime import ApiKeyInfo, Price, Route, Runtime, UserLimits
from proxy.configsync.engine_config import engine_credential, provider_config
from proxy.configsync.version import current_version
from proxy.models import HealthState, HealthStatus, Provider

from .site_config import (
    clients_settings,
    images_settings,
    limit_settings,
    read_site_config,
    responses_settings,
    routing_settings,
)
from .spend import settled_spend


def build_runtime(version: int | None = None) -> Runtime:
    """Read every config model once and return an immutable snapshot."""
    version = current_version() if version is None else version
    routes: list[Route] = []
    providers = Provider.objects.filter(enabled=True).prefetch_related("credentials", "routes")
    for p in providers:
        pconf = provider_config(p)
        creds = tuple(engine_credential(c) for c in p.credentials.all() if c.enabled)
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
    users = {u.pk: _user_limits(u) for u in User.objects.filter(is_active=True)}
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
            allow_overrides=k.allow_overrides,
            is_staff=k.user.is_staff,
            rpm=k.rpm,
            tpm=k.tpm,
            budget_usd=float(k.budget_usd) if k.budget_usd is not None else None,
            budget_period=k.budget_period,
            period_started_at=k.period_started_at.timestamp() if k.period_started_at else None,
            max_parallel=k.max_parallel,
            user=users.get(k.user_id),
            **_floor(k),
        )
        for k in ApiKey.objects.select_related("user")
    ]
    unhealthy = frozenset(
        HealthStatus.objects.filter(state=HealthState.UNHEALTHY).values_list("credential_id", flat=True)
    )
    site = read_site_config()
    return Runtime.build(
        routes=routes,
        keys=keys,
        version=version,
        max_body_bytes=settings.LLMPROXY["MAX_BODY_BYTES"],
        routing=routing_settings(site),
        unhealthy=unhealthy,
        limits=limit_settings(site),
        images=images_settings(site),
        responses=responses_settings(site),
        clients=clients_settings(site),
        extra_secrets=site_secrets(),
    )


def site_secrets() -> tuple[str, ...]:
    """The shell's own secrets, kept out of responses and logs like the providers' ones."""
    values = [settings.SECRET_KEY, *settings.LLMPROXY_ENCRYPTION_KEYS, settings.LLMPROXY.get("METRICS_TOKEN") or ""]
    return tuple(v for v in values if v)


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


def _floor(holder: ApiKey | User) -> dict[str, Any]:
    """What the usage records show as spent this period: the live counter's floor.

    After Redis lost its counters (or on a fresh start) the limiter reads this instead of
    zero; it is a lower bound of the truth, so taking the larger of it and a live counter
    never counts anything twice."""
    if holder.budget_usd is None:
        return {"spent_usd": 0.0, "spent_period_start": None}
    start = current_period_start(holder)
    return {"spent_usd": float(settled_spend(holder)), "spent_period_start": start.timestamp() if start else 0.0}


def _user_limits(u: User) -> UserLimits:
    return UserLimits(id=u.pk, rpm=u.rpm, tpm=u.tpm, max_parallel=u.max_parallel,
                      budget_usd=float(u.budget_usd) if u.budget_usd is not None else None,
                      budget_period=u.budget_period,
                      period_started_at=u.period_started_at.timestamp() if u.period_started_at else None,
                      **_floor(u))  # fmt: skip


__all__ = ["build_runtime", "site_secrets"]
