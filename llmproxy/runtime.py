"""The immutable snapshot a gateway serves from: keys, routes, prices, executors.

Built off the request path (from Django models, a config file, or by hand) and swapped
in with one reference assignment; in-flight requests keep the snapshot they started on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .providers import Executor, create
from .providers.base import Credential, ProviderConfig


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

    def allows(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def usable(self, now: float | None = None) -> bool:
        if self.revoked:
            return False
        return self.expires_at is None or self.expires_at > (now if now is not None else time.time())


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> float:
        cached = min(cached_tokens, input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((input_tokens - cached) * self.input + cached * cached_rate + output_tokens * self.output) / 1e6


@dataclass(frozen=True, slots=True)
class Route:
    """One way to serve a public model: a provider, its upstream name, its price."""

    model: str
    upstream_model: str
    provider: ProviderConfig
    credentials: tuple[Credential, ...]
    price: Price | None = None


@dataclass(frozen=True)
class Runtime:
    version: int = 0
    keys: Mapping[str, ApiKeyInfo] = field(default_factory=dict)
    routes: Mapping[str, tuple[Route, ...]] = field(default_factory=dict)
    executors: Mapping[str, Executor] = field(default_factory=dict)
    #: When False, requests need no API key (library use, local experiments).
    require_keys: bool = True
    max_body_bytes: int = 10 * 1024 * 1024

    @classmethod
    def build(
        cls,
        *,
        routes: list[Route],
        keys: list[ApiKeyInfo] | None = None,
        version: int = 0,
        require_keys: bool = True,
        max_body_bytes: int = 10 * 1024 * 1024,
    ) -> Runtime:
        by_model: dict[str, list[Route]] = {}
        executors: dict[str, Executor] = {}
        for r in routes:
            by_model.setdefault(r.model, []).append(r)
            if r.provider.name not in executors:
                executors[r.provider.name] = create(r.provider)
        return cls(
            version=version,
            keys={k.key_hash: k for k in keys or []},
            routes={m: tuple(rs) for m, rs in by_model.items()},
            executors=executors,
            require_keys=require_keys,
            max_body_bytes=max_body_bytes,
        )

    def models(self) -> list[str]:
        return sorted(self.routes)
