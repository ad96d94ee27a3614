"""``rotate_encryption_key``: re-encrypt every secret at rest with the first key of LLMPROXY_ENCRYPTION_KEY."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from proxy.fields import EncryptedJSONField, EncryptedTextField


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field with the first key of LLMPROXY_ENCRYPTION_KEY. Rotation: put the new "
        "key first (new,old), restart, run this, then drop the old key."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        total = 0
        try:
            with transaction.atomic():
                for model in apps.get_models():
                    names = [f.name for f in model._meta.get_fields()
                             if isinstance(f, EncryptedTextField | EncryptedJSONField)]  # fmt: skip
                    if not names:
                        continue
                    rows = 0
                    for row in model._default_manager.all().iterator():
                        # update(), not save(): no signals, no auto_now, no config version bump.
                        model._default_manager.filter(pk=row.pk).update(**{n: getattr(row, n) for n in names})
                        rows += 1
                    total += rows
                    self.stdout.write(f"{model._meta.label}: {rows} row(s) ({', '.join(names)})")
        except ValueError as exc:  # a value no configured key decrypts
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted {total} row(s) with the first key")
