"""The shape of config.yaml as frozen dataclasses, and the one error listing every problem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..netguard import ImageSettings
from ..runtime import ResponsesSettings, RoutingSettings
from ..throttle import ClientSettings

PROVIDER_TYPES = (
    "claude",
    "gemini",
    "openai",
    "copilot",
    "kiro",
    "openrouter",
    "together",
    "fireworks",
    "openai-compatible",
)
AUTH_TYPES = ("api_key", "oauth", "device_flow")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
SECRET_FIELDS = ("api_key", "access_token", "refresh_token")
#: What an export without secrets writes in place of one; importing it keeps the stored secret.
REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem: where (a dotted path such as ``providers.x.models[0].name``) and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class ConfigError(ValueError):
    """A config was rejected; ``issues`` lists every problem found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue], source: str = "") -> None:
        self.issues = list(issues)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{head}{count} error{'s' if count != 1 else ''} in config\n{lines}")

    @property
    def errors(self) -> list[str]:
        """The issues as "path: reason" lines."""
        return [str(issue) for issue in self.issues]


@dataclass(frozen=True, slots=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True, slots=True)
class Auth:
    #: Token files (``{provider}*.json``); relative paths are taken from the config file's directory.
    dir: str = "auths"


@dataclass(frozen=True, slots=True)
class Management:
    allow_remote: bool = False


@dataclass(frozen=True, slots=True)
class Logging:
    level: str = "info"
    #: One log line per LLM request (request id, model, status, latency).
    request_log: bool = False
    #: ``text`` lines, or ``json``: one JSON object per line.
    format: str = "text"


@dataclass(frozen=True, slots=True)
class UsageSettings:
    """The usage journal (``llmproxy.journal``) and its ingester."""

    #: Group-``fsync`` journal writes: survive a machine crash, not only the death of processes.
    fsync: bool = False
    #: Journal backlog (MB) past which serving answers 503 instead of taking requests it cannot record.
    journal_max_mb: int = 1024


#: The sections whose scalar keys ``LLMPROXY_<SECTION>_<KEY>`` may override.
SECTIONS: dict[str, type] = {
    "server": Server,
    "auth": Auth,
    "management": Management,
    "logging": Logging,
    "routing": RoutingSettings,
    "usage": UsageSettings,
    "images": ImageSettings,
    "responses": ResponsesSettings,
    "clients": ClientSettings,
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    name: str
    api_key: str | None = None
    file: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    weight: int = 1
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    #: What the provider is sent; None: the public name.
    upstream: str | None = None
    input_price: float | None = None
    output_price: float | None = None
    cached_input_price: float | None = None
    #: More public names for the same upstream model.
    aliases: tuple[str, ...] = ()
    enabled: bool = True

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.name

    @property
    def public_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    type: str
    enabled: bool = True
    base_url: str = ""
    auth_type: str = "api_key"
    priority: int = 0
    weight: int = 1
    #: Seconds a credential rests after a 429 without Retry-After.
    cooldown: float = 60.0
    rate_limit: RateLimit = field(default_factory=RateLimit)
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Outbound proxy (``http://[user:pass@]host:port``); empty: the environment's.
    proxy: str = ""
    credentials: tuple[CredentialSpec, ...] = ()
    models: tuple[ModelSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    server: Server = field(default_factory=Server)
    providers: Mapping[str, ProviderSpec] = field(default_factory=dict)
    auth: Auth = field(default_factory=Auth)
    management: Management = field(default_factory=Management)
    logging: Logging = field(default_factory=Logging)
    #: The engine's own settings class: strategy, max_attempts, retry_budget, session_affinity_ttl, ...
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    usage: UsageSettings = field(default_factory=UsageSettings)
    #: Which hosts image URLs in requests may reach (the SSRF guard), and the size cap.
    images: ImageSettings = field(default_factory=ImageSettings)
    #: Failed client-key throttling per address, and the reverse proxies trusted for ``X-Forwarded-For``.
    clients: ClientSettings = field(default_factory=ClientSettings)
    #: Key/user limits; validated only as a mapping here, read by ``llmproxy.limits``.
    limits: Mapping[str, Any] = field(default_factory=dict)
    #: Stored Responses API responses: how many days they are kept.
    responses: ResponsesSettings = field(default_factory=ResponsesSettings)
    #: Plugin modules imported before validation (``plugins:`` and ``LLMPROXY_PLUGINS``).
    plugins: tuple[str, ...] = ()
    source: str = field(default="<string>", compare=False)
    #: Where relative paths (``auth.dir``) start: the config file's directory.
    base_dir: str = field(default=".", compare=False)
    #: SHA-256 of the text this was loaded from ("" when built by hand).
    content_hash: str = field(default="", compare=False)

    def auth_dir(self) -> Path:
        path = Path(self.auth.dir).expanduser()
        return path if path.is_absolute() else Path(self.base_dir) / path
