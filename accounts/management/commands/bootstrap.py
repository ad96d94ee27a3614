"""``bootstrap``: on first start, an admin user and a first API key, printed once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.actions import bootstrap_admin


class Command(BaseCommand):
    help = "Create the first admin user and API key if there are no users yet."

    def handle(self, *args: Any, **opts: Any) -> None:
        created = bootstrap_admin()
        if created is None:
            self.stdout.write("Users exist already; nothing to bootstrap.")
            return
        user, password, raw = created
        line = "=" * 64
        self.stdout.write(
            f"{line}\nFirst start: created an admin account (shown only this once).\n"
            f"  admin:     http://127.0.0.1:8000/admin/\n  username:  {user.username}\n"
            f"  password:  {password}\n  API key:   {raw}\n{line}"
        )
