"""``create_api_key --user NAME``: the key is the last line printed, shown only once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.actions import create_api_key
from accounts.models import User


class Command(BaseCommand):
    help = "Create an API key for a user and print it (once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--models", default="", help="Comma-separated public model names (default: all).")
        parser.add_argument("--admin", action="store_true", help="Give the key the management scope.")
        parser.add_argument("--allow-overrides", action="store_true",
                            help="Let the key send per-request overrides (x-llmproxy-provider, ...).")  # fmt: skip
        parser.add_argument("--create-user", action="store_true", help="Create the user if missing.")
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument("--rpm", type=int, default=None)
        parser.add_argument("--tpm", type=int, default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            user = User.objects.get(username=opts["user"])
        except User.DoesNotExist:
            if not opts["create_user"]:
                raise CommandError(f"no user {opts['user']!r} (add --create-user to create one)") from None
            user = User.objects.create_user(username=opts["user"])
            user.set_unusable_password()
            user.save()
        models = [m.strip() for m in opts["models"].split(",") if m.strip()]
        expires = timezone.now() + timedelta(days=opts["expires_days"]) if opts["expires_days"] else None
        key, raw = create_api_key(
            user, name=opts["name"], models=models, admin=opts["admin"], expires_at=expires,
            rpm=opts["rpm"], tpm=opts["tpm"], allow_overrides=opts["allow_overrides"],
        )  # fmt: skip
        self.stderr.write(f"Created key {key.prefix}… for {user.username}. It is shown once:")
        self.stdout.write(raw)
