"""Config changes, wherever they come from, bump the shared version after commit."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save

from accounts.models import ApiKey

from .configsync.version import bump_config_version
from .models import Credential, ModelRoute, Provider


def _changed(sender: Any, **kwargs: Any) -> None:
    bump_config_version()


def connect() -> None:
    for model in (Provider, Credential, ModelRoute, ApiKey, get_user_model()):
        post_save.connect(_changed, sender=model, dispatch_uid=f"bump-{model.__name__}-save")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"bump-{model.__name__}-delete")
