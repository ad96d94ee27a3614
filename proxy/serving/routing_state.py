"""Each credential's routing state as the admin shows it: its last health verdict and live cooldowns.

The verdicts are rows (``HealthStatus``, written by ``proxy.jobs.health_checks``); the
cooldowns live in the routing state store (``state.process_router``), which is the
serving process's memory or Redis (see ``state.shares_state``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from llmproxy.state import Cooldown
from proxy.models import Credential, HealthState

from .state import process_router


@dataclass(frozen=True, slots=True)
class CooldownView:
    model: str  # "" for the whole credential (an auth failure)
    reason: str
    failures: int
    seconds_left: float
    half_open: bool  # ended: the next request is its trial


@dataclass(slots=True)
class CredentialState:
    """What the admin shows for one credential: health probe and routing cooldowns."""

    credential_id: int
    provider: str
    name: str
    enabled: bool
    health: str = HealthState.UNKNOWN
    latency_ms: int | None = None
    error: str = ""
    checked_at: datetime | None = None
    cooldowns: list[CooldownView] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        if self.health == HealthState.UNHEALTHY:
            return "unhealthy"
        if any(cd.seconds_left > 0 for cd in self.cooldowns):
            return "cooling"
        if self.cooldowns:
            return "half-open"
        return "ready"


def credential_states() -> list[CredentialState]:
    """Every credential with its last probe and its live cooldowns (see ``shares_state``)."""
    records = process_router().store.list_cooldowns()
    now = time.time()
    out = []
    for c in Credential.objects.select_related("provider", "health").order_by("provider__name", "name"):
        h = getattr(c, "health", None)
        state = CredentialState(c.pk, c.provider.name, c.name, c.enabled and c.provider.enabled)
        if h is not None:
            state.health, state.latency_ms, state.error, state.checked_at = h.state, h.latency_ms, h.error, h.checked_at
        state.cooldowns = _cooldowns_of(f"{c.provider.name}/{c.name}", records, now)
        out.append(state)
    return out


def _cooldowns_of(path: str, records: dict[str, Cooldown], now: float) -> list[CooldownView]:
    views = []
    for key, rec in sorted(records.items()):
        if key != path and not key.startswith(path + "/"):
            continue
        views.append(CooldownView(key[len(path) + 1 :], rec.reason, rec.failures, max(0.0, rec.until - now),
                                  not rec.blocks(now)))  # fmt: skip
    return views


__all__ = ["CooldownView", "CredentialState", "credential_states"]
