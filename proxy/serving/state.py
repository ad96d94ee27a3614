"""Routing state seen from Django: the shared store, clearing cooldowns, live spend counters.

The state itself lives in the engine's ``StateStore``: Redis when ``REDIS_URL`` is set
(every process, the admin and the Celery worker see the same), else the serving
process's memory. In the embedded profile the admin runs in that serving process, so
its actions reach the live state; a separate process (a management command, a Celery
task) only reaches it through Redis. Budget periods need no live state at all: the
counter is keyed by the period's start, and the snapshot carries the settled spend
(``accounts.actions.reset_budget_period`` and ``reset_user_budget_period`` start a new one).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from llmproxy.responses_store import ResponseStore
from llmproxy.routing import Router
from llmproxy.state import StateStore
from llmproxy.stores import create_response_store, create_store
from proxy.models import Credential

from . import current


def make_state_store() -> StateStore:
    """The store a new gateway should use in this deployment."""
    return create_store(settings.REDIS_URL)


def make_response_store() -> ResponseStore:
    """Where this deployment keeps stored Responses API responses: Redis when ``REDIS_URL`` is
    set (every process shares them), else this process's memory kept in ``var/responses.jsonl``
    (the embedded profile's single server process; they survive a restart)."""
    return create_response_store(settings.REDIS_URL, path=Path(settings.VAR_DIR) / "responses.jsonl")


def process_router() -> Router:
    """This process's router if it serves requests, else one on the shared store."""
    gw = current.gateway()
    if gw is not None:
        return gw.router
    return Router(make_state_store())


def shares_state() -> bool:
    """Whether what this process sees of cooldowns is what every serving process sees."""
    return bool(settings.REDIS_URL) or current.gateway() is not None


def clear_cooldowns(credential_id: int | None = None) -> int:
    """End the cooldowns of one credential (every model), or of all; how many ended.

    The credential serves again at once, without a half-open trial.
    """
    path = ""
    if credential_id is not None:
        cred = Credential.objects.select_related("provider").get(pk=credential_id)
        path = f"{cred.provider.name}/{cred.name}"
    return process_router().clear_cooldowns(path)
