"""``clear_cooldowns``: end routing cooldowns by hand (all, or one credential's)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from proxy.models import Credential
from proxy.serving.state import clear_cooldowns, shares_state


class Command(BaseCommand):
    help = "End routing cooldowns: every credential's, or one's (--credential ID)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--credential", type=int, default=None, help="A credential id; default: all.")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not shares_state():
            raise CommandError("without REDIS_URL the cooldowns live in the serving process: clear them from the admin")
        try:
            n = clear_cooldowns(opts["credential"])
        except Credential.DoesNotExist:
            raise CommandError(f"no credential with id {opts['credential']}") from None
        self.stdout.write(f"cleared {n} cooldown(s)")
