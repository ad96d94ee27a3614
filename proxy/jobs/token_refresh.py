"""Token refresh: the refreshers (one callable per provider type) and the driver that runs them.

A refresher gets the stored ``Credential`` (secrets decrypted) and returns fresh tokens;
it may be a plain function or a coroutine function. It never saves anything itself: the
driver below does, under a per-credential lock, so a single-use refresh token is never
spent twice by two processes. Saving bumps the config version, so every serving process
picks up the new token. The Celery tasks (``proxy.tasks.refresh_tokens``, every 5 min,
and ``refresh_credential``, which the gateway asks for through ``request_refresh`` when
an upstream refuses a token) call the two functions at the end.

    from proxy.jobs.token_refresh import RefreshedTokens, register

    def refresh_claude(cred: Credential) -> RefreshedTokens: ...
    register("claude", refresh_claude)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from llmproxy import auth
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential as EngineCredential
from llmproxy.providers.base import ProviderConfig
from proxy.configsync.accounts import make_keeper, write_file
from proxy.configsync.engine_config import engine_credential, provider_config
from proxy.models import Credential, HealthState, HealthStatus

from .locks import claim, release

log = logging.getLogger("llmproxy.jobs")


@dataclass(frozen=True, slots=True)
class RefreshedTokens:
    access_token: str
    expires_at: datetime | None
    #: A rotated refresh token; None keeps the stored one.
    refresh_token: str | None = None
    #: Merged into ``Credential.extra`` (e.g. a Copilot endpoint that came with the token).
    extra: Mapping[str, Any] | None = None


Refresher = Callable[[Credential], "RefreshedTokens | Awaitable[RefreshedTokens]"]

#: provider type (``Provider.type``) -> refresher.
REFRESHERS: dict[str, Refresher] = {}


def register(provider_type: str, refresher: Refresher) -> None:
    """Make ``refresher`` the one for ``provider_type`` (a later registration wins)."""
    REFRESHERS[provider_type] = refresher


def refresher_for(provider_type: str) -> Refresher | None:
    """A registered refresher, else the engine's for that account type (``llmproxy.auth``)."""
    if provider_type in REFRESHERS:
        return REFRESHERS[provider_type]
    return refresh_account if auth.refresher_for(provider_type) is not None else None


def refresh_account(cred: Credential) -> RefreshedTokens:
    """The engine's refresher, under the same shared lease as the serving processes' refreshes.

    A serving process that refreshed this credential meanwhile has published its tokens:
    those are taken instead of spending the (maybe single-use) refresh token again.
    """
    provider, engine = provider_config(cred.provider), engine_credential(cred)
    fresh = async_to_sync(_refresh_shared)(provider, engine)
    expires = datetime.fromtimestamp(fresh.expires_at, UTC) if fresh.expires_at is not None else None
    return RefreshedTokens(fresh.access_token or "", expires, fresh.refresh_token, dict(fresh.extra))


async def _refresh_shared(provider: ProviderConfig, cred: EngineCredential) -> EngineCredential:
    http = HTTPClient()
    try:
        keeper = make_keeper(http)
        keeper.on_refreshed = None  # the driver saves, in its own transaction
        return await keeper.fresh(provider, cred, force=True)
    finally:
        await http.close()


REFRESH_AHEAD = timedelta(minutes=10)
REFRESH_LOCK_TTL = 120


def credentials_due(now: datetime | None = None, ahead: timedelta = REFRESH_AHEAD) -> list[int]:
    """Ids of enabled credentials that expire within ``ahead`` and have a refresher."""
    now = now or timezone.now()
    qs = Credential.objects.filter(
        enabled=True,
        expires_at__isnull=False,
        expires_at__lte=now + ahead,
        provider__type__in=[*REFRESHERS, *auth.REFRESHERS],
    )
    return list(qs.order_by("expires_at").values_list("id", flat=True))


def refresh_credential(credential_id: int, *, force: bool = False, now: datetime | None = None,
                       ahead: timedelta = REFRESH_AHEAD) -> str:  # fmt: skip
    """Refresh one credential and save the new tokens; returns what happened.

    ``refreshed``, ``not_due`` (someone else refreshed it meanwhile), ``no_refresher``,
    ``busy`` (another process is refreshing it), ``missing`` or ``failed``. Saving bumps
    the config version, so every serving process picks up the new token.
    """
    lock = f"refresh:{credential_id}"
    if not claim(lock, REFRESH_LOCK_TTL):
        return "busy"
    try:
        cred = Credential.objects.select_related("provider").filter(pk=credential_id).first()
        if cred is None:
            return "missing"
        refresher = refresher_for(cred.provider.type)
        if refresher is None:
            return "no_refresher"
        now = now or timezone.now()
        if not force and (cred.expires_at is None or cred.expires_at > now + ahead):
            return "not_due"
        try:
            result = refresher(cred)
            tokens: RefreshedTokens = async_to_sync(_awaited)(result) if _is_awaitable(result) else result  # type: ignore[assignment]
        except Exception as exc:
            log.warning("token refresh failed for %s: %s: %s", cred, type(exc).__name__, exc)
            return "failed"
        _save_tokens(cred.pk, tokens)
        log.info("refreshed the token of %s (expires %s)", cred, tokens.expires_at)
        return "refreshed"
    finally:
        release(lock)


def _is_awaitable(value: object) -> bool:
    return hasattr(value, "__await__")


async def _awaited(value: Any) -> Any:
    return await value


@transaction.atomic
def _save_tokens(credential_id: int, tokens: RefreshedTokens) -> None:
    cred = Credential.objects.select_for_update().get(pk=credential_id)
    cred.access_token = tokens.access_token
    cred.expires_at = tokens.expires_at
    fields = ["access_token", "expires_at", "updated_at"]
    if tokens.refresh_token is not None:
        cred.refresh_token = tokens.refresh_token
        fields.append("refresh_token")
    if tokens.extra:
        cred.extra = {**(cred.extra or {}), **tokens.extra}
        fields.append("extra")
    cred.save(update_fields=fields)
    HealthStatus.objects.update_or_create(credential=cred, defaults={"state": HealthState.HEALTHY, "error": "",
                                          "consecutive_failures": 0, "checked_at": timezone.now()})  # fmt: skip
    if cred.file:
        transaction.on_commit(lambda: _write_back(cred))


def _write_back(cred: Credential) -> None:
    try:
        write_file(cred)
    except OSError as exc:
        log.warning("could not write the refreshed tokens of %s to %s: %s", cred, cred.file, exc)


@dataclass
class RefreshSummary:
    due: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"due": self.due, **self.outcomes}


def refresh_due_credentials(now: datetime | None = None, ahead: timedelta = REFRESH_AHEAD) -> RefreshSummary:
    """Refresh every credential that expires within ``ahead``; one failure never stops the rest."""
    summary = RefreshSummary()
    for cid in credentials_due(now, ahead):
        summary.due += 1
        try:
            outcome = refresh_credential(cid, now=now, ahead=ahead)
        except Exception:
            log.exception("token refresh of credential %s crashed", cid)
            outcome = "failed"
        summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
    return summary
