"""``Config`` -> ``Runtime`` for library use, reading token files from the auth dir."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import providers
from ..auth import parse_token_data
from ..providers.base import Credential, ProviderConfig
from ..runtime import Price, Route, Runtime
from ._schema import REDACTED, SECRET_FIELDS, Config, ConfigError, ConfigIssue, CredentialSpec, ProviderSpec


@dataclass(frozen=True, slots=True)
class TokenFile:
    """What a token file in the auth dir holds.

    A file with a ``type`` is an account's (``llmproxy.auth`` reads it: a copilot
    file's ``github_token`` becomes ``refresh_token``, type-specific fields ``extra``);
    one without is the older bare form (an ``api_key`` or tokens, other keys ignored).
    """

    api_key: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None  # epoch seconds
    type: str | None = None
    provider: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def read_token_file(path: str | Path) -> TokenFile:
    """Parse ``{"api_key"|"access_token", "refresh_token", "expires_at"}``; ValueError says what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"token file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"token file {path} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"token file {path} must hold a JSON object")
    if "type" in data:
        account = parse_token_data(data, str(path))  # TokenFileError is a ValueError naming file and field
        return TokenFile(None, account.access_token, account.refresh_token, account.expires_at, account.type,
                         account.provider, account.extra)  # fmt: skip
    values = {k: data.get(k) for k in SECRET_FIELDS}
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"token file {path}: {key} must be a string")
    if not values["api_key"] and not values["access_token"] and not values["refresh_token"]:
        raise ValueError(f"token file {path} has no api_key, access_token or refresh_token")
    return TokenFile(
        api_key=values["api_key"] or None,
        access_token=values["access_token"] or None,
        refresh_token=values["refresh_token"] or None,
        expires_at=parse_expiry(data.get("expires_at"), str(path)),
    )


def parse_expiry(value: Any, where: str) -> float | None:
    """Epoch seconds (or milliseconds) or an ISO 8601 timestamp."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ValueError(f"{where}: expires_at {value!r} is neither epoch seconds nor an ISO 8601 time")


def build_runtime(config: Config, *, require_keys: bool = False, version: int = 0) -> Runtime:
    """Routes for every enabled provider and model, with token files read; no API keys (library use)."""
    issues: list[ConfigIssue] = []
    routes: list[Route] = []
    for spec in config.providers.values():
        if not spec.enabled:
            continue
        provider = _provider_config(spec)
        creds = tuple(
            cred
            for i, c in enumerate(spec.credentials)
            if c.enabled and (cred := _credential(config, spec, i, c, issues)) is not None
        )
        for m in spec.models:
            if not m.enabled:
                continue
            price = None
            if m.input_price is not None or m.output_price is not None:
                price = Price(m.input_price or 0.0, m.output_price or 0.0, m.cached_input_price)
            routes.extend(Route(name, m.upstream_name, provider, creds, price) for name in m.public_names)
        _check_executor(spec, issues)
    if issues:
        raise ConfigError(issues, config.source)
    return Runtime.build(
        routes=routes,
        version=version,
        require_keys=require_keys,
        routing=config.routing,
        images=config.images,
        responses=config.responses,
        clients=config.clients,
    )


def _check_executor(spec: ProviderSpec, issues: list[ConfigIssue]) -> None:
    try:
        providers.get(spec.type)
    except (KeyError, ImportError) as exc:
        issues.append(ConfigIssue(f"providers.{spec.name}.type", f"no executor for {spec.type!r}: {exc}"))


def _provider_config(spec: ProviderSpec) -> ProviderConfig:
    return ProviderConfig(
        name=spec.name,
        type=spec.type,
        base_url=spec.base_url,
        headers=dict(spec.headers),
        priority=spec.priority,
        weight=spec.weight,
        cooldown=spec.cooldown,
        rpm=spec.rate_limit.rpm,
        tpm=spec.rate_limit.tpm,
        options={**spec.options, "auth_type": spec.auth_type},
        proxy=spec.proxy,
    )


def _credential(config: Config, spec: ProviderSpec, i: int, c: CredentialSpec, issues: list[ConfigIssue]) -> Credential | None:  # fmt: skip
    where = f"providers.{spec.name}.credentials[{i}]"
    values = {k: getattr(c, k) for k in SECRET_FIELDS}
    if REDACTED in values.values():
        issues.append(ConfigIssue(where, "holds a redacted secret; export with --with-secrets to run from a file"))
        return None
    expires_at = None
    extra: dict[str, Any] = {}
    if c.file:
        path = config.auth_dir() / c.file
        try:
            tokens = read_token_file(path)
        except ValueError as exc:
            issues.append(ConfigIssue(f"{where}.file", str(exc)))
            return None
        values = {k: values[k] or getattr(tokens, k) for k in SECRET_FIELDS}
        expires_at = tokens.expires_at
        extra.update(tokens.extra)
        extra["file"] = str(path)
    return Credential(name=c.name, provider=spec.name, weight=c.weight, expires_at=expires_at, extra=extra, **values)
