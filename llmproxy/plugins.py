"""Plugin modules: custom translators and executors loaded by name before config is validated.

A plugin is any importable module that registers what it brings when imported
(``llmproxy.translator.register``, ``llmproxy.providers.register``). config.yaml names
them in a top-level ``plugins:`` list, the ``LLMPROXY_PLUGINS`` environment variable
(comma-separated) adds more; every process that loads config imports them first, so a
``type:`` or ``translator:`` naming a plugin's registration validates everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

__all__ = ["ENV", "PluginError", "from_env", "import_all"]

ENV = "LLMPROXY_PLUGINS"


class PluginError(Exception):
    """A plugin module that could not be imported; ``name`` is the module's name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot import plugin module {name!r}: {reason}")
        self.name = name
        self.reason = reason


def from_env(env: Mapping[str, str]) -> list[str]:
    """The module names in ``LLMPROXY_PLUGINS`` (comma-separated, blanks ignored)."""
    return [n.strip() for n in (env.get(ENV) or "").split(",") if n.strip()]


def import_all(names: Iterable[str]) -> list[PluginError]:
    """Import each module (once: Python caches them); what failed, each named, in order."""
    failed: list[PluginError] = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a plugin's own bug is its config error, never a traceback here
            failed.append(PluginError(name, f"{type(exc).__name__}: {exc}"))
    return failed
