"""Model fields whose values are encrypted in the database and plain in Python."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db import models

from .crypto import decrypt, encrypt


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str:
        return decrypt(value or "")

    def get_prep_value(self, value: Any) -> str:
        return encrypt(str(value)) if value else ""

    def to_python(self, value: Any) -> str:
        return "" if value is None else str(value)


class EncryptedJSONField(models.TextField):  # type: ignore[type-arg]
    """A JSON mapping (headers, options, extras) stored as one Fernet token: its values may be secrets.

    Rows written before encryption hold plain JSON; they read as such until saved again
    (``manage.py rotate_encryption_key`` re-saves every row).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", dict)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return _load(decrypt(value or ""))

    def get_prep_value(self, value: Any) -> str:
        if value in (None, "", {}, []):
            return ""
        if isinstance(value, str):
            value = _load(value)
        return encrypt(json.dumps(value, sort_keys=True, ensure_ascii=False))

    def to_python(self, value: Any) -> Any:
        return _load(value) if isinstance(value, str) else ({} if value is None else value)

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj))

    def formfield(self, **kwargs: Any) -> Any:
        return forms.JSONField(**{"required": not self.blank, **kwargs})


def _load(text: str) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError("a stored JSON field is neither encrypted JSON nor plain JSON") from None
