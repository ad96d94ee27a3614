"""Provider accounts in the database: logins, token files in the auth dir, refreshed tokens.

Every way an account's tokens change ends here, so the database (secrets encrypted), the
token file (``{type}-{credential}.json``, written then renamed) and the credential's
health stay in step, and each save bumps the config version (every serving process uses
the new token within a second):

* ``store_login``: a finished ``manage.py login`` or admin login.
* ``sync_account_file`` / ``remove_account_file``: a typed token file appeared, changed
  or disappeared in the auth dir (the watcher calls them).
* ``save_refreshed`` / ``mark_unhealthy``: a refresh (request path or beat job) worked or
  failed for good; ``mark_unhealthy`` keeps the reason for the admin and ``/api/v1/health``.

Which provider a file or login attaches to: the one named (``--provider``, the file's
``provider``), else the only provider of that type; with none, one named after the type
is created with the type's defaults; with several, ``AccountError`` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from llmproxy import auth
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential as EngineCredential
from llmproxy.providers.base import ProviderConfig
from llmproxy.stores import create_store
from proxy.models import AuthType, Credential, HealthState, HealthStatus, Provider

from .version import bump_config_version

log = logging.getLogger("llmproxy.accounts")
AUTH_TYPES = {"copilot": AuthType.DEVICE_FLOW, "kiro": AuthType.DEVICE_FLOW}


class AccountError(Exception):
    """A login or token file that cannot be attached (no provider, or several)."""


def auth_dir() -> Path:
    return Path(settings.LLMPROXY.get("AUTH_DIR") or "auths")


def resolve_provider(provider_type: str, name: str | None = None, *, create: bool = True) -> Provider:
    if name:
        p = Provider.objects.filter(name=name).first()
        if p is None:
            raise AccountError(f"no provider named {name!r}")
        if p.type != provider_type:
            raise AccountError(f"provider {name!r} is of type {p.type}, not {provider_type}")
        return p
    found = list(Provider.objects.filter(type=provider_type).order_by("name")[:2])
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(Provider.objects.filter(type=provider_type).values_list("name", flat=True))
        raise AccountError(
            f"several {provider_type} providers ({names}): name one (--provider, or the file's provider)"
        )
    if not create:
        raise AccountError(f"no {provider_type} provider")
    return Provider.objects.create(name=provider_type, type=provider_type,
                                   auth_type=AUTH_TYPES.get(provider_type, AuthType.OAUTH))  # fmt: skip


def _aware(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _set_tokens(cred: Credential, access: str | None, refresh: str | None, expires: float | None,
                extra: Mapping[str, Any]) -> None:  # fmt: skip
    cred.access_token = access or ""
    if refresh is not None:
        cred.refresh_token = refresh
    cred.expires_at = _aware(expires)
    cred.extra = {**(cred.extra or {}), **extra}


def _healthy(cred: Credential) -> None:
    HealthStatus.objects.update_or_create(credential=cred, defaults={"state": HealthState.HEALTHY, "error": "",
                                          "consecutive_failures": 0, "checked_at": timezone.now()})  # fmt: skip


def write_file(cred: Credential) -> Path:
    """The credential's token file in the auth dir (named ``{type}-{name}.json`` unless it has one)."""
    p = cred.provider
    if not cred.file:
        cred.file = auth.token_file_name(p.type, cred.name)
        Credential.objects.filter(pk=cred.pk).update(file=cred.file)
    engine = auth.TokenFile(p.type, provider=p.name, access_token=cred.access_token or None,
                            refresh_token=cred.refresh_token or None,
                            expires_at=cred.expires_at.timestamp() if cred.expires_at else None,
                            extra={k: v for k, v in (cred.extra or {}).items()
                                   if k in auth.TOKEN_TYPES.get(p.type, auth.TokenType()).fields})  # fmt: skip
    return auth.write_token_file(auth_dir() / cred.file, engine)


@transaction.atomic
def store_login(token: auth.TokenFile, *, provider: str | None = None, name: str = "default") -> Credential:
    """Save a finished login: the credential (created or updated), healthy, and its token file."""
    p = resolve_provider(token.type, provider or token.provider)
    cred = Credential.objects.filter(provider=p, name=name).first() or Credential(provider=p, name=name)
    _set_tokens(cred, token.access_token, token.refresh_token, token.expires_at, token.extra)
    cred.api_key = ""
    cred.enabled = True
    cred.save()
    _healthy(cred)
    write_file(cred)
    return cred


def sync_account_file(path: Path) -> str | None:
    """A typed token file appeared or changed: update or create its credential. None when not typed."""
    try:
        token = auth.read_token_file(path)
    except auth.TokenFileError as exc:
        if exc.field == "type" and "is required" in exc.reason:
            return None  # a bare token file: the config's credentials that name it handle it
        _report_bad_file(path, exc)
        return f"rejected: {exc}"
    try:
        with transaction.atomic():
            cred = Credential.objects.select_related("provider").filter(file=path.name).first()
            if cred is None:
                p = resolve_provider(token.type, token.provider)
                name = path.stem.removeprefix(f"{token.type}-") or path.stem
                cred = Credential.objects.filter(provider=p, name=name).first() or Credential(provider=p, name=name)
                cred.file = path.name
            _set_tokens(cred, token.access_token, token.refresh_token, token.expires_at, token.extra)
            cred.save()
            _healthy(cred)
    except AccountError as exc:
        log.warning("token file %s ignored: %s", path, exc)
        return f"ignored: {exc}"
    return f"credential {cred.provider.name}/{cred.name} from {path.name}"


def _report_bad_file(path: Path, exc: auth.TokenFileError) -> None:
    log.warning("token file rejected: %s", exc)
    for cred in Credential.objects.filter(file=path.name):
        mark_unhealthy(cred, str(exc))


def remove_account_file(path: Path) -> list[str]:
    """A token file disappeared: the credentials made from it go too."""
    gone = []
    for cred in Credential.objects.select_related("provider").filter(file=path.name, api_key=""):
        gone.append(f"{cred.provider.name}/{cred.name}")
        cred.delete()
    return gone


def _find(provider: str, name: str) -> Credential | None:
    return Credential.objects.select_related("provider").filter(provider__name=provider, name=name).first()


def save_refreshed(provider: str, name: str, access: str, refresh: str | None, expires: float | None,
                   extra: Mapping[str, Any]) -> None:  # fmt: skip
    """Refreshed tokens: saved (encrypted), written back to the token file, the credential healthy."""
    with transaction.atomic():
        cred = _find(provider, name)
        if cred is None:
            return
        _set_tokens(cred, access, refresh, expires, extra)
        cred.save()
        _healthy(cred)
    if cred.file:
        try:
            write_file(cred)
        except OSError as exc:
            log.warning("could not write the refreshed tokens of %s to %s: %s", cred, cred.file, exc)


def mark_unhealthy(cred: Credential | tuple[str, str], reason: str) -> None:
    """A credential whose tokens cannot be used: unhealthy with the reason, until a refresh or login heals it."""
    row = _find(*cred) if isinstance(cred, tuple) else cred
    if row is None:
        return
    status, _ = HealthStatus.objects.get_or_create(credential=row)
    status.state = HealthState.UNHEALTHY
    status.error = reason[:2000]
    status.consecutive_failures += 1
    status.checked_at = timezone.now()
    status.save()
    bump_config_version()


def token_store() -> auth.TokenStore:
    """Where processes share refresh leases and fresh tokens: Redis, else files under ``var/``."""
    if settings.REDIS_URL:
        return create_store(settings.REDIS_URL)
    return auth.FileTokenStore(Path(settings.VAR_DIR) / "tokens")


RunDB = Callable[[Callable[[], None]], Awaitable[None]]


def make_keeper(http: HTTPClient, run: RunDB | None = None) -> auth.TokenKeeper:
    """The TokenKeeper of a Django process: refreshed tokens saved, failures marked unhealthy."""
    runner: RunDB = run or (lambda fn: sync_to_async(fn)())

    async def refreshed(p: ProviderConfig, c: EngineCredential, t: auth.TokenSet) -> None:
        await runner(lambda: save_refreshed(p.name, c.name, c.access_token or "", c.refresh_token, c.expires_at,
                                            t.extra))  # fmt: skip

    async def failed(p: ProviderConfig, c: EngineCredential, err: auth.AuthError) -> None:
        await runner(lambda: mark_unhealthy((p.name, c.name), f"token refresh failed: {err.message}"))

    return auth.TokenKeeper(token_store(), http, on_refreshed=refreshed, on_failed=failed)
