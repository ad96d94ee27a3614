"""A text field whose value is encrypted in the database and plain in Python."""

from __future__ import annotations

from typing import Any

from django.db import models

from .crypto import decrypt, encrypt


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str:
        return decrypt(value or "")

    def get_prep_value(self, value: Any) -> str:
        return encrypt(str(value)) if value else ""

    def to_python(self, value: Any) -> str:
        return "" if value is None else str(value)
