"""``Config`` -> config.yaml text that loads back into an equal ``Config``."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from .._transports.proxies import mask_proxy
from ..auth import ENDPOINT_FIELDS
from ._schema import REDACTED, SECRET_FIELDS, SECTIONS, Config, CredentialSpec, ModelSpec, ProviderSpec


def dump(config: Config, with_secrets: bool = False, *, include_defaults: bool = True) -> str:
    """YAML for ``config``. Secrets read ``<redacted>`` unless ``with_secrets``: importing such
    a file keeps the secrets already stored. Without ``include_defaults``, sections left at
    their defaults are omitted (an export of what the database holds)."""
    return yaml.safe_dump(
        to_dict(config, with_secrets, include_defaults=include_defaults),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )


def to_dict(config: Config, with_secrets: bool = False, *, include_defaults: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"plugins": list(config.plugins)} if config.plugins else {}
    for section, cls in SECTIONS.items():
        value = getattr(config, section)
        if include_defaults or value != cls():
            out[section] = {f.name: _section_value(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if config.limits:
        out["limits"] = dict(config.limits)
    out["providers"] = {name: _provider(p, with_secrets) for name, p in config.providers.items()}
    return out


def _section_value(key: str, value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if key == "retention_days":  # days, not seconds
        return int(value) if float(value).is_integer() else value
    return duration(value) if isinstance(value, float) else value


def duration(seconds: float) -> str | float:
    """Whole seconds as ``60s`` / ``5m`` / ``1h`` (what people write); anything else as a number."""
    if not float(seconds).is_integer():
        return seconds
    whole = int(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def _provider(p: ProviderSpec, with_secrets: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": p.type, "enabled": p.enabled}
    if p.base_url:
        out["base_url"] = p.base_url
    out.update(auth_type=p.auth_type, priority=p.priority, weight=p.weight, cooldown=duration(p.cooldown))
    limit = {k: v for k, v in (("rpm", p.rate_limit.rpm), ("tpm", p.rate_limit.tpm)) if v is not None}
    if limit:
        out["rate_limit"] = limit
    if p.headers:
        out["headers"] = dict(p.headers)
    out.update({k: p.options[k] for k in (*ENDPOINT_FIELDS, "translator") if p.options.get(k)})
    options = {k: v for k, v in p.options.items() if k not in ENDPOINT_FIELDS and k != "translator"}
    if options:
        out["options"] = options
    if p.proxy:
        out["proxy"] = p.proxy if with_secrets else mask_proxy(p.proxy, REDACTED)
    out["credentials"] = [_credential(c, with_secrets) for c in p.credentials]
    out["models"] = [_model(m) for m in p.models]
    return out


def _credential(c: CredentialSpec, with_secrets: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name}
    if c.file:
        out["file"] = c.file
    for key in SECRET_FIELDS:
        value = getattr(c, key)
        if value:
            out[key] = value if with_secrets else REDACTED
    out["weight"] = c.weight
    if not c.enabled:
        out["enabled"] = False
    return out


def _model(m: ModelSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name}
    if m.upstream:
        out["upstream"] = m.upstream
    for key in ("input_price", "output_price", "cached_input_price"):
        value = getattr(m, key)
        if value is not None:
            out[key] = value
    if m.aliases:
        out["aliases"] = list(m.aliases)
    if not m.enabled:
        out["enabled"] = False
    return out
