"""Typed reads from parsed YAML that record a problem instead of raising.

Each read returns a usable value (the default when the input is wrong) so validation
goes on and reports every problem of a file in one pass.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ._env import EnvText
from ._schema import ConfigIssue

_INT = re.compile(r"[+-]?\d+")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
MISSING: Any = object()


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    origin = getattr(value, "origin", None)
    return f"{text} (from {origin})" if origin else text


class Checker:
    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def error(self, path: str, reason: str) -> None:
        self.issues.append(ConfigIssue(path, reason))

    def mapping(self, value: Any, path: str, allowed: Iterable[str] | None = None) -> dict[str, Any]:
        """A mapping (``None`` reads as empty); with ``allowed``, unknown keys are errors with a hint."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_type_name(value)}")
            return {}
        if allowed is not None:
            known = list(allowed)
            for key in value:
                if key not in known:
                    self.error(join(path, str(key)), unknown_key(str(key), known))
        return value

    def string(self, data: dict[str, Any], key: str, path: str, default: Any = "", *, required: bool = False,
               choices: tuple[str, ...] | None = None, max_len: int | None = None) -> Any:  # fmt: skip
        value = data.get(key, MISSING)
        where = join(path, key)
        if value is MISSING or value is None:
            if required:
                self.error(where, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error(where, f"expected a string, got {_type_name(value)}")
            return default
        text = str(value)
        if required and not text.strip():
            self.error(where, "must not be empty")
            return default
        if choices is not None and text not in choices:
            self.error(where, f"{_shown(value)} is not one of: {', '.join(choices)}{_hint(text, choices)}")
            return default
        if max_len is not None and len(text) > max_len:
            self.error(where, f"is longer than {max_len} characters")
            return default
        return text

    def integer(self, data: dict[str, Any], key: str, path: str, default: Any, *, minimum: int | None = None,
                maximum: int | None = None) -> Any:  # fmt: skip
        value = data.get(key, MISSING)
        where = join(path, key)
        if value is MISSING or value is None:
            return default
        number = _as_int(value)
        if number is None:
            self.error(where, f"expected a whole number, got {_type_name(value)} {_shown(value)}")
            return default
        return self._bounded(where, number, minimum, maximum, default)

    def number(self, data: dict[str, Any], key: str, path: str, default: Any, *, minimum: float | None = None,
               maximum: float | None = None) -> Any:  # fmt: skip
        value = data.get(key, MISSING)
        where = join(path, key)
        if value is MISSING or value is None:
            return default
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, EnvText):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            self.error(where, f"expected a number, got {_type_name(value)} {_shown(value)}")
            return default
        return self._bounded(where, number, minimum, maximum, default)

    def boolean(self, data: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, MISSING)
        if value is MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, EnvText) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        self.error(join(path, key), f"expected true or false, got {_type_name(value)} {_shown(value)}")
        return default

    def duration(self, data: dict[str, Any], key: str, path: str, default: float) -> float:
        """Seconds, written as a number or with a unit: ``500ms``, ``60s``, ``5m``, ``1h``."""
        value = data.get(key, MISSING)
        where = join(path, key)
        if value is MISSING or value is None:
            return default
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip().lower())):
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
        else:
            self.error(where, f"expected a duration such as 60s, 5m or a number of seconds, got {_shown(value)}")
            return default
        if seconds < 0 or not math.isfinite(seconds):
            self.error(where, f"must not be negative, got {_shown(value)}")
            return default
        return seconds

    def url(self, data: dict[str, Any], key: str, path: str) -> str:
        text: str = self.string(data, key, path, "", max_len=500)
        if not text:
            return ""
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
            self.error(join(path, key), f"{_shown(text)} is not an http(s) URL")
            return ""
        return text

    def _bounded(self, where: str, number: Any, minimum: Any, maximum: Any, default: Any) -> Any:
        if minimum is not None and number < minimum:
            reason = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
            self.error(where, f"{reason}, got {number}")
            return default
        if maximum is not None and number > maximum:
            self.error(where, f"must be at most {maximum}, got {number}")
            return default
        return number


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    if isinstance(value, EnvText) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def unknown_key(key: str, known: list[str]) -> str:
    return f"unknown key{_hint(key, known)}; expected one of: {', '.join(known)}"


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
