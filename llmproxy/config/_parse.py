"""config.yaml text -> ``Config``: YAML, interpolation, overrides, then validation of every key."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .. import plugins, translator
from .._transports.proxies import parse_proxy
from ..auth import ENDPOINT_FIELDS
from ..netguard import ImageSettings
from ..runtime import STRATEGIES, ResponsesSettings, RoutingSettings
from ..throttle import ClientSettings, networks
from ._check import Checker, join
from ._env import apply_overrides, interpolate
from ._schema import (
    AUTH_TYPES,
    LOG_FORMATS,
    LOG_LEVELS,
    PROVIDER_TYPES,
    SECRET_FIELDS,
    Auth,
    Config,
    ConfigError,
    ConfigIssue,
    CredentialSpec,
    Logging,
    Management,
    ModelSpec,
    ProviderSpec,
    RateLimit,
    Server,
    UsageSettings,
)

TOP_KEYS = (
    "server", "providers", "auth", "management", "logging", "routing", "images", "clients", "limits", "usage",
    "responses", "plugins",
)  # fmt: skip
PROVIDER_KEYS = ("type", "enabled", "base_url", "auth_type", "priority", "weight", "cooldown", "rate_limit",
                 "headers", "options", "proxy", "credentials", "models", "translator", *ENDPOINT_FIELDS)  # fmt: skip
CREDENTIAL_KEYS = ("name", "api_key", "file", "access_token", "refresh_token", "weight", "enabled")
MODEL_KEYS = ("name", "upstream", "input_price", "output_price", "cached_input_price", "aliases", "enabled")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
#: Prices are stored with 6 decimals and at most 12 digits.
_MAX_PRICE = 999_999.0


def parse(text: str, source: str, env: Mapping[str, str], base_dir: str) -> Config:
    issues: list[ConfigIssue] = []
    raw = _yaml(text, issues)
    if issues:
        raise ConfigError(issues, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("", "the file must be a mapping of sections (server, providers, ...)")], source)
    data = interpolate(raw, env, issues)
    apply_overrides(data, env)
    check = Checker()
    check.issues = issues
    names = _plugins(check, data.get("plugins"), env)  # before validation: they register types
    config = dataclasses.replace(_config(check, data, source, base_dir), plugins=tuple(names))
    if check.issues:
        raise ConfigError(check.issues, source)
    return dataclasses.replace(config, content_hash=content_hash(text))


def _plugins(check: Checker, value: Any, env: Mapping[str, str]) -> list[str]:
    """config.yaml's ``plugins`` and ``LLMPROXY_PLUGINS``, imported; a failure names the module."""
    listed: list[str] = []
    if value is not None:
        if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
            check.error("plugins", "must be a list of importable module names")
        else:
            listed = list(value)
    names = list(dict.fromkeys([*listed, *plugins.from_env(env)]))
    for failure in plugins.import_all(names):
        where = f"plugins[{listed.index(failure.name)}]" if failure.name in listed else plugins.ENV
        check.error(where, str(failure))
    return names


def content_hash(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that reports a key written twice in one mapping instead of keeping the last."""

    duplicates: list[ConfigIssue]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue
            if key in seen:
                line = key_node.start_mark.line + 1
                self.duplicates.append(ConfigIssue(f"line {line}", f"key {key!r} is given twice"))
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml(text: str, issues: list[ConfigIssue]) -> Any:
    loader = _StrictLoader(text)
    loader.duplicates = issues
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        issues.append(ConfigIssue(where, f"YAML syntax error: {problem}"))
        return None
    finally:
        loader.dispose()


def _config(check: Checker, data: dict[str, Any], source: str, base_dir: str) -> Config:
    check.mapping(data, "", TOP_KEYS)
    readers: dict[str, Any] = {
        "server": _server,
        "providers": _providers,
        "auth": _auth,
        "management": _management,
        "logging": _logging,
        "routing": _routing,
        "images": _images,
        "clients": _clients,
        "limits": _limits,
        "usage": _usage,
        "responses": _responses,
    }
    # In the file's order, so errors read top to bottom.
    order = [k for k in data if k in readers] + [k for k in readers if k not in data]
    sections = {key: readers[key](check, data.get(key)) for key in order}
    return Config(**sections, source=source, base_dir=base_dir)


def _providers(check: Checker, value: Any) -> dict[str, ProviderSpec]:
    providers: dict[str, ProviderSpec] = {}
    for name, item in check.mapping(value, "providers").items():
        spec = _provider(check, name, item)
        if spec is not None:
            providers[spec.name] = spec
    return providers


def _limits(check: Checker, value: Any) -> dict[str, Any]:
    limits = check.mapping(value, "limits")
    for key in limits:
        if not isinstance(key, str):
            check.error("limits", f"keys must be strings, got {key!r}")
    return dict(limits)


def _server(check: Checker, value: Any) -> Server:
    d = check.mapping(value, "server", ("host", "port"))
    return Server(
        host=check.string(d, "host", "server", Server().host, required="host" in d),
        port=check.integer(d, "port", "server", Server().port, minimum=1, maximum=65535),
    )


def _auth(check: Checker, value: Any) -> Auth:
    d = check.mapping(value, "auth", ("dir",))
    return Auth(dir=check.string(d, "dir", "auth", Auth().dir, required="dir" in d))


def _management(check: Checker, value: Any) -> Management:
    d = check.mapping(value, "management", ("allow_remote",))
    return Management(allow_remote=check.boolean(d, "allow_remote", "management", Management().allow_remote))


def _logging(check: Checker, value: Any) -> Logging:
    d = check.mapping(value, "logging", ("level", "request_log", "format"))
    for key in ("level", "format"):
        if isinstance(d.get(key), str):
            d = {**d, key: d[key].lower()}
    return Logging(
        level=check.string(d, "level", "logging", Logging().level, choices=LOG_LEVELS),
        request_log=check.boolean(d, "request_log", "logging", Logging().request_log),
        format=check.string(d, "format", "logging", Logging().format, choices=LOG_FORMATS),
    )


def _usage(check: Checker, value: Any) -> UsageSettings:
    d = check.mapping(value, "usage", ("fsync", "journal_max_mb"))
    return UsageSettings(
        fsync=check.boolean(d, "fsync", "usage", UsageSettings().fsync),
        journal_max_mb=check.integer(d, "journal_max_mb", "usage", UsageSettings().journal_max_mb, minimum=1),
    )


def _responses(check: Checker, value: Any) -> ResponsesSettings:
    d = check.mapping(value, "responses", ("retention_days",))
    days = check.number(d, "retention_days", "responses", ResponsesSettings().retention_days, minimum=0.0)
    if days == 0:
        check.error("responses.retention_days", "must be more than 0 (send store: false to keep nothing)")
        days = ResponsesSettings().retention_days
    return ResponsesSettings(retention_days=days)


def _routing(check: Checker, value: Any) -> RoutingSettings:
    """Every field of the engine's RoutingSettings; times as numbers of seconds or durations."""
    defaults = RoutingSettings()
    names = [f.name for f in dataclasses.fields(RoutingSettings)]
    d = check.mapping(value, "routing", names)
    values: dict[str, Any] = {}
    for name in names:
        if name not in d:
            continue
        if name == "strategy":
            values[name] = check.string(d, name, "routing", defaults.strategy, choices=STRATEGIES)
        elif name == "max_attempts":
            values[name] = check.integer(d, name, "routing", defaults.max_attempts, minimum=1, maximum=100)
        elif name == "session_affinity_ttl" and d[name] in (None, "auto"):
            values[name] = None  # each provider type's prompt cache lifetime
        else:
            values[name] = check.duration(d, name, "routing", getattr(defaults, name))
    return RoutingSettings(**values)


def _images(check: Checker, value: Any) -> ImageSettings:
    defaults = ImageSettings()
    d = check.mapping(value, "images", ("allow_private", "allow_hosts", "max_bytes"))
    hosts = d.get("allow_hosts")
    if isinstance(hosts, str):  # from LLMPROXY_IMAGES_ALLOW_HOSTS: comma-separated
        hosts = [h for h in (part.strip() for part in hosts.split(",")) if h]
    allow_hosts: list[str] = []
    for i, item in enumerate(_list(check, hosts, "images.allow_hosts")):
        if not isinstance(item, str) or not item.strip() or any(c.isspace() or c in "/@" for c in item.strip()):
            check.error(f"images.allow_hosts[{i}]", f"a host name or host:port, got {item!r}")
            continue
        allow_hosts.append(item.strip().lower())
    return ImageSettings(
        allow_private=check.boolean(d, "allow_private", "images", defaults.allow_private),
        allow_hosts=tuple(allow_hosts),
        max_bytes=check.integer(d, "max_bytes", "images", defaults.max_bytes, minimum=1, maximum=1_000_000_000),
    )


def _clients(check: Checker, value: Any) -> ClientSettings:
    defaults = ClientSettings()
    d = check.mapping(value, "clients", ("max_key_failures", "key_failure_window", "trusted_proxies"))
    proxies = d.get("trusted_proxies")
    if isinstance(proxies, str):  # from LLMPROXY_CLIENTS_TRUSTED_PROXIES: comma-separated
        proxies = [p for p in (part.strip() for part in proxies.split(",")) if p]
    trusted: list[str] = []
    for i, item in enumerate(_list(check, proxies, "clients.trusted_proxies")):
        try:
            networks((str(item),))
        except ValueError:
            check.error(f"clients.trusted_proxies[{i}]", f"an IP address or network (CIDR), got {item!r}")
            continue
        trusted.append(str(item).strip())
    return ClientSettings(
        max_key_failures=check.integer(d, "max_key_failures", "clients", defaults.max_key_failures, minimum=0),
        key_failure_window=check.duration(d, "key_failure_window", "clients", defaults.key_failure_window),
        trusted_proxies=tuple(trusted),
    )


def _endpoints(check: Checker, d: dict[str, Any], path: str) -> dict[str, str]:
    """The account endpoint fields (INTERFACE.md section 8), kept in the provider's options."""
    out: dict[str, str] = {}
    for key in ENDPOINT_FIELDS:
        if key not in d:
            continue
        if key == "region":
            region = check.string(d, key, path, "", max_len=40)
            if region and not _REGION.fullmatch(region):
                check.error(join(path, key), f"{region!r} is not a region name such as us-east-1")
            elif region:
                out[key] = region
        elif value := check.url(d, key, path):
            out[key] = value.rstrip("/")
    return out


def _provider(check: Checker, name: Any, value: Any) -> ProviderSpec | None:
    path = join("providers", str(name))
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > 100:
        check.error(path, "a provider name is letters, digits, '-' and '_' (at most 100 characters)")
        return None
    d = check.mapping(value, path, PROVIDER_KEYS)
    ptype = check.string(d, "type", path, "", required=True, choices=_known_types())
    base_url = check.url(d, "base_url", path)
    if ptype == "openai-compatible" and not base_url and "base_url" not in d:
        check.error(join(path, "base_url"), "is required for type openai-compatible (no default endpoint)")
    limit = check.mapping(d.get("rate_limit"), join(path, "rate_limit"), ("rpm", "tpm"))
    rate_limit = RateLimit(
        rpm=check.integer(limit, "rpm", join(path, "rate_limit"), None, minimum=0),
        tpm=check.integer(limit, "tpm", join(path, "rate_limit"), None, minimum=0),
    )
    return ProviderSpec(
        name=name,
        type=ptype,
        enabled=check.boolean(d, "enabled", path, True),
        base_url=base_url,
        auth_type=check.string(d, "auth_type", path, "api_key", choices=AUTH_TYPES),
        priority=check.integer(d, "priority", path, 0, minimum=-1_000_000, maximum=1_000_000),
        weight=check.integer(d, "weight", path, 1, minimum=0, maximum=1_000_000),
        cooldown=check.duration(d, "cooldown", path, 60.0),
        rate_limit=rate_limit,
        headers=_headers(check, d.get("headers"), join(path, "headers")),
        options=_options(check, d, path),
        proxy=_proxy(check, d, path),
        credentials=_credentials(check, d.get("credentials"), join(path, "credentials")),
        models=_models(check, d.get("models"), join(path, "models")),
    )


def _options(check: Checker, d: dict[str, Any], path: str) -> dict[str, Any]:
    """``options``, with the account endpoint fields and ``translator`` (a registered name) in it."""
    options = {**check.mapping(d.get("options"), join(path, "options")), **_endpoints(check, d, path)}
    where = join(path, "translator") if "translator" in d else join(join(path, "options"), "translator")
    name = d["translator"] if "translator" in d else options.get("translator")
    if name is None:
        return options
    if not isinstance(name, str) or name not in translator.names():
        check.error(where, f"unknown translator {name!r}; known: {', '.join(translator.names())} "
                           "(register your own with llmproxy.translator.register)")  # fmt: skip
        options.pop("translator", None)
        return options
    return {**options, "translator": name}


def _proxy(check: Checker, d: dict[str, Any], path: str) -> str:
    """An outbound proxy URL, checked now (its password is never echoed in the error)."""
    text: str = check.string(d, "proxy", path, "", max_len=500)
    if not text:
        return ""
    try:
        parse_proxy(text)
    except ValueError:
        check.error(join(path, "proxy"), "must be an http:// proxy URL, http://[user:password@]host:port")
        return ""
    return text


def _known_types() -> tuple[str, ...]:
    """The built-in types, plus any executor registered by name (custom providers)."""
    from ..providers import EXECUTORS

    return PROVIDER_TYPES + tuple(sorted(t for t in EXECUTORS if t not in PROVIDER_TYPES))


def _headers(check: Checker, value: Any, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, item in check.mapping(value, path).items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            check.error(join(path, str(key)), f"a header value must be a string, got {item!r}")
            continue
        out[str(key)] = str(item)
    return out


def _list(check: Checker, value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        check.error(path, "expected a list")
        return []
    return value


def _credentials(check: Checker, value: Any, path: str) -> tuple[CredentialSpec, ...]:
    out: list[CredentialSpec] = []
    names: set[str] = set()
    for i, item in enumerate(_list(check, value, path)):
        where = f"{path}[{i}]"
        d = check.mapping(item, where, CREDENTIAL_KEYS)
        if not d:
            if isinstance(item, dict):
                check.error(where, "a credential needs an api_key, a file or tokens")
            continue
        file = check.string(d, "file", where, None, max_len=255) or None
        default_name = file.rsplit("/", 1)[-1].removesuffix(".json") if file else f"key-{i + 1}"
        name = check.string(d, "name", where, default_name, required="name" in d, max_len=100)
        secrets = {k: check.string(d, k, where, None) or None for k in SECRET_FIELDS}
        if not file and not any(secrets.values()):
            check.error(where, "a credential needs an api_key, a file or tokens")
        if name in names:
            check.error(join(where, "name"), f"credential {name!r} is listed twice")
        names.add(name)
        out.append(
            CredentialSpec(
                name=name,
                file=file,
                weight=check.integer(d, "weight", where, 1, minimum=0, maximum=1_000_000),
                enabled=check.boolean(d, "enabled", where, True),
                **secrets,
            )
        )
    return tuple(out)


def _models(check: Checker, value: Any, path: str) -> tuple[ModelSpec, ...]:
    out: list[ModelSpec] = []
    names: set[str] = set()
    for i, item in enumerate(_list(check, value, path)):
        where = f"{path}[{i}]"
        d = {"name": item} if isinstance(item, str) else check.mapping(item, where, MODEL_KEYS)
        if not d and not isinstance(item, dict):
            continue
        name = check.string(d, "name", where, "", required=True, max_len=200)
        aliases = tuple(_aliases(check, d.get("aliases"), join(where, "aliases")))
        for public, at in ((name, where), *((a, join(where, "aliases")) for a in aliases)):
            if public and public in names:
                check.error(at, f"model {public!r} is listed twice for this provider")
            names.add(public)
        prices = {
            k: check.number(d, k, where, None, minimum=0, maximum=_MAX_PRICE)
            for k in ("input_price", "output_price", "cached_input_price")
        }
        out.append(
            ModelSpec(
                name=name,
                upstream=check.string(d, "upstream", where, None, max_len=200) or None,
                aliases=aliases,
                enabled=check.boolean(d, "enabled", where, True),
                **prices,
            )
        )
    return tuple(out)


def _aliases(check: Checker, value: Any, path: str) -> list[str]:
    out = []
    for i, item in enumerate(_list(check, value, path)):
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            check.error(f"{path}[{i}]", f"an alias is a non-empty model name, got {item!r}")
            continue
        out.append(item)
    return out
