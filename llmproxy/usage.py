"""The usage event every request produces, success or failure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .model import Usage


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    created_at: float
    ingress: str
    model: str = ""
    upstream_model: str = ""
    provider: str = ""
    credential: str = ""
    user_id: int | None = None
    key_id: int | None = None
    key_prefix: str = ""
    stream: bool = False
    status_code: int = 200
    error_type: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    latency_ms: int = 0
    ttfb_ms: int | None = None
    attempts: int = 0


UsageSink = Callable[[UsageEvent], None]


def discard(event: UsageEvent) -> None:
    """The default sink for library use without accounting."""
