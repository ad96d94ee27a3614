"""The usage event every request produces, success or failure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

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
    #: For staff only: which upstream failed how, in its own words (scrubbed of secrets).
    error_detail: str = ""
    #: The per-request overrides the call used (``provider``, ``timeout``, ``retries``), if any.
    overrides: dict[str, Any] = field(default_factory=dict)


_EVENT_FIELDS = frozenset(f.name for f in fields(UsageEvent)) - {"usage"}
_USAGE_FIELDS = frozenset(f.name for f in fields(Usage))


def event_from_record(record: Mapping[str, Any]) -> UsageEvent:
    """The event a journal record (``orjson.dumps(event)``) was written from; unknown keys are ignored."""
    kwargs = {k: v for k, v in record.items() if k in _EVENT_FIELDS}
    usage = record.get("usage") or {}
    return UsageEvent(**kwargs, usage=Usage(**{k: v for k, v in usage.items() if k in _USAGE_FIELDS}))


UsageSink = Callable[[UsageEvent], None]


def discard(event: UsageEvent) -> None:
    """The default sink for library use without accounting."""
