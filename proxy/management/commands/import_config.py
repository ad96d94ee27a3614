"""``import_config PATH``: validate a config.yaml and apply it; exit 1 listing every error."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from proxy.configsync.apply import import_config_file


class Command(BaseCommand):
    help = "Validate a config.yaml and apply it to the database (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")

    def handle(self, *args: Any, **opts: Any) -> None:
        record = import_config_file(opts["path"])
        if not record.ok:
            for error in record.errors:
                self.stderr.write(f"{error['path']}: {error['reason']}" if error["path"] else error["reason"])
            count = len(record.errors)
            raise CommandError(f"{opts['path']} rejected ({count} error{'s' if count != 1 else ''}); nothing changed")
        changes = record.changes
        for kind in ("created", "updated", "deleted"):
            for label in changes[kind]:
                self.stdout.write(f"  {kind} {label}")
        for warning in changes["warnings"]:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(
            f"Applied {opts['path']}: {len(changes['created'])} created, {len(changes['updated'])} updated, "
            f"{len(changes['deleted'])} deleted, {changes['unchanged']} unchanged."
        )
