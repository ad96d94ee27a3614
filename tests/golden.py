"""Canonical objects as golden JSON: ``{"_": class name, <non-default fields>}`` and back."""

from __future__ import annotations

import dataclasses
from typing import Any

from llmproxy import model as M


def plain(obj: Any) -> Any:
    """A canonical object as JSON, leaving out fields that hold their defaults."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"_": type(obj).__name__}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            if value != default:
                out[f.name] = plain(value)
        return out
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


def unplain(data: Any) -> Any:
    """Golden JSON back into canonical objects."""
    if isinstance(data, dict) and "_" in data:
        return getattr(M, data["_"])(**{k: unplain(v) for k, v in data.items() if k != "_"})
    if isinstance(data, list):
        return [unplain(v) for v in data]
    if isinstance(data, dict):
        return {k: unplain(v) for k, v in data.items()}
    return data
