"""``export_config [--with-secrets]``: the database's providers as config.yaml on stdout."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from proxy.configsync.apply import export_config


class Command(BaseCommand):
    help = "Print the providers, credentials and model routes as config.yaml (secrets redacted by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--with-secrets", action="store_true", help="Include API keys and tokens in clear.")

    def handle(self, *args: Any, **opts: Any) -> None:
        self.stdout.write(export_config(with_secrets=opts["with_secrets"]), ending="")
