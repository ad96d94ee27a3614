"""JSON helpers on orjson: compact bytes out, clear errors in."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import InvalidRequest

dumps = orjson.dumps


def dumps_str(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def loads_body(data: bytes) -> dict[str, Any]:
    """Parse a client request body; anything but a JSON object is a 400."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object")
    return value


def parse_arguments(text: str) -> Any:
    """Tool-call argument text -> object, tolerating the empty string models send."""
    if not text or not text.strip():
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
