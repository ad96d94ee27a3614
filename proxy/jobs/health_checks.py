"""Health checks of every enabled credential: probe each one, record its verdict.

``run_health_checks`` (a Celery beat task every 30 s, ``proxy.tasks.health_checks``)
probes each enabled credential cheaply (``llmproxy.health.probe``) and writes its
``HealthStatus``. Routing learns of it through the snapshot: ``build_runtime`` reads the
unhealthy ids, and a change of any credential's verdict bumps the config version, so
every process, with or without Redis, rebuilds and skips (or takes back) that
credential within one poll. Verdicts change rarely, so the rebuilds are rare too. What
the admin shows of each credential (verdict plus live cooldowns) is
``proxy.serving.routing_state``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch
from django.utils import timezone

from llmproxy import providers
from llmproxy.health import ProbeResult, probe
from llmproxy.http import HTTPClient
from proxy.configsync.engine_config import engine_credential, provider_config
from proxy.configsync.version import bump_config_version
from proxy.models import Credential, HealthState, HealthStatus, ModelRoute

log = logging.getLogger("llmproxy.health")


@dataclass(frozen=True, slots=True)
class _Target:
    credential_id: int
    executor: Any
    credential: Any
    model: str


def _targets() -> tuple[list[_Target], int]:
    routes = Prefetch("provider__routes", queryset=ModelRoute.objects.filter(enabled=True).order_by("name"))
    creds = Credential.objects.filter(enabled=True, provider__enabled=True).select_related("provider")
    out, skipped = [], 0
    for c in creds.prefetch_related(routes):
        try:
            executor = providers.create(provider_config(c.provider))
        except (KeyError, ImportError):
            skipped += 1
            continue
        first = next(iter(c.provider.routes.all()), None)
        out.append(_Target(c.pk, executor, engine_credential(c), first.upstream_name if first else ""))
    return out, skipped


async def _probe_all(targets: list[_Target], timeout: float, concurrency: int) -> list[ProbeResult]:
    http = HTTPClient()
    gate = asyncio.Semaphore(concurrency)

    async def one(t: _Target) -> ProbeResult:
        async with gate:
            return await probe(t.executor, t.credential, http, model=t.model, timeout=timeout)

    try:
        return list(await asyncio.gather(*(one(t) for t in targets)))
    finally:
        await http.close()


def run_health_checks(*, timeout: float = 10.0, concurrency: int = 8) -> dict[str, int]:
    """Probe every enabled credential and record the verdicts; call it from sync code."""
    targets, skipped = _targets()
    results = asyncio.run(_probe_all(targets, timeout, concurrency)) if targets else []
    now = timezone.now()
    changed = 0
    for t, result in zip(targets, results, strict=True):
        changed += _record(t.credential_id, result, now)
    if changed:
        bump_config_version()  # every process rebuilds its snapshot and routes accordingly
    summary = {
        "checked": len(results),
        "healthy": sum(r.healthy for r in results),
        "unhealthy": sum(not r.healthy for r in results),
        "changed": changed,
        "skipped": skipped,
    }
    # Every 30 s: only a change or a failing credential is worth a line at INFO.
    log.log(logging.INFO if changed or summary["unhealthy"] else logging.DEBUG, "health checks: %s", summary)
    return summary


def _record(credential_id: int, result: ProbeResult, now: datetime) -> bool:
    """Write one verdict; True when it moved the credential in or out of the unhealthy set."""
    status, _ = HealthStatus.objects.get_or_create(credential_id=credential_id)
    was_unhealthy = status.state == HealthState.UNHEALTHY
    status.state = HealthState.HEALTHY if result.healthy else HealthState.UNHEALTHY
    status.latency_ms = result.latency_ms
    status.error = result.error[:2000]
    status.consecutive_failures = 0 if result.healthy else status.consecutive_failures + 1
    status.checked_at = now
    status.save()
    if was_unhealthy == result.healthy:
        log.warning(
            "credential %s is now %s%s", credential_id, status.state, f": {result.error}" if result.error else ""
        )
        return True
    return False


__all__ = ["run_health_checks"]
