"""Candidates for a public model: priority tiers, smooth weighted round-robin, cooldowns.

A candidate is one (route, credential) pair. Tiers are tried highest priority first;
inside a tier the smooth weighted round-robin (nginx's algorithm) picks who goes first,
so over time each pair gets exactly its weight's share; the rest of the tier follows as
failover. Pairs cooling down after a failure are skipped; if every pair is cooling, the
caller learns when the soonest one recovers and whether rate limits caused it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import NoRouteAvailable
from .providers.base import Credential
from .runtime import Route


@dataclass(frozen=True, slots=True)
class Candidate:
    route: Route
    credential: Credential

    @property
    def key(self) -> str:
        return f"{self.route.provider.name}/{self.credential.name}/{self.route.upstream_model}"

    @property
    def weight(self) -> int:
        return max(1, self.route.provider.weight) * max(1, self.credential.weight)


@dataclass(slots=True)
class Cooldown:
    until: float
    rate_limited: bool
    failures: int = 1


class Router:
    """Per-process routing state; ``llmproxy.limits`` shares it across processes."""

    def __init__(self) -> None:
        self._current: dict[str, dict[str, int]] = {}
        self._cooldowns: dict[str, Cooldown] = {}

    def candidates(self, routes: tuple[Route, ...], now: float | None = None) -> list[Candidate]:
        now = time.monotonic() if now is None else now
        tiers: dict[int, list[Candidate]] = {}
        for r in routes:
            for c in r.credentials:
                tiers.setdefault(r.provider.priority, []).append(Candidate(r, c))
        out: list[Candidate] = []
        cooling: list[Cooldown] = []
        for prio in sorted(tiers, reverse=True):
            ready = []
            for cand in tiers[prio]:
                cd = self._cooldowns.get(cand.key)
                if cd is not None and cd.until > now:
                    cooling.append(cd)
                else:
                    ready.append(cand)
            out.extend(self._order(ready))
        if not out:
            if not cooling:
                raise NoRouteAvailable("no provider credential is configured for this model", status=503)
            soonest = min(cd.until for cd in cooling) - now
            limited = all(cd.rate_limited for cd in cooling)
            raise NoRouteAvailable(
                "every upstream for this model is rate limited" if limited else "every upstream for this model is failing",
                status=429 if limited else 503,
                code="rate_limit_exceeded" if limited else "no_route_available",
                retry_after=max(soonest, 0.0),
            )
        return out

    def _order(self, tier: list[Candidate]) -> list[Candidate]:
        if len(tier) <= 1:
            return tier
        state = self._current.setdefault("|".join(sorted(c.key for c in tier)), {})
        total = 0
        best: Candidate | None = None
        for cand in tier:
            w = cand.weight
            total += w
            state[cand.key] = state.get(cand.key, 0) + w
            if best is None or state[cand.key] > state[best.key]:
                best = cand
        assert best is not None
        state[best.key] -= total
        return [best] + [c for c in tier if c is not best]

    def cool(self, cand: Candidate, seconds: float, *, rate_limited: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        prev = self._cooldowns.get(cand.key)
        failures = prev.failures + 1 if prev is not None else 1
        self._cooldowns[cand.key] = Cooldown(now + seconds, rate_limited, failures)

    def succeed(self, cand: Candidate) -> None:
        self._cooldowns.pop(cand.key, None)

    def failures(self, cand: Candidate) -> int:
        cd = self._cooldowns.get(cand.key)
        return cd.failures if cd else 0

    def clear(self) -> None:
        self._cooldowns.clear()
