"""Config files <-> the database: apply a validated config in one transaction, export it back.

A provider named in the file is managed by the file (``from_config``): its settings,
credentials and model routes become exactly what the file says, and a managed provider
the file no longer names is deleted. Providers made elsewhere (admin, API) are left alone
unless the file names them, which hands them over to the file.

Applying is idempotent: a row is saved only when one of its values changes, so applying
the same file again saves nothing and does not bump the config version. Every attempt,
good or bad, is recorded as a ``ConfigImport``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import DatabaseError, transaction

from llmproxy import config as cfg
from llmproxy.config import REDACTED, Config, ConfigError, CredentialSpec, ModelSpec, ProviderSpec
from proxy.crypto import is_sensitive
from proxy.models import ConfigImport, Credential, ModelRoute, Provider

log = logging.getLogger("llmproxy.config")
PRICE_STEP = Decimal("0.000001")  # ModelRoute prices keep 6 decimals
TOKEN_FIELDS = ("access_token", "refresh_token")
#: Credential.extra key: fingerprint of the tokens the file last gave, so tokens a refresher
#: rotated since are not replaced by the same stale ones on the next apply.
TOKENS_SEEN = "config_tokens_sha256"


class ApplyError(Exception):
    """A valid file that cannot be applied to what the database holds (e.g. a redacted new secret)."""

    def __init__(self, issues: list[cfg.ConfigIssue]) -> None:
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = issues


@dataclass
class Changes:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "deleted": self.deleted,
                "unchanged": self.unchanged, "warnings": self.warnings}  # fmt: skip

    def summary(self) -> str:
        return (f"{len(self.created)} created, {len(self.updated)} updated, {len(self.deleted)} deleted, "
                f"{self.unchanged} unchanged")  # fmt: skip


def import_config_file(path: str | Path, *, env: Mapping[str, str] | None = None) -> ConfigImport:
    """Validate and apply a file; a bad file changes nothing and is recorded with its errors."""
    try:
        config = cfg.load(path, env=env)
    except ConfigError as exc:
        return record_rejection(str(path), exc.issues, _file_hash(path))
    return apply_config(config, str(path))


def import_config_text(text: str, source: str, *, env: Mapping[str, str] | None = None) -> ConfigImport:
    """Validate and apply YAML text (the management API's import)."""
    try:
        config = cfg.loads(text, source, env=env)
    except ConfigError as exc:
        return record_rejection(source, exc.issues, cfg.content_hash(text))
    return apply_config(config, source)


def record_rejection(source: str, issues: list[cfg.ConfigIssue], content_hash: str = "") -> ConfigImport:
    errors = [{"path": i.path, "reason": i.reason} for i in issues]
    return ConfigImport.objects.create(source=source, ok=False, errors=errors, content_hash=content_hash)


def apply_config(config: Config, source: str) -> ConfigImport:
    """Make the database match ``config`` in one transaction; record the attempt."""
    digest = config.content_hash or cfg.content_hash(cfg.dump(config, with_secrets=True))
    try:
        with transaction.atomic():
            changes = _apply(config)
    except ApplyError as exc:
        return record_rejection(source, exc.issues, digest)
    except DatabaseError as exc:
        log.exception("applying %s failed", source)
        return record_rejection(source, [cfg.ConfigIssue("", f"database error: {exc}")], digest)
    log.info("applied %s: %s", source, changes.summary())
    return ConfigImport.objects.create(source=source, ok=True, content_hash=digest, changes=changes.as_dict())


def _file_hash(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _apply(config: Config) -> Changes:
    changes = Changes()
    issues: list[cfg.ConfigIssue] = []
    existing = {p.name: p for p in Provider.objects.select_for_update().order_by("name")}
    for name, spec in config.providers.items():
        provider = existing.get(name) or Provider(name=name)
        _save(provider, _provider_values(spec, provider, issues, f"providers.{name}"), f"provider {name}", changes)
        _sync_credentials(config, spec, provider, changes, issues)
        _sync_routes(spec, provider, changes)
    for name, provider in existing.items():
        if provider.from_config and name not in config.providers:
            provider.delete()
            changes.deleted.append(f"provider {name}")
    if issues:
        raise ApplyError(issues)
    return changes


def _save(obj: Provider | Credential | ModelRoute, values: Mapping[str, Any], label: str, changes: Changes) -> None:
    """Assign and save only what differs: an unchanged row is never written (no version bump)."""
    creating = obj.pk is None
    differs = [k for k, v in values.items() if getattr(obj, k) != v]
    for key in differs:
        setattr(obj, key, values[key])
    if creating:
        obj.save()
        changes.created.append(label)
    elif differs:
        obj.save()
        changes.updated.append(label)
    else:
        changes.unchanged += 1


def _provider_values(spec: ProviderSpec, provider: Provider, issues: list[cfg.ConfigIssue], path: str) -> dict[str, Any]:  # fmt: skip
    return {
        "type": spec.type,
        "enabled": spec.enabled,
        "base_url": spec.base_url,
        "auth_type": spec.auth_type,
        "priority": spec.priority,
        "weight": spec.weight,
        "cooldown_seconds": spec.cooldown,
        "rpm": spec.rate_limit.rpm,
        "tpm": spec.rate_limit.tpm,
        "headers": _unredact(dict(spec.headers), provider.headers or {}, issues, f"{path}.headers"),
        "options": _unredact(dict(spec.options), provider.options or {}, issues, f"{path}.options"),
        # An export without secrets wrote the proxy's password as <redacted>: keep the stored one.
        "proxy": provider.proxy if cfg.REDACTED in spec.proxy and provider.proxy else spec.proxy,
        "from_config": True,
    }


def _unredact(new: dict[str, Any], old: Mapping[str, Any], issues: list[cfg.ConfigIssue], path: str) -> dict[str, Any]:  # fmt: skip
    """Where an export wrote ``<redacted>``, keep the stored value."""
    for key, value in new.items():
        if isinstance(value, dict):
            before = old.get(key)
            new[key] = _unredact(value, before if isinstance(before, Mapping) else {}, issues, f"{path}.{key}")
        elif value == REDACTED:
            if key in old:
                new[key] = old[key]
            else:
                issues.append(cfg.ConfigIssue(f"{path}.{key}", "is redacted and nothing is stored to keep"))
    return new


def _sync_credentials(config: Config, spec: ProviderSpec, provider: Provider, changes: Changes,
                      issues: list[cfg.ConfigIssue]) -> None:  # fmt: skip
    current = {c.name: c for c in provider.credentials.all()}
    for i, cspec in enumerate(spec.credentials):
        cred = current.pop(cspec.name, None) or Credential(provider=provider, name=cspec.name)
        where = f"providers.{spec.name}.credentials[{i}]"
        values = _credential_values(config, cspec, cred, issues, where, changes)
        _save(cred, values, f"credential {spec.name}/{cspec.name}", changes)
    for name, cred in current.items():
        cred.delete()
        changes.deleted.append(f"credential {spec.name}/{name}")


def _credential_values(config: Config, c: CredentialSpec, cred: Credential, issues: list[cfg.ConfigIssue],
                       where: str, changes: Changes) -> dict[str, Any]:  # fmt: skip
    values: dict[str, Any] = {"enabled": c.enabled, "weight": c.weight, "file": c.file or ""}
    given: dict[str, Any] = {k: getattr(c, k) for k in ("api_key", *TOKEN_FIELDS)}
    if c.file:
        try:
            tokens = cfg.read_token_file(config.auth_dir() / c.file)
        except ValueError as exc:
            changes.warnings.append(f"{where}.file: {exc}; keeping the stored secrets")
            given = {k: v for k, v in given.items() if v is not None}
        else:
            given = {k: v or getattr(tokens, k) for k, v in given.items()}
            given["expires_at"] = _aware(tokens.expires_at)
    for key in ("api_key", *TOKEN_FIELDS):
        if given.get(key) == REDACTED:
            if not getattr(cred, key):
                issues.append(cfg.ConfigIssue(f"{where}.{key}", "is redacted and nothing is stored to keep"))
            del given[key]
    if "api_key" in given:
        values["api_key"] = given.pop("api_key") or ""
    values.update(_token_values(cred, given))
    return values


def _token_values(cred: Credential, given: dict[str, Any]) -> dict[str, Any]:
    """Tokens from the file only when the file's tokens changed since last applied.

    A refresher rotates access (and sometimes refresh) tokens in the database; applying
    the unchanged file again must not put the stale ones back.
    """
    if not given:
        return {}
    wanted = {k: (v or "") if k in TOKEN_FIELDS else v for k, v in given.items()}
    if all(getattr(cred, k) == v for k, v in wanted.items()):
        return {}
    fingerprint = hashlib.sha256(json.dumps(wanted, default=str, sort_keys=True).encode()).hexdigest()
    extra = dict(cred.extra or {})
    if cred.pk is not None and extra.get(TOKENS_SEEN) == fingerprint:
        return {}
    extra[TOKENS_SEEN] = fingerprint
    return {**wanted, "extra": extra}


def _aware(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=UTC) if epoch is not None else None


def _sync_routes(spec: ProviderSpec, provider: Provider, changes: Changes) -> None:
    current = {r.name: r for r in provider.routes.all()}
    for m in spec.models:
        for public, upstream in _route_names(m):
            route = current.pop(public, None) or ModelRoute(provider=provider, name=public)
            values = {"upstream": upstream, "enabled": m.enabled, **_prices(m)}
            _save(route, values, f"route {spec.name}/{public}", changes)
    for name, route in current.items():
        route.delete()
        changes.deleted.append(f"route {spec.name}/{name}")


def _route_names(m: ModelSpec) -> list[tuple[str, str]]:
    """(public name, stored upstream): an alias is a route of its own to the same upstream model."""
    return [(m.name, m.upstream or ""), *((alias, m.upstream_name) for alias in m.aliases)]


def _prices(m: ModelSpec) -> dict[str, Decimal | None]:
    return {
        key: None if value is None else Decimal(str(value)).quantize(PRICE_STEP)
        for key, value in (
            ("input_price", m.input_price),
            ("output_price", m.output_price),
            ("cached_input_price", m.cached_input_price),
        )
    }


def sync_token_file(path: str | Path) -> list[str]:
    """A token file in the auth dir changed: update the credentials that name it. Returns their labels."""
    p = Path(path)
    creds = list(Credential.objects.select_related("provider").filter(file__in=[p.name, str(p)]))
    if not creds:
        return []
    try:
        tokens = cfg.read_token_file(p)
    except ValueError as exc:
        log.warning("%s", exc)
        return []
    updated = []
    with transaction.atomic():
        for cred in creds:
            given: dict[str, Any] = {k: getattr(tokens, k) for k in TOKEN_FIELDS}
            given["expires_at"] = _aware(tokens.expires_at)
            values = _token_values(cred, given)
            if tokens.api_key:
                values["api_key"] = tokens.api_key
            changes = Changes()
            _save(cred, values, str(cred), changes)
            updated += changes.updated
    return updated


def export_config(with_secrets: bool = False) -> str:
    """The providers, credentials and routes in the database as config.yaml."""
    providers = {p.name: _provider_spec(p, with_secrets) for p in Provider.objects.order_by("name")}
    text = cfg.dump(Config(providers=providers), with_secrets=with_secrets, include_defaults=False)
    head = "# llmproxy config exported from the database" + ("" if with_secrets else "; secrets redacted") + "\n"
    return head + text


def _provider_spec(p: Provider, with_secrets: bool) -> ProviderSpec:
    return ProviderSpec(
        name=p.name,
        type=p.type,
        enabled=p.enabled,
        base_url=p.base_url,
        auth_type=p.auth_type,
        priority=p.priority,
        weight=p.weight,
        cooldown=p.cooldown_seconds,
        rate_limit=cfg.RateLimit(rpm=p.rpm, tpm=p.tpm),
        headers=_redact(p.headers or {}, with_secrets),
        options=_redact(p.options or {}, with_secrets),
        proxy=p.proxy,  # the dump masks its password unless with_secrets
        credentials=tuple(_credential_spec(c) for c in p.credentials.order_by("name")),
        models=tuple(
            ModelSpec(
                name=r.name,
                upstream=r.upstream or None,
                input_price=_float(r.input_price),
                output_price=_float(r.output_price),
                cached_input_price=_float(r.cached_input_price),
                enabled=r.enabled,
            )
            for r in p.routes.order_by("name")
        ),
    )


def _credential_spec(c: Credential) -> CredentialSpec:
    if c.file:  # the tokens live in the auth dir, not in the config
        return CredentialSpec(name=c.name, file=c.file, weight=c.weight, enabled=c.enabled)
    return CredentialSpec(
        name=c.name,
        api_key=c.api_key or None,
        access_token=c.access_token or None,
        refresh_token=c.refresh_token or None,
        weight=c.weight,
        enabled=c.enabled,
    )


def _redact(data: Mapping[str, Any], with_secrets: bool) -> dict[str, Any]:
    if with_secrets:
        return dict(data)
    return {
        k: _redact(v, False) if isinstance(v, Mapping) else REDACTED if isinstance(v, str) and is_sensitive(k) else v
        for k, v in data.items()
    }


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
