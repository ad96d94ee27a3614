"""Candidates for a public model: priority tiers, weighted round-robin, cooldowns, limits.

A candidate is one (route, credential) pair. ``Router.plan`` orders them for one request:
tiers highest priority first; inside a tier the smooth weighted round-robin (nginx's
algorithm, its position kept in the shared store) or ``fill-first``; a session's last
credential first (``llmproxy.affinity``: by default where the provider has a prompt cache). Pairs cooling down are left out, credentials the
health probe found unhealthy go last. ``Router.acquire`` then claims a candidate: it takes
from its RPM/TPM buckets (over the limit: skipped, not failed) and, for a pair whose
cooldown just ended, the one half-open trial. ``fail``/``succeed`` report the outcome.

Cooldowns are per credential + upstream model (a 401 cools the whole credential), so one
exhausted account never blocks the others, and they end by themselves: nothing sticks
until a restart.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .affinity import ttl_for
from .errors import NoRouteAvailable
from .limits import candidate_costs, tpm_buckets
from .outcome import Outcome
from .providers.base import Credential
from .runtime import Route, RoutingSettings
from .state import Bucket, Cooldown, MemoryStateStore, StateStore, StoreError

log = logging.getLogger("llmproxy.routing")


@dataclass(frozen=True, slots=True)
class Candidate:
    route: Route
    credential: Credential

    @property
    def key(self) -> str:
        """The cooldown scope of most failures: this credential for this upstream model."""
        return f"{self.route.provider.name}/{self.credential.name}/{self.route.upstream_model}"

    @property
    def credential_key(self) -> str:
        return f"{self.route.provider.name}/{self.credential.name}"

    @property
    def weight(self) -> int:
        return max(1, self.route.provider.weight) * max(1, self.credential.weight)


def excluded(credential: Credential, route: Route) -> bool:
    """``Credential.extra["exclude_models"]``: globs over the public or the upstream name."""
    patterns = credential.extra.get("exclude_models") or ()
    if isinstance(patterns, str):
        patterns = [patterns]
    names = (route.model, route.upstream_model)
    return any(isinstance(p, str) and fnmatchcase(n, p) for p in patterns for n in names)


@dataclass(slots=True)
class Plan:
    """One request's view of its candidates, and what it learned while trying them."""

    model: str
    settings: RoutingSettings
    candidates: list[Candidate]
    tokens: int = 0
    session: str | None = None
    #: False: remember where ``session`` was served but do not steer this request there.
    follow: bool = True
    trials: dict[str, list[str]] = field(default_factory=dict)  # candidate key -> ended cooldowns
    blocked: list[Cooldown] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    costs: dict[str, list[tuple[Bucket, float]]] = field(default_factory=dict)

    def unavailable(self, now: float, detail: str = "") -> NoRouteAvailable:
        """429 when only rate limits stand in the way, else 503; Retry-After = the soonest recovery."""
        recoveries = [cd.recovers_at() - now for cd in self.blocked] + self.waits
        if not recoveries:
            return NoRouteAvailable("no upstream is available for this model" + detail, status=503)
        limited = all(cd.rate_limited for cd in self.blocked)
        what = "rate limited" if limited else "failing or cooling down"
        return NoRouteAvailable(
            f"every upstream for model {self.model!r} is {what}" + detail,
            status=429 if limited else 503,
            code="rate_limit_exceeded" if limited else "no_route_available",
            retry_after=max(min(recoveries), 0.0),
        )


class Router:
    """Routing on a ``StateStore``: give several processes one store and they agree."""

    def __init__(self, store: StateStore | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.store = store if store is not None else MemoryStateStore(clock)
        self._fallback = MemoryStateStore(clock)  # round-robin while the shared store is down

    def candidates(self, routes: Sequence[Route]) -> list[Candidate]:
        """Every usable pair, highest priority first, in config order (no state consulted)."""
        out = [Candidate(r, c) for r in routes for c in r.credentials if not excluded(c, r)]
        out.sort(key=lambda cand: -cand.route.provider.priority)
        return out

    async def plan(
        self,
        routes: Sequence[Route],
        settings: RoutingSettings | None = None,
        *,
        session: str | None = None,
        follow: bool = True,
        tokens: int = 0,
        unhealthy: frozenset[int] = frozenset(),
    ) -> Plan:
        settings = settings or RoutingSettings()
        model = routes[0].model if routes else ""
        static = self.candidates(routes)
        if not static:
            raise NoRouteAvailable(f"no provider credential is configured for model {model!r}", status=503)
        now = self.clock()
        plan = Plan(model, settings, [], tokens, session, follow)
        records = await self._records(static, now)
        tiers: dict[int, list[Candidate]] = {}
        last_resort: list[Candidate] = []
        for cand in static:
            found = [(k, records[k]) for k in (cand.key, cand.credential_key) if k in records]
            if any(rec.blocks(now) for _, rec in found):
                plan.blocked.extend(rec for _, rec in found if rec.blocks(now))
                continue
            if found:
                plan.trials[cand.key] = [k for k, _ in found]
            if cand.credential.id is not None and cand.credential.id in unhealthy:
                last_resort.append(cand)
            else:
                tiers.setdefault(cand.route.provider.priority, []).append(cand)
        for prio in sorted(tiers, reverse=True):
            plan.candidates.extend(await self._order(model, prio, tiers[prio], settings.strategy))
        await self._apply_affinity(plan)
        plan.candidates.extend(last_resort)
        if not plan.candidates:
            raise plan.unavailable(now)
        return plan

    async def _records(self, cands: list[Candidate], now: float) -> dict[str, Cooldown]:
        keys = list(dict.fromkeys(k for c in cands for k in (c.key, c.credential_key)))
        try:
            found = await self.store.cooldowns(keys, now)
        except StoreError as exc:
            log.warning("routing store unavailable, ignoring cooldowns: %s", exc)
            return {}
        return {k: rec for k, rec in zip(keys, found, strict=True) if rec is not None}

    async def _order(self, model: str, prio: int, tier: list[Candidate], strategy: str) -> list[Candidate]:
        if len(tier) <= 1 or strategy == "fill-first":
            return tier
        by_key = {c.key: c for c in tier}
        members = [(c.key, c.weight) for c in tier]
        group = f"{model}:{prio}"
        try:
            order = await self.store.rr_order(group, members)
        except StoreError as exc:
            log.warning("routing store unavailable, round-robin in this process only: %s", exc)
            order = await self._fallback.rr_order(group, members)
        return [by_key[k] for k in order]

    @staticmethod
    def _session_key(plan: Plan) -> str:
        digest = hashlib.sha256(plan.session.encode() if plan.session else b"").hexdigest()[:32]
        return f"aff:{plan.model}:{digest}"

    @staticmethod
    def _ttl(plan: Plan, cand: Candidate) -> float:
        """Seconds ``cand`` keeps a session: the setting, else its provider type's prompt cache."""
        return ttl_for(plan.settings.session_affinity_ttl, cand.route.provider.type)

    async def _apply_affinity(self, plan: Plan) -> None:
        """Put the session's last credential first, if it is in the top tier that has candidates."""
        if not plan.session or not plan.follow or plan.settings.session_affinity_ttl == 0 or len(plan.candidates) < 2:
            return
        try:
            target = await self.store.get(self._session_key(plan))
        except StoreError:
            return
        top = plan.candidates[0].route.provider.priority
        for i, cand in enumerate(plan.candidates):
            if cand.key == target and cand.route.provider.priority == top and self._ttl(plan, cand) > 0:
                plan.candidates.insert(0, plan.candidates.pop(i))
                return

    async def acquire(self, plan: Plan, cand: Candidate) -> float:
        """Claim ``cand`` for one attempt: 0 when claimed, else how long until it could be."""
        now = self.clock()
        costs = candidate_costs(cand.route.provider, cand.credential, plan.tokens)
        try:
            if costs:
                wait = await self.store.take(costs, now)
                if wait > 0:
                    plan.waits.append(wait)
                    return wait
            for key in plan.trials.get(cand.key, ()):
                if not await self.store.begin_trial(key, now, plan.settings.trial_lease):
                    for bucket, cost in costs:
                        await self.store.debit(bucket, -cost, now)
                    plan.waits.append(plan.settings.trial_lease)
                    return math.inf
        except StoreError as exc:
            log.warning("routing store unavailable, sending without limits: %s", exc)
        plan.costs[cand.key] = costs
        return 0.0

    async def fail(self, plan: Plan, cand: Candidate, outcome: Outcome) -> Cooldown | None:
        """Cool what failed (per ``outcome``); a trial that fails cools for twice as long."""
        if outcome.scope is None:  # the client's fault: the upstream answered, so a trial passed
            ended = plan.trials.get(cand.key)
            try:
                if ended:
                    await self.store.clear(ended)
            except StoreError as exc:
                log.warning("routing store unavailable after a client error on %s: %s", cand.key, exc)
            return None
        key = cand.credential_key if outcome.scope == "credential" else cand.key
        try:
            record = await self.store.cool(
                key, base=outcome.base, fixed=outcome.fixed, cap=outcome.cap, reason=outcome.reason, now=self.clock()
            )
        except StoreError as exc:
            log.warning("routing store unavailable, %s not cooled: %s", key, exc)
            return None
        plan.blocked.append(record)
        log.info("cooling %s for %.1fs (%s, failure %d)", key, record.until - self.clock(), outcome.reason,
                 record.failures)  # fmt: skip
        return record

    async def succeed(self, plan: Plan, cand: Candidate) -> None:
        """Close an ended cooldown (the trial passed) and remember the session's credential."""
        try:
            ended = plan.trials.get(cand.key)
            if ended:
                await self.store.clear(ended)
            ttl = self._ttl(plan, cand)
            if plan.session and ttl > 0:
                await self.store.put(self._session_key(plan), cand.key, ttl)
        except StoreError as exc:
            log.warning("routing store unavailable after a success on %s: %s", cand.key, exc)

    async def settle(self, plan: Plan, cand: Candidate, actual_tokens: int) -> None:
        """Correct the TPM buckets with the tokens the upstream really counted."""
        buckets = tpm_buckets(plan.costs.get(cand.key, []))
        if not buckets or not actual_tokens:
            return
        try:
            for bucket in buckets:
                await self.store.debit(bucket, actual_tokens - plan.tokens, self.clock())
        except StoreError as exc:
            log.warning("routing store unavailable, TPM not settled for %s: %s", cand.key, exc)

    def clear_cooldowns(self, path: str = "") -> int:
        """Drop cooldowns: all, a provider's (``"p"``) or a credential's (``"p/c"``); sync, for the admin."""
        return self.store.clear_cooldowns(path)

    def clear(self) -> None:
        """Forget all routing state (tests, and a clean start)."""
        self.store.reset()
        self._fallback.reset()
