"""When an upstream's exhausted limit resets, from its own headers or error body.

Providers differ in how they say "come back later": ``Retry-After`` (seconds or an HTTP
date, read by the executors), OpenAI's ``x-ratelimit-reset-*`` durations, Anthropic's
RFC 3339 ``anthropic-ratelimit-*-reset``, OpenRouter's epoch-milliseconds
``x-ratelimit-reset``, Gemini's ``RetryInfo.retryDelay`` in the error body.
``reset_after`` reads them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from ._json import loads

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float | None:
    """Go-style durations as OpenAI sends them: ``1s``, ``6m0s``, ``20ms``."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        try:
            return float(text)
        except ValueError:
            return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _instant(text: str, now: float) -> float | None:
    """RFC 3339 (Anthropic) or epoch seconds / milliseconds (OpenRouter) -> seconds from now."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - now
        except ValueError:
            return None
    if value > 1e12:
        return value / 1000 - now
    if value > 1e9:
        return value - now
    return value


def _header_resets(headers: Mapping[str, str], now: float) -> list[tuple[float, bool]]:
    """(seconds, exhausted) for every reset header present."""
    out: list[tuple[float, bool]] = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for reset_name, remaining_name, parse in (
            (f"anthropic-ratelimit-{kind}-reset", f"anthropic-ratelimit-{kind}-remaining", _instant),
            (f"x-ratelimit-reset-{kind}", f"x-ratelimit-remaining-{kind}", None),
        ):
            raw = headers.get(reset_name)
            if not raw:
                continue
            seconds = parse(raw, now) if parse is not None else _duration(raw)
            if seconds is not None:
                out.append((seconds, (headers.get(remaining_name) or "").strip() == "0"))
    raw = headers.get("x-ratelimit-reset")
    if raw:
        seconds = _instant(raw, now)
        if seconds is not None:
            out.append((seconds, (headers.get("x-ratelimit-remaining") or "").strip() == "0"))
    return out


def _retry_delay(body: bytes) -> float | None:
    """Gemini: ``error.details[] @type RetryInfo`` with ``retryDelay: "37s"``."""
    if b"retryDelay" not in body:
        return None
    try:
        data = loads(body)
    except ValueError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    for d in details if isinstance(details, list) else []:
        if isinstance(d, dict) and isinstance(d.get("retryDelay"), str):
            return _duration(d["retryDelay"])
    return None


def reset_after(headers: Mapping[str, str], body: bytes, now: float) -> float | None:
    """Seconds until the upstream's exhausted limit resets, from its own headers or body.

    When several limits report, the exhausted ones decide (the longest of them); without
    a ``remaining: 0`` hint the soonest reset is the honest guess.
    """
    resets = _header_resets(headers, now)
    exhausted = [s for s, done in resets if done]
    if exhausted:
        return max(0.0, max(exhausted))
    if resets:
        return max(0.0, min(s for s, _ in resets))
    delay = _retry_delay(body)
    return None if delay is None else max(0.0, delay)
