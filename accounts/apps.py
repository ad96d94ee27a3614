"""The ``accounts`` app (users and API keys); ``AUTH_USER_MODEL`` is its ``User``."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
