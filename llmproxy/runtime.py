"""The immutable snapshot a gateway serves from: keys, routes, prices, executors.

Built off the request path (from Django models, a config file, or by hand) and swapped
in with one reference assignment; in-flight requests keep the snapshot they started on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from .netguard import ImageSettings
from .periods import zone
from .pricing import Price as Price
from .pricing import lookup
from .providers import Executor, create
from .providers.base import Credential, ProviderConfig
from .scrub import Scrubber, sensitive_values
from .throttle import ClientSettings

log = logging.getLogger("llmproxy.runtime")


@dataclass(frozen=True, slots=True)
class UserLimits:
    """A user's own limits, shared by all of the user's keys (both the key's and these apply)."""

    id: int
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: str = "none"  # none | daily | weekly | monthly
    #: Spend the usage records show for the period starting at ``spent_period_start``.
    spent_usd: float = 0.0
    spent_period_start: float | None = None
    #: A staff reset of the user's budget (Unix time): the period starts here when it is
    #: later than the calendar start, as ``ApiKeyInfo.period_started_at`` for a key.
    period_started_at: float | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    key_hash: str
    prefix: str
    id: int | None = None
    user_id: int | None = None
    username: str = ""
    name: str = ""
    allowed_models: frozenset[str] | None = None  # None: every model
    expires_at: float | None = None
    revoked: bool = False
    is_admin: bool = False
    is_staff: bool = False
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str = "none"  # none | daily | weekly | monthly
    period_started_at: float | None = None
    #: Spend already settled in the database for the current period when the snapshot was
    #: built: the floor of the live counter, so a restart or a lost Redis never forgets it.
    spent_usd: float = 0.0
    max_parallel: int | None = None
    #: The calendar period start ``spent_usd`` was summed from (a floor from an ended
    #: period does not count in the next one).
    spent_period_start: float | None = None
    user: UserLimits | None = None
    #: May send per-request overrides (``llmproxy.overrides``); keys with the management scope may anyway.
    allow_overrides: bool = False

    @property
    def may_override(self) -> bool:
        return self.allow_overrides or self.is_admin

    def allows(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def usable(self, now: float | None = None) -> bool:
        if self.revoked:
            return False
        return self.expires_at is None or self.expires_at > (now if now is not None else time.time())


@dataclass(frozen=True, slots=True)
class Route:
    """One way to serve a public model: a provider, its upstream name, its price."""

    model: str
    upstream_model: str
    provider: ProviderConfig
    credentials: tuple[Credential, ...]
    price: Price | None = None
    #: The most output tokens one reply may have (from the catalog), for cost estimates.
    max_output: int | None = None
    #: Where the price came from: ``route`` (config), ``catalog`` (shipped), ``""`` (none).
    priced_by: str = ""


def with_catalog(route: Route) -> Route:
    """The route with the shipped catalog's price (when it has none) and output cap."""
    entry = lookup(route.upstream_model)
    if route.price is not None:
        if route.priced_by == "route" and (entry is None or route.max_output == entry.max_output):
            return route
        return replace(route, priced_by="route", max_output=route.max_output or (entry.max_output if entry else None))
    if entry is None:
        return route if not route.priced_by else replace(route, priced_by="")
    return replace(route, price=entry.price, priced_by="catalog", max_output=route.max_output or entry.max_output)


#: ``limits.on_store_error`` choices: let the request through, or refuse it (503).
POLICIES = ("open", "closed")


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The ``limits:`` config section (and ``LLMPROXY_TIME_ZONE`` for the periods)."""

    #: What to do when the shared store cannot answer: rate limits / budgets.
    rate_limits_on_store_error: str = "open"
    budgets_on_store_error: str = "closed"
    #: Seconds a hold lives if its process dies before settling it (longer than any request).
    reservation_ttl: float = 900.0
    #: Output tokens assumed for a request without ``max_tokens`` on a model of unknown cap.
    default_output_tokens: int = 4096
    time_zone: str = "UTC"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, time_zone: str | None = None) -> LimitSettings:
        """Validate a ``limits:`` mapping; a ValueError lists every bad entry."""
        data = dict(data or {})
        errors: list[str] = []
        values: dict[str, Any] = {"time_zone": time_zone or "UTC"}
        try:
            zone(values["time_zone"])
        except ValueError as exc:
            errors.append(f"LLMPROXY_TIME_ZONE: {exc}")
        policy = data.pop("on_store_error", None)
        if isinstance(policy, str):
            policy = {"rate_limits": policy, "budgets": policy}
        if policy is not None and not isinstance(policy, Mapping):
            errors.append("limits.on_store_error: open, closed, or {rate_limits: ..., budgets: ...}")
            policy = None
        for name, value in (policy or {}).items():
            if name not in ("rate_limits", "budgets"):
                errors.append(f"limits.on_store_error.{name}: unknown setting (rate_limits, budgets)")
            elif value not in POLICIES:
                errors.append(f"limits.on_store_error.{name}: must be open or closed")
            else:
                values[f"{name}_on_store_error"] = value
        for name in ("reservation_ttl", "default_output_tokens"):
            if name in data:
                value = data.pop(name)
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                    errors.append(f"limits.{name}: must be a number > 0")
                else:
                    values[name] = type(getattr(cls(), name))(value)
        errors += [f"limits.{k}: unknown setting" for k in data]
        if errors:
            raise ValueError("; ".join(errors))
        return cls(**values)


#: ``round-robin`` (smooth, weighted) and ``weighted`` are one strategy under two names.
STRATEGIES = ("round-robin", "weighted", "fill-first")


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How the gateway picks and retries upstreams (config key ``routing``)."""

    #: ``round-robin``: smooth weighted round-robin inside a priority tier; ``fill-first``:
    #: the first available credential in config order takes everything until it is limited.
    strategy: str = "round-robin"
    #: Upstream attempts per client request (limit-skips do not count).
    max_attempts: int = 3
    #: Seconds after which no new attempt starts.
    retry_budget: float = 30.0
    #: Seconds a conversation stays on the credential that served it (0: off). None (the
    #: default, ``auto`` in config): each provider type's prompt cache lifetime
    #: (``llmproxy.affinity.PROMPT_CACHE_TTL``), off for types without one.
    session_affinity_ttl: float | None = None
    backoff_base: float = 0.05
    backoff_max: float = 1.0
    #: Cooldowns: transient errors (408/5xx/connection/timeout), auth failures (401/403),
    #: an unknown model (404), and the cap of the doubling (a 429 starts at the provider's own).
    error_cooldown: float = 5.0
    auth_cooldown: float = 300.0
    not_found_cooldown: float = 3600.0
    max_cooldown: float = 900.0
    #: How long a half-open trial request holds its claim before another may try.
    trial_lease: float = 30.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RoutingSettings:
        """Validate a ``routing:`` mapping; a ValueError lists every bad entry."""
        if not data:
            return cls()
        known = set(cls.__dataclass_fields__)
        errors = [f"routing.{k}: unknown setting" for k in data if k not in known]
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if name == "strategy":
                if value not in STRATEGIES:
                    errors.append(f"routing.strategy: must be one of {', '.join(STRATEGIES)}")
                values[name] = value
            elif name == "max_attempts":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    errors.append("routing.max_attempts: must be an integer >= 1")
                values[name] = value
            elif name == "session_affinity_ttl" and value in (None, "auto"):
                values[name] = None
            elif not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                errors.append(f"routing.{name}: must be a number >= 0")
            else:
                values[name] = float(value)
        if errors:
            raise ValueError("; ".join(errors))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ResponsesSettings:
    """The Responses API's stored responses (config key ``responses``)."""

    #: Days a stored response (``store`` true) and its items are kept.
    retention_days: float = 30.0

    @property
    def retention(self) -> float:
        """The retention in seconds."""
        return self.retention_days * 86_400.0


@dataclass(frozen=True)
class Runtime:
    version: int = 0
    keys: Mapping[str, ApiKeyInfo] = field(default_factory=dict)
    routes: Mapping[str, tuple[Route, ...]] = field(default_factory=dict)
    executors: Mapping[str, Executor] = field(default_factory=dict)
    #: When False, requests need no API key (library use, local experiments).
    require_keys: bool = True
    max_body_bytes: int = 10 * 1024 * 1024
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    #: Credential ids the last health probe found unhealthy: tried only when nothing else is left.
    unhealthy: frozenset[int] = frozenset()
    #: Where image URLs may be fetched from (config ``images:``); the default allows public hosts only.
    images: ImageSettings = field(default_factory=ImageSettings)
    #: Failed-key throttling and trusted reverse proxies (config ``clients:``).
    clients: ClientSettings = field(default_factory=ClientSettings)
    #: More secrets to keep out of responses and logs than the snapshot's own (the shell's).
    extra_secrets: tuple[str, ...] = ()
    #: How long stored Responses API responses are kept (config ``responses:``).
    responses: ResponsesSettings = field(default_factory=ResponsesSettings)

    @classmethod
    def build(
        cls,
        *,
        routes: list[Route],
        keys: list[ApiKeyInfo] | None = None,
        version: int = 0,
        require_keys: bool = True,
        max_body_bytes: int = 10 * 1024 * 1024,
        routing: RoutingSettings | None = None,
        unhealthy: frozenset[int] = frozenset(),
        images: ImageSettings | None = None,
        clients: ClientSettings | None = None,
        extra_secrets: tuple[str, ...] = (),
        limits: LimitSettings | None = None,
        responses: ResponsesSettings | None = None,
    ) -> Runtime:
        by_model: dict[str, list[Route]] = {}
        executors: dict[str, Executor] = {}
        for r in map(with_catalog, routes):
            if r.provider.name not in executors:
                try:
                    executors[r.provider.name] = create(r.provider)
                except KeyError as exc:  # an unknown type, or a translator not registered in this process
                    log.warning("provider %s: %s; its routes are not served", r.provider.name, exc.args[0])
                    continue
            by_model.setdefault(r.model, []).append(r)
        return cls(
            version=version,
            keys={k.key_hash: k for k in keys or []},
            routes={m: tuple(rs) for m, rs in by_model.items()},
            executors=executors,
            require_keys=require_keys,
            max_body_bytes=max_body_bytes,
            routing=routing or RoutingSettings(),
            unhealthy=unhealthy,
            images=images or ImageSettings(),
            clients=clients or ClientSettings(),
            extra_secrets=extra_secrets,
            limits=limits or LimitSettings(),
            responses=responses or ResponsesSettings(),
        )

    @cached_property
    def scrubber(self) -> Scrubber:
        """Built on first use, once per snapshot: every secret this snapshot can send upstream."""
        return Scrubber(self.secrets())

    def secrets(self) -> Iterator[str]:
        yield from self.extra_secrets
        seen: set[int] = set()
        for routes in self.routes.values():
            for r in routes:
                if id(r.provider) not in seen:
                    seen.add(id(r.provider))
                    yield from sensitive_values(r.provider.headers)
                    yield from sensitive_values(r.provider.options)
                for c in r.credentials:
                    if id(c) not in seen:
                        seen.add(id(c))
                        yield from (s for s in (c.api_key, c.access_token, c.refresh_token) if s)
                        yield from sensitive_values(c.extra)

    def models(self) -> list[str]:
        return sorted(self.routes)
