"""Render llmproxy's public surface as text: every name in ``__all__`` with its signature.

The rendering is compared against ``public_api.txt`` beside this file, so a change to a
public name or signature fails the suite until the snapshot is rewritten on purpose and
CHANGELOG.md says what changed (docs/library.md, "Stability"):

    python -m tests.packaging.api_snapshot --write
"""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
import re
import sys
import types
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("public_api.txt")


def public_modules() -> list[types.ModuleType]:
    """``llmproxy`` and each of its sub-packages (and public modules) that declares ``__all__``."""
    root = importlib.import_module("llmproxy")
    found = [root]
    for info in pkgutil.walk_packages(root.__path__, "llmproxy."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            found.append(module)
    return sorted(found, key=lambda m: m.__name__)


def _signature(obj: Any) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    return re.sub(r" at 0x[0-9a-f]+", "", text)  # a default's repr must not carry its address


def _describe_class(cls: type) -> list[str]:
    lines = [f"class {cls.__name__}{_signature(cls)}"]
    if issubclass(cls, enum.Enum):
        lines += [f"    {m.name} = {m.value!r}" for m in cls]
        return lines
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            lines.append(f"    property {name}")
        elif isinstance(member, staticmethod | classmethod):
            lines.append(f"    {type(member).__name__} {name}{_signature(member.__func__)}")
        elif inspect.isfunction(member):
            prefix = "async def" if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member) else "def"
            lines.append(f"    {prefix} {name}{_signature(member)}")
    return lines


def describe(name: str, obj: Any) -> list[str]:
    if inspect.ismodule(obj):
        return [f"module {name} -> {obj.__name__}"]
    if inspect.isclass(obj):
        return _describe_class(obj)
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        prefix = "async def" if inspect.iscoroutinefunction(obj) else "def"
        return [f"{prefix} {name}{_signature(obj)}"]
    return [f"{name}: {type(obj).__name__}"]


def render() -> str:
    out: list[str] = []
    for module in public_modules():
        out.append(f"[{module.__name__}]")
        for name in module.__all__:
            out += describe(name, getattr(module, name))
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    text = render()
    if "--write" in sys.argv:
        SNAPSHOT.write_text(text)
        print(f"wrote {SNAPSHOT} ({text.count(chr(10))} lines); now say what changed in CHANGELOG.md")
    else:
        print(text)
