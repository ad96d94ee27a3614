"""Refusals and the validate-then-save helpers that every state change (``actions``) uses.

``ServiceError`` is a refused change with the HTTP status the management API answers;
``ValidationFailed`` names the offending fields (422). They live in ``accounts``, the
bottom app, so that ``accounts.actions`` and ``proxy``'s actions raise the same types and
the API renders them in one place, without ``accounts`` importing anything from
``proxy`` (a separate top-level package for some 70 lines would be one more thing to
know about).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

M = TypeVar("M", bound=models.Model)


class ServiceError(Exception):
    """A refused change; ``status`` is what the API answers."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class ValidationFailed(ServiceError):
    """Invalid input; ``errors`` maps each offending field to its messages."""

    status = 422

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {k: list(v) for k, v in errors.items()}
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls({field: [message]})


def assign(obj: models.Model, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Set ``data`` on ``obj``; a name outside ``allowed`` is refused, not ignored."""
    allowed = set(allowed)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed({name: ["unknown or read-only field"] for name in unknown})
    for name, value in data.items():
        setattr(obj, name, value)


def validated_save(obj: M, *, unique_field: str = "name") -> M:
    """``full_clean`` then save; uniqueness errors are reported against ``unique_field``.

    An explicit ``null`` for a column that takes none is the caller's 400, not the
    database's IntegrityError (``full_clean`` lets ``None`` through on blank fields).
    """
    nulls = {f.attname: ["may not be null"] for f in obj._meta.concrete_fields
             if not f.null and not f.primary_key and getattr(obj, f.attname, None) is None
             and not (getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))}  # fmt: skip
    if nulls:
        raise ValidationFailed({k.removesuffix("_id"): v for k, v in nulls.items()})
    try:
        obj.full_clean()
    except DjangoValidationError as exc:
        errors: dict[str, list[str]] = {}
        for name, messages in exc.message_dict.items():
            errors.setdefault(unique_field if name == NON_FIELD_ERRORS else name, []).extend(messages)
        raise ValidationFailed(errors) from None
    obj.save()
    return obj
