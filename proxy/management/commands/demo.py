"""``demo``: add or remove the offline demo provider (model ``demo``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from proxy.configsync.demo import add_demo_provider, remove_demo_provider


class Command(BaseCommand):
    help = "Add (--add) or remove (--remove) the offline demo provider that serves the model 'demo'."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--add", action="store_true", help="Configure the demo provider (if it is not there).")
        group.add_argument("--remove", action="store_true", help="Remove the demo provider.")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["remove"]:
            n = remove_demo_provider()
            self.stdout.write("removed the demo provider" if n else "no demo provider to remove")
            return
        if not opts["add"]:
            raise CommandError("say --add or --remove")
        provider = add_demo_provider()
        self.stdout.write(f"added the demo provider {provider.name!r} (model 'demo')" if provider
                          else "the demo provider is there already")  # fmt: skip
