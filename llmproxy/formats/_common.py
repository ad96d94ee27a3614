"""Validation helpers shared by the request decoders: every 400 names its field."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest


def require_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{name}' is required and must be a non-empty string", param=name)
    return value


def require_list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' is required and must be an array", param=name)
    return value


def field_type(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidRequest(f"'{name}' must be of type {names}", param=name)
    return value
