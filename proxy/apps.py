"""The ``proxy`` app: on start, connect the signals that bump the config version."""

from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "proxy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import accounts.admin

        from . import signals
        from .configsync.plugins import import_configured
        from .serving.spend import live_spend

        import_configured()  # custom translators/executors, before any config is built or checked
        signals.connect()
        accounts.admin.spend_source = live_spend
