"""``check_config PATH``: validate only; exit 1 printing each error as ``path: reason``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from llmproxy.config import ConfigError, load


class Command(BaseCommand):
    help = "Validate a config.yaml without applying it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            config = load(opts["path"])
        except ConfigError as exc:
            for line in exc.errors:
                self.stderr.write(line)
            count = len(exc.issues)
            raise CommandError(f"{opts['path']}: {count} error{'s' if count != 1 else ''}") from None
        models = sum(len(m.public_names) for p in config.providers.values() for m in p.models)
        self.stdout.write(f"{opts['path']} is valid: {len(config.providers)} providers, {models} model routes.")
